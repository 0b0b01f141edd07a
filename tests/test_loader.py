"""Hostile YAML: every case is a located error, never a crash, hang or silent misreading."""
from pathlib import Path

import pytest

from cnnspec.errors import SpecError, UsageError
from cnnspec.spec.loader import decode_spec_bytes, parse_yaml, read_spec_text


def _problems(text):
    """Fatal problems raise; problems in single values are kept on the document and parsing goes on."""
    try:
        doc = parse_yaml(text, "f.yaml")
    except SpecError as exc:
        return list(exc.diagnostics)
    assert doc.problems, "expected a problem"
    return doc.problems


HOSTILE = [
    ("python-tag", "a: !!python/object/apply:os.system ['echo hi']\n", "1:4", "YAML tags"),
    ("custom-tag", "a: !secret x\n", "1:4", "YAML tags"),
    ("duplicate-key", "name: a\nname: b\n", "2:1", "duplicate key 'name' (first at line 1)"),
    ("yes", "bias: yes\n", "1:7", "boolean in YAML 1.1"),
    ("Off", "bias: Off\n", "1:7", "boolean in YAML 1.1"),
    ("octal", "filters: 010\n", "1:10", "reads differently in YAML 1.1 and 1.2"),
    ("hex", "filters: 0x10\n", "1:10", "reads differently"),
    ("sexagesimal", "filters: 1:30\n", "1:10", "reads differently"),
    ("underscore", "filters: 1_000\n", "1:10", "reads differently"),
    ("huge-int", "filters: " + "9" * 5000 + "\n", "1:10", "too large"),
    ("huge-float", "rate: 1e400\n", "1:7", "out of range"),
    ("nan", "rate: .nan\n", "1:7", "not a finite number"),
    ("deep-flow", "a: " + "[" * 5000 + "]" * 5000 + "\n", "1:", "nesting deeper than 64"),
    ("deep-block", "".join("  " * i + f"k{i}:\n" for i in range(100)) + "  " * 100 + "x: 1\n", "65:", "nesting deeper"),
    ("merge-key", "base: &b {a: 1}\nx:\n  <<: *b\n", "3:3", "merge keys"),
    ("two-docs", "a: 1\n---\nb: 2\n", "2:1", "one YAML document"),
    ("syntax", "a: [1, 2\n", "2:1", "YAML syntax error"),
    ("tab-indent", "a:\n\t- 1\n", "2:1", "YAML syntax error"),
    ("control-char", "a: \x07\n", "1:4", "not allowed"),
    ("empty", "", "1:1", "file is empty"),
    ("only-comment", "# nothing\n", "1:1", "file is empty"),
    ("complex-key", "? [a, b]\n: 1\n", "1:3", "mapping key must be a plain name"),
    ("undefined-alias", "a: *nope\n", "1:4", ""),
]


@pytest.mark.parametrize("case_id, text, where, message", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_yaml_is_a_located_error(case_id, text, where, message):
    first = _problems(text)[0]
    rendered = first.render()
    assert rendered.startswith("f.yaml:" + where), rendered
    assert message in rendered
    assert "\n" not in rendered


def test_alias_bomb_stops_early():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 12):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    assert "nodes" in _problems("\n".join(lines) + "\n")[0].message


def test_plain_scalars_follow_yaml_1_2():
    doc = parse_yaml("a: 1\nb: -2\nc: 0.5\nd: 1e-3\ne: true\nf: ~\ng: '010'\nh: \"yes\"\ni: same\nj: 0\n", "f")
    assert doc.data == {"a": 1, "b": -2, "c": 0.5, "d": 0.001, "e": True, "f": None, "g": "010", "h": "yes",
                        "i": "same", "j": 0}


def test_positions_are_kept_for_values_and_keys():
    doc = parse_yaml("layers:\n  - conv2d: {filters: 3}\n", "f")
    assert doc.loc(("layers", 0)).line == 2 and doc.loc(("layers", 0)).column == 5
    assert doc.loc(("layers", 0, "conv2d", "filters")).column == 23
    assert doc.loc(("layers", 0, "conv2d", "filters"), key=True).column == 14


@pytest.mark.parametrize("raw, message", [
    (b"a: \xff\xfe\n", "not UTF-8"),
    (b"\xff\xfea\x00:\x00", "UTF-16"),
    (b"a: 1\x00\n", "NUL"),
])
def test_wrong_encodings(raw, message):
    with pytest.raises(SpecError) as info:
        decode_spec_bytes(raw, "f.yaml")
    assert message in info.value.diagnostics[0].message


def test_bom_is_accepted():
    assert decode_spec_bytes(b"\xef\xbb\xbfa: 1\n", "f") == "a: 1\n"


def test_unreadable_paths_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        read_spec_text(tmp_path / "missing.yaml")
    with pytest.raises(UsageError, match="is a directory"):
        read_spec_text(tmp_path)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (3 * 1024 * 1024))
    with pytest.raises(UsageError, match="at most"):
        read_spec_text(big)


def _parse_both(monkeypatch, text):
    """The document (or the rendered errors) from libyaml's parser and from pure Python's."""
    import yaml

    results = []
    for with_libyaml in (True, False):
        monkeypatch.setattr(yaml, "__with_libyaml__", with_libyaml)
        try:
            doc = parse_yaml(text, "f.yaml")
            results.append((doc.data, doc.value_pos, doc.key_pos, [p.render() for p in doc.problems]))
        except SpecError as exc:
            results.append([d.render() for d in exc.diagnostics])
    return results


SPEC_FILES = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.yaml")) + sorted(
    (Path(__file__).resolve().parent / "golden" / "errors").glob("*.yaml"))


@pytest.mark.parametrize("text", [c[1] for c in HOSTILE] + [p.read_text(encoding="utf-8") for p in SPEC_FILES],
                         ids=[c[0] for c in HOSTILE] + [p.name for p in SPEC_FILES])
def test_libyaml_and_pure_python_parsers_give_the_same_document(monkeypatch, text):
    fast, pure = _parse_both(monkeypatch, text)
    assert fast == pure
