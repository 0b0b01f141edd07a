"""``cnnspec lsp`` end to end: a plain JSON-RPC client over stdio (tests/lsp_client.py) against the real
server process. Diagnostics are compared with ``check``'s own, hints with ``check --json``'s shapes."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from lsprotocol import types as lsp_types

pytest.importorskip("pygls", reason="cnnspec lsp needs the 'lsp' extra (pygls)")

from lsp_client import Client  # noqa: E402
from test_check_errors import BLOCK_CASES, BLOCKY, CASES, HEAD  # noqa: E402

from cnnspec.api import check_path  # noqa: E402
from cnnspec.graph.lint import lint  # noqa: E402
from cnnspec.graph.ops import OPS  # noqa: E402
from cnnspec.spec.schema import RESERVED  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
BAD = """\
cnnspec: 1
name: bad
input: [3, 32, 32]
blocks:
  unit:
    description: a convolution and an activation
    params: {f: null, k: 3}
    layers:
      - {conv2d: {filters: $f, kernel: $k, padding: same}, name: c}
      - rleu
layers:
  - {conv2d: {filters: 16, kernel: 3, activation: rleu}, name: first}
  - {conv2d_transpose: {filters: 8, kernel: 2}}
  - {maxpool: {kernel: 1}}
  - {unit: {f: 8}, name: u1}
  - {maxpool2d: 2, in: u1}
  - flatten
  - dense: 10
"""
GOOD = BAD.replace("- rleu", "- relu").replace("activation: rleu", "activation: relu") \
          .replace("  - {maxpool: {kernel: 1}}\n", "")


@pytest.fixture(scope="module")
def client():
    with Client() as c:
        c.initialize()
        yield c


def opened(client: Client, path: Path, text: str | None = None) -> tuple[str, list]:
    """Open ``path`` (with ``text``, else its contents) and return its URI and first diagnostics."""
    uri = path.as_uri()
    client.open(uri, path.read_text() if text is None else text)
    return uri, client.diagnostics(uri, 1)


def closed(client: Client, uri: str) -> None:
    client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    client.diagnostics(uri)  # the server clears them


def check_lines(path: Path) -> list[tuple[int, int, str, str]]:
    """``check``'s diagnostics of a file: (0-based line, column, message as printed, severity)."""
    graph, diagnostics = check_path(path)
    diagnostics += lint(graph) if graph is not None and not diagnostics else []
    out = []
    for d in diagnostics:
        head = f"{d.location}: {d.severity}: "
        out.append((d.location.line - 1, d.location.column - 1, d.render()[len(head):], d.severity))
    return out


def lsp_lines(diagnostics: list[dict]) -> list[tuple[int, int, str, str]]:
    """The errors and warnings (an error in a block is also shown at its call, as information)."""
    return [(d["range"]["start"]["line"], d["range"]["start"]["character"], d["message"],
             {1: "error", 2: "warning"}[d["severity"]]) for d in diagnostics if d["severity"] in (1, 2)]


def test_the_server_says_what_it_offers(client):
    with Client() as fresh:
        caps = fresh.initialize()["capabilities"]
        for key in ("inlayHintProvider", "hoverProvider", "completionProvider", "definitionProvider",
                    "documentSymbolProvider", "codeActionProvider"):
            assert caps.get(key), key
        assert fresh.close() == 0


ALL_CASES = [(case_id, body if body.startswith("cnnspec") else HEAD + body) for case_id, body, _ in CASES] + \
    [(case_id, BLOCKY % (extra, calls)) for case_id, extra, calls, _ in BLOCK_CASES] + [("bad", BAD)]


def test_diagnostics_are_exactly_checks_errors_at_their_lines_and_columns(client, tmp_path):
    for case_id, text in ALL_CASES:
        path = tmp_path / f"{case_id}.yaml"
        path.write_text(text)
        uri, diagnostics = opened(client, path)
        assert lsp_lines(diagnostics) == check_lines(path), case_id
        assert all(d["source"] == "cnnspec" for d in diagnostics)
        closed(client, uri)


def test_a_warning_is_a_warning(client, tmp_path):
    path = tmp_path / "warn.yaml"
    path.write_text(HEAD + "  - flatten\n  - {dense: {units: 1, activation: softmax}}\n")
    uri, diagnostics = opened(client, path)
    assert lsp_lines(diagnostics) == check_lines(path) and diagnostics[0]["severity"] == 2
    closed(client, uri)


@pytest.mark.parametrize("line, covered", [
    ("  - conv2: {filters: 3, kernel: 3}\n", "conv2"),
    ("  - conv2d: {filters: 3, kernal: 3}\n", "kernal"),
    ("  - conv2d: {filters: -3, kernel: 3}\n", "-3"),
    ("  - conv2d: {filters: 3, kernel: 3, padding: full}\n", "full"),
    ("  - {relu: null, name: 'a b'}\n", "'a b'"),
    ("  - flaten\n", "flaten"),
])
def test_a_range_covers_the_offending_key_or_value(client, tmp_path, line, covered):
    path = tmp_path / "r.yaml"
    text = HEAD + line
    uri, diagnostics = opened(client, path, text)
    r = diagnostics[0]["range"]
    assert r["start"]["line"] == r["end"]["line"]
    assert text.split("\n")[r["start"]["line"]][r["start"]["character"]:r["end"]["character"]] == covered
    closed(client, uri)


def test_a_fixed_error_disappears_at_the_next_change_and_the_newest_text_wins(client, tmp_path):
    path = tmp_path / "fix.yaml"
    path.write_text(BAD)
    uri, diagnostics = opened(client, path)
    assert len(lsp_lines(diagnostics)) == 3
    (info,) = [d for d in diagnostics if d["severity"] == 3]  # the block's error, at its call too
    assert info["range"]["start"]["line"] == 14 and info["message"].startswith("unknown op 'rleu'")
    assert info["relatedInformation"][0]["location"]["range"]["start"] == {"line": 9, "character": 8}
    for version in range(2, 7):  # a burst of edits: only the last text's diagnostics count
        client.change(uri, GOOD if version == 6 else BAD.replace("dense: 10", f"dense: {version}"), version)
    assert client.diagnostics(uri, 6) == []
    closed(client, uri)


def hint_shapes(hints: list[dict]) -> list[list[int]]:
    return [json.loads(re.match(r"\[[0-9, ]*\]", h["label"]).group(0)) for h in hints]


def json_of(path: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "cnnspec", "check", "--json", str(path)], capture_output=True,
                         text=True, cwd=ROOT)
    return json.loads(out.stdout)


@pytest.mark.parametrize("spec", ["resnet50", "vgg16", "mobilenet-v2"])
def test_inlay_hints_are_check_jsons_shapes(client, spec):
    path = SPECS / f"{spec}.yaml"
    uri, diagnostics = opened(client, path)
    assert diagnostics == []
    hints = client.hints(uri)
    report = json_of(path)
    # each top-level item's output: the last layer it makes; a call's layers come together, named
    # '<call>.<layer>', its calls '<name>.<k>' when it repeats
    expected, layers, i = [], report["layers"], 0
    for item in yaml.safe_load(path.read_text())["layers"]:
        op = item if isinstance(item, str) else next(k for k in item if k not in RESERVED)
        if op in OPS:
            expected.append(layers[i]["output_shape"])
            i += 1
            continue
        repeat = item.get("repeat")
        times, start = (repeat["times"], repeat.get("start", 0)) if isinstance(repeat, dict) else (repeat, 0)
        calls = [item["name"]] if repeat is None else [f"{item['name']}.{k}" for k in range(start, start + times)]
        for call in calls:
            while i < len(layers) and layers[i]["name"].startswith(call + "."):
                i += 1
        expected.append(layers[i - 1]["output_shape"])
    assert hint_shapes(hints) == expected
    lines = path.read_text().split("\n")
    layers_line = lines.index("layers:")
    assert [h["position"]["line"] for h in hints] == [n for n in range(layers_line + 1, len(lines))
                                                     if lines[n].lstrip().startswith("- ")][:len(hints)]
    assert all(h["position"]["character"] == len(lines[h["position"]["line"]].rstrip()) for h in hints)
    closed(client, uri)


def test_a_calls_hint_has_its_parameter_count_and_names_expect_only_where_it_disagrees(client, tmp_path):
    path = tmp_path / "calls.yaml"
    text = GOOD.replace("{unit: {f: 8}, name: u1}", "{unit: {f: 8}, name: u1, expect: [8, 31, 31]}") \
               .replace("{maxpool2d: 2, in: u1}", "{maxpool2d: 2, in: u1, expect: [8, 9, 9]}")
    uri, _ = opened(client, path, text)
    labels = [h["label"] for h in client.hints(uri)]
    assert labels[2] == "[8, 31, 31] · 584 params"  # 8*8*3*3 + 8: the call's conv
    assert labels[3] == "[8, 15, 15] ≠ expect [8, 9, 9]"
    assert labels[0] == "[16, 30, 30]"
    closed(client, uri)


def test_hints_keep_the_last_good_shapes_while_the_text_is_broken(client, tmp_path):
    path = tmp_path / "broken.yaml"
    uri, _ = opened(client, path, GOOD)
    before = client.hints(uri)
    client.change(uri, GOOD + "  - {dense: [\n", 2)
    assert client.diagnostics(uri, 2)[0]["message"].startswith("YAML syntax error")
    assert client.hints(uri) == before
    closed(client, uri)


def hover_text(client, uri, line, character) -> str:
    result = client.at("textDocument/hover", uri, line, character)
    return result["contents"]["value"] if result else ""


def test_hover_on_a_layer_an_op_and_a_block(client, tmp_path):
    path = tmp_path / "h.yaml"
    uri, _ = opened(client, path, GOOD)
    text = hover_text(client, uri, 11, 6)  # conv2d of 'first'
    for words in ("**first**", "output: `[16, 30, 30]`", "params: 448", "MACs: 388,800", "receptive field: 3x3",
                  "**conv2d** (op)", "`kernel` (required)", "`stride` (= 1)", "`activation` (= null)"):
        assert words in text, words
    call = hover_text(client, uri, 13, 6)  # the unit call
    for words in ("call of block `unit`", "params: 584", "**unit** (block)", "`f` (required)", "`k` (= 3)",
                  f"Defined at {path}:5", "a convolution and an activation"):
        assert words in call, words
    assert "maxpool" in hover_text(client, uri, 14, 20)  # anywhere on the item: its figures
    assert hover_text(client, uri, 4, 3).startswith("**unit** (block)")  # on the block's own name
    closed(client, uri)


@pytest.mark.parametrize("replace, line, probe, expected, absent", [
    ("- {maxpool2d: 2, in: u1}", 14, "  - {maxpool2d: 2, in: ", ["input", "first", "conv2d_transpose_1", "u1"], ["flatten_1"]),
    ("- {maxpool2d: 2, in: u1}", 14, "  - co", ["conv2d", "concat", "unit"], []),
    ("- {maxpool2d: 2, in: u1}", 14, "  - {maxpool2d: {ker", ["kernel", "stride", "padding", "ceil"], ["filters"]),
    ("- {maxpool2d: 2, in: u1}", 14, "  - {maxpool2d: {kernel: 2, padding: ", ["same", "valid"], []),
    ("- {maxpool2d: 2, in: u1}", 14, "  - {dense: {units: 3, activation: ", ["relu", "gelu", "hard_swish"], ["same"]),
    ("- {maxpool2d: 2, in: u1}", 14, "  - {unit: {", ["f", "k"], []),
    ("{filters: $f, kernel: $k,", 8, "      - {conv2d: {filters: $", ["f", "k"], []),
])
def test_completion(client, tmp_path, replace, line, probe, expected, absent):
    path = tmp_path / "c.yaml"
    original = GOOD.split("\n")[line]
    assert replace in original
    text = GOOD.replace(original, probe)
    uri, _ = opened(client, path, text)
    result = client.at("textDocument/completion", uri, line, len(probe))
    labels = [item["label"] for item in (result["items"] if isinstance(result, dict) else result)]
    for word in expected:
        assert word in labels, (word, labels)
    for word in absent:
        assert word not in labels, word
    closed(client, uri)


def test_completion_of_spec_parameters_and_scales_reads_the_raw_keys(client, tmp_path):
    path = tmp_path / "p.yaml"
    text = GOOD.replace("input: [3, 32, 32]", "params: {width: 1.0, depth: 2}\nscales:\n  b0: {width: 1.0}\n"
                        "  b1: {width: 1.5}\ninput: [3, 32, 32]") + "# cnnspec check --scale \n"
    uri, _ = opened(client, path, text)
    lines = text.split("\n")
    n = lines.index("  - dense: 10")
    probe = "  - dense: $"
    client.change(uri, text.replace("  - dense: 10", probe), 2)
    client.diagnostics(uri, 2)
    labels = [i["label"] for i in client.at("textDocument/completion", uri, n, len(probe))["items"]]
    assert {"width", "depth"} <= set(labels)
    last = len(lines) - 2
    labels = [i["label"] for i in client.at("textDocument/completion", uri, last, len(lines[last]))["items"]]
    assert labels == ["b0", "b1"]
    closed(client, uri)


def test_go_to_definition(client, tmp_path):
    (tmp_path / "lib.yaml").write_text("cnnspec: 1\nblocks:\n  twice:\n    layers: [relu, relu]\n")
    path = tmp_path / "d.yaml"
    text = GOOD.replace("blocks:", "import: [lib.yaml, 'cnnspec:resnet']\nblocks:") \
               .replace("  - flatten", "  - {twice: null, name: tw}\n  - {basic: {planes: 8}, name: bb}\n  - flatten")
    uri, diagnostics = opened(client, path, text)
    assert diagnostics == []
    lines = text.split("\n")

    def target(line_text, word):
        n = lines.index(line_text)
        found = client.at("textDocument/definition", uri, n, lines[n].index(word) + 1)
        return (found[0]["uri"], found[0]["range"]["start"]["line"]) if found else None

    assert target("  - {unit: {f: 8}, name: u1}", "unit") == (uri, lines.index("  unit:"))
    assert target("  - {twice: null, name: tw}", "twice") == ((tmp_path / "lib.yaml").as_uri(), 2)
    library = (ROOT / "cnnspec" / "blocks" / "resnet.yaml").resolve()
    assert target("  - {basic: {planes: 8}, name: bb}", "basic") == \
        (library.as_uri(), library.read_text().split("\n").index("  basic:                 # torchvision's BasicBlock: two 3x3 convolutions and a shortcut"))
    assert target("  - {maxpool2d: 2, in: u1}", "u1") == (uri, lines.index("  - {unit: {f: 8}, name: u1}"))
    assert target("import: [lib.yaml, 'cnnspec:resnet']", "lib.yaml") == ((tmp_path / "lib.yaml").as_uri(), 0)
    assert target("import: [lib.yaml, 'cnnspec:resnet']", "cnnspec:") == (library.as_uri(), 0)
    closed(client, uri)


def test_document_symbols_outline_blocks_and_layers(client, tmp_path):
    path = tmp_path / "s.yaml"
    uri, _ = opened(client, path, GOOD)
    found = client.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
    assert [s["name"] for s in found] == ["unit", "first", "conv2d_transpose_1", "u1", "maxpool2d_1", "flatten_1",
                                          "dense_1"]
    assert [c["name"] for c in found[0]["children"]] == ["c", "relu"]
    assert found[3]["detail"] == "block unit → [8, 31, 31]" and found[1]["detail"] == "conv2d → [16, 30, 30]"
    for s in found:  # a client rejects a selection outside its range
        r, sel = s["range"], s["selectionRange"]
        assert (r["start"]["line"], r["start"]["character"]) <= (sel["start"]["line"], sel["start"]["character"])
        assert (sel["end"]["line"], sel["end"]["character"]) <= (r["end"]["line"], r["end"]["character"])
    closed(client, uri)


def test_code_actions_apply_checks_suggestions(client, tmp_path):
    path = tmp_path / "a.yaml"
    uri, diagnostics = opened(client, path, BAD)
    diagnostics = [d for d in diagnostics if d["severity"] == 1]
    actions = client.request("textDocument/codeAction", {"textDocument": {"uri": uri}, "range": diagnostics[0]["range"],
                                                         "context": {"diagnostics": diagnostics}})
    assert [a["title"] for a in actions] == ["Change 'rleu' to 'relu'", "Change 'rleu' to 'relu'",
                                             "Change 'maxpool' to 'maxpool2d'"]
    lines = BAD.split("\n")
    for action in actions:  # applied together, they fix the text
        (edit,) = action["edit"]["changes"][uri]
        r = edit["range"]
        row = lines[r["start"]["line"]]
        lines[r["start"]["line"]] = row[:r["start"]["character"]] + edit["newText"] + row[r["end"]["character"]:]
    assert "\n".join(lines) == BAD.replace("rleu", "relu").replace("{maxpool: {", "{maxpool2d: {")
    closed(client, uri)


@pytest.mark.parametrize("message", [
    "unknown op 'conv_transpose2d'; did you mean 'conv2d_transpose'?",
    "unknown op 'conv_transpose2d'; did you mean 'conv2d_transpose'? ('conv_transpose2d' is PyTorch's name for it)",
])
def test_a_quick_fix_replaces_the_quoted_word_within_the_range(message):
    """The fix reads check's wording, with or without a note on whose name the word is."""
    from cnnspec.lsp.actions import quick_fixes
    from cnnspec.lsp.text import Lines

    text = "layers:\n  - {conv_transpose2d: {filters: 8, kernel: 2}}\n"
    diagnostic = lsp_types.Diagnostic(range=lsp_types.Range(
        start=lsp_types.Position(line=1, character=4), end=lsp_types.Position(line=1, character=48)),
        message=message, source="cnnspec")
    (action,) = quick_fixes("file:///x.yaml", Lines(text), [diagnostic])
    (edit,) = action.edit.changes["file:///x.yaml"]
    assert (edit.range.start.character, edit.range.end.character, edit.new_text) == (5, 21, "conv2d_transpose")


def test_an_error_in_an_imported_file_shows_at_the_call_and_in_that_file(client, tmp_path):
    lib = tmp_path / "lib.yaml"
    lib.write_text("cnnspec: 1\nblocks:\n  twice:\n    layers: [relu, {conv2d: {filters: 2, kernal: 3}}]\n")
    path = tmp_path / "main.yaml"
    text = HEAD + "  - {twice: null, name: t}\n"
    path.write_text(text.replace("layers:", "import: lib.yaml\nlayers:"))
    lib_uri, _ = opened(client, lib)
    uri, diagnostics = opened(client, path)
    (d,) = diagnostics
    assert d["range"]["start"]["line"] == 5 and "kernal" in d["message"]
    assert d["relatedInformation"][0]["location"]["uri"] == lib_uri
    assert d["relatedInformation"][0]["location"]["range"]["start"]["line"] == 3
    there = client.diagnostics(lib_uri)
    assert any("kernal" in x["message"] and x["range"]["start"]["line"] == 3 for x in there)
    fixed = lib.read_text().replace("kernal", "kernel")  # fixed and saved: the spec that imports it checks again
    lib.write_text(fixed)
    client.change(lib_uri, fixed, 2)
    client.notify("textDocument/didSave", {"textDocument": {"uri": lib_uri}})
    assert client.wait_for("textDocument/publishDiagnostics", lambda p: p["uri"] == uri and not p["diagnostics"])
    closed(client, uri)
    closed(client, lib_uri)


def test_shutdown_and_exit_leave_nothing_behind(tmp_path):
    c = Client(cwd=tmp_path)
    c.initialize()
    uri, _ = opened(c, SPECS / "resnet50.yaml")
    assert c.close() == 0
    assert list(tmp_path.iterdir()) == []
    eof = Client(cwd=tmp_path)  # a client that just goes away: the server ends on end of input
    eof.initialize()
    eof.proc.stdin.close()
    assert eof.proc.wait(10) is not None
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("encoding, width", [("utf-16", lambda s: len(s.encode("utf-16-le")) // 2),
                                             ("utf-8", lambda s: len(s.encode("utf-8"))),
                                             ("utf-32", len)])
def test_positions_follow_the_negotiated_encoding(tmp_path, encoding, width):
    text = HEAD + "  - conv2d: {filters: 3, kernel: 3, activation: '🙂é', padding: full}\n"
    with Client() as c:
        caps = c.initialize({"general": {"positionEncodings": [encoding]}})["capabilities"]
        assert caps["positionEncoding"] == encoding
        uri = (tmp_path / "enc.yaml").as_uri()
        c.open(uri, text)
        found = c.diagnostics(uri, 1)
        row = text.split("\n")[4]
        start = row.index("full")
        assert [(d["range"]["start"]["character"], d["range"]["end"]["character"]) for d in found
                if "padding" in d["message"]] == [(width(row[:start]), width(row[:start + 4]))]
        hover = c.at("textDocument/hover", uri, 4, width(row[:start]) + 1)
        assert hover is None or "conv2d" in hover["contents"]["value"]
        assert c.close() == 0
