"""``import``: blocks shared between files, and the block library shipped in the package.

An imported file is hostile input like any spec: every problem is a located error, in the imported
file where it is about that file's text and at the ``import`` entry where it is about the import.
"""
import json
import os
import sys

import pytest

import cnnspec
from cnnspec.api import check_path
from cnnspec.cli import main
from cnnspec.errors import SpecError
from cnnspec.spec.imports import LIBRARY, MAX_IMPORT_DEPTH, library_names
from cnnspec.spec.schema import MAX_IMPORTS

LIB = """\
cnnspec: 1
blocks:
  unit:
    params: {filters: 4}
    layers:
      - {conv2d: {filters: $filters, kernel: 1}, name: conv}
      - relu
"""


def spec(imports: str, layers: str = "  - {unit: null, name: u}\n", blocks: str = "") -> str:
    return f"cnnspec: 1\nname: t\ninput: [2, 4, 4]\nimport: {imports}\n{blocks}layers:\n{layers}"


def write(root, files: dict):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "net.yaml"


def rendered(path) -> list[str]:
    """Every error of a spec file, rendered, with the test's folder written as DIR."""
    graph, diagnostics = check_path(path)
    assert diagnostics, "expected errors"
    return [d.render().replace(str(path.parent) + os.sep, "DIR/").replace(str(path.parent), "DIR")
            for d in diagnostics]


# ---------------------------------------------------------------- what works
def test_a_relative_import_brings_its_blocks(tmp_path):
    path = write(tmp_path, {"net.yaml": spec("[lib/units.yaml]"), "lib/units.yaml": LIB})
    g = cnnspec.load(path).graph
    assert [n.name for n in g.nodes] == ["u.conv", "u.relu_1"]


def test_an_imported_file_imports_relative_to_itself(tmp_path):
    files = {"net.yaml": spec("lib/a.yaml", "  - {outer: null, name: o}\n"),
             "lib/a.yaml": "cnnspec: 1\nimport: [b.yaml]\nblocks:\n  outer:\n    layers: [{unit: null, name: i}]\n",
             "lib/b.yaml": LIB}
    g = cnnspec.load(write(tmp_path, files)).graph
    assert [n.name for n in g.nodes] == ["o.i.conv", "o.i.relu_1"]


def test_a_file_two_imports_share_is_read_once_and_does_not_clash(tmp_path):
    files = {"net.yaml": spec("[a.yaml, b.yaml]", "  - {a: null, name: p}\n  - {b: null, name: q}\n"),
             "a.yaml": "cnnspec: 1\nimport: common.yaml\nblocks:\n  a:\n    layers: [{unit: null, name: i}]\n",
             "b.yaml": "cnnspec: 1\nimport: common.yaml\nblocks:\n  b:\n    layers: [{unit: null, name: i}]\n",
             "common.yaml": LIB}
    assert len(cnnspec.load(write(tmp_path, files)).graph.nodes) == 4


def test_a_whole_spec_can_be_imported_for_its_blocks(tmp_path):
    other = "cnnspec: 1\nname: other\ninput: [1, 1, 1]\n" + LIB.split("\n", 1)[1] + "layers: [relu]\n"
    path = write(tmp_path, {"net.yaml": spec("other.yaml"), "other.yaml": other})
    assert cnnspec.load(path).graph.input_shape == (2, 4, 4)  # its input and layers are not used


def test_the_library_imports_from_a_file_or_from_text(tmp_path):
    layers = "  - {basic: {planes: 2}, name: layer1, repeat: 2}\n"
    from_text = cnnspec.loads(spec("cnnspec:resnet", layers)).graph
    from_file = cnnspec.load(write(tmp_path, {"net.yaml": spec("[cnnspec:resnet]", layers)})).graph
    assert [n.name for n in from_text.nodes] == [n.name for n in from_file.nodes]
    assert from_text.node("layer1.1.add_1").inputs == ("layer1.1.bn2", "layer1.0.relu_2")


def test_an_exported_spec_carries_the_imported_blocks_it_calls(tmp_path):
    path = write(tmp_path, {"net.yaml": spec("[lib.yaml, cnnspec:resnet]"), "lib.yaml": LIB})
    g = cnnspec.load(path).graph
    carried = json.loads(g.canonical_spec)
    assert "import" not in carried and list(carried["blocks"]) == ["unit"]  # not resnet's, which no call reached
    again = cnnspec.loads(g.canonical_spec, "<model metadata>").graph  # re-checks with no file beside it
    assert [n.name for n in again.nodes] == [n.name for n in g.nodes]


def test_a_spec_without_imports_is_carried_as_written():
    text = spec("[]").replace("import: []\n", "blocks:\n" + LIB.split("blocks:\n", 1)[1])
    g = cnnspec.loads(text).graph
    assert json.loads(g.canonical_spec)["blocks"]["unit"]["params"] == {"filters": 4}


# ---------------------------------------------------------------- errors about the import (at the entry)
IMPORT_ERRORS = [
    ("missing", "[nope.yaml]", {},
     "DIR/net.yaml:4:10: error: cannot import 'nope.yaml': no such file (DIR/nope.yaml)"),
    ("absolute", "[/etc/passwd.yaml]", {},
     "DIR/net.yaml:4:10: error: 'import' takes a path relative to the importing file, got '/etc/passwd.yaml'"),
    ("home", "[~/x.yaml]", {}, "DIR/net.yaml:4:10: error: 'import' takes a path relative to the importing file, "
                               "got '~/x.yaml'"),
    ("windows", "['C:\\x.yaml']", {}, "DIR/net.yaml:4:10: error: 'import' takes a path relative to the importing "
                                      "file, got 'C:\\x.yaml'"),
    ("backslash", "['lib\\x.yaml']", {}, "DIR/net.yaml:4:10: error: 'import' takes a path with '/' between "
                                         "folders, got 'lib\\x.yaml'"),
    ("not-yaml", "[notes.txt]", {"notes.txt": "secret"},
     "DIR/net.yaml:4:10: error: 'import' takes a .yaml or .yml file, got 'notes.txt'"),
    ("control", "[\"a\\0.yaml\"]", {}, "DIR/net.yaml:4:10: error: 'import' takes a path without control "
                                       "characters, got 'a\\x00.yaml'"),
    ("newline", "[\"cnnspec:a\\nb\"]", {}, "DIR/net.yaml:4:10: error: 'import' takes a path without control "
                                           "characters, got 'cnnspec:a\\nb'"),
    ("directory", "[dir.yaml]", {"dir.yaml/x": ""},
     "DIR/net.yaml:4:10: error: cannot import 'dir.yaml': not a regular file (DIR/dir.yaml)"),
    ("library-typo", "[cnnspec:resnt]", {}, "DIR/net.yaml:4:10: error: no block library 'cnnspec:resnt'; "
                                            "did you mean 'resnet'?"),
    ("library-unknown", "[cnnspec:../net]", {}, "DIR/net.yaml:4:10: error: no block library 'cnnspec:../net' "
                                                "(the library: " + ", ".join(library_names()) + ")"),
    ("self", "[net.yaml]", {}, "DIR/net.yaml:4:10: error: import cycle: net.yaml -> net.yaml; a file may not "
                               "import itself, directly or through others"),
    ("cycle", "[a.yaml]", {"a.yaml": "cnnspec: 1\nimport: [b.yaml]\nblocks: {}\n",
                           "b.yaml": "cnnspec: 1\nimport: [a.yaml]\nblocks: {}\n"},
     "DIR/b.yaml:2:10: error: import cycle: a.yaml -> b.yaml -> a.yaml; a file may not import itself, directly "
     "or through others"),
    ("clash-with-own", "[cnnspec:resnet]", {},
     "DIR/net.yaml:4:10: error: block 'basic' is defined twice, at DIR/net.yaml:6 and at "
     f"{LIBRARY / 'resnet.yaml'}:9; blocks of imported files share one name space, so rename one"),
    ("op-name-imported", "[ops.yaml]", {"ops.yaml": "cnnspec: 1\nblocks:\n  relu:\n    layers: [sigmoid]\n"},
     "DIR/net.yaml:4:10: error: block 'relu' has the name of an op: a layer 'relu' is always the op, never this "
     "block; rename the block (for example 'relu_block')"),
    ("clash-between-files", "[lib.yaml, again.yaml]", {"lib.yaml": LIB, "again.yaml": LIB},
     "DIR/net.yaml:4:20: error: block 'unit' is defined twice, at DIR/lib.yaml:3 and at DIR/again.yaml:3; "
     "blocks of imported files share one name space, so rename one"),
]


@pytest.mark.parametrize("case, imports, files, expected", IMPORT_ERRORS, ids=[c[0] for c in IMPORT_ERRORS])
def test_import_errors_are_located_at_the_entry(tmp_path, case, imports, files, expected):
    blocks = "blocks:\n  basic:\n    layers: [relu]\n" if case == "clash-with-own" else ""
    path = write(tmp_path, {**files, "net.yaml": spec(imports, "  - relu\n", blocks)})
    if case == "directory":
        (tmp_path / "dir.yaml" / "x").unlink()
    assert rendered(path)[0] == expected


def test_a_block_named_like_an_op_is_an_error_at_its_name(tmp_path):
    """The op would win every call, so the block could never run: said at the block, not only as
    the op's missing arguments at each call."""
    blocks = "blocks:\n  conv2d:\n    layers: [relu]\n"
    path = write(tmp_path, {"net.yaml": spec("[]", "  - relu\n", blocks)})
    assert rendered(path) == ["DIR/net.yaml:6:3: error: block 'conv2d' has the name of an op: a layer 'conv2d' is "
                              "always the op, never this block; rename the block (for example 'conv2d_block')"]


def test_a_file_outside_the_specs_folder_is_refused(tmp_path):
    (tmp_path / "outside.yaml").write_text(LIB)
    path = write(tmp_path / "specs", {"net.yaml": spec("[../outside.yaml]")})
    assert rendered(path)[0] == (f"DIR/net.yaml:4:10: error: 'import' reads only files inside the spec's folder "
                                 f"(specs), got '../outside.yaml', which is {tmp_path / 'outside.yaml'}")


@pytest.mark.skipif(not hasattr(os, "symlink") or sys.platform == "win32", reason="needs symbolic links")
def test_a_link_that_leads_outside_the_folder_is_refused(tmp_path):
    (tmp_path / "outside.yaml").write_text(LIB)
    path = write(tmp_path / "specs", {"net.yaml": spec("[inside.yaml]")})
    (tmp_path / "specs" / "inside.yaml").symlink_to(tmp_path / "outside.yaml")
    assert "'import' reads only files inside the spec's folder (specs), got 'inside.yaml'" in rendered(path)[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_named_pipe_is_refused_without_reading_it(tmp_path):
    path = write(tmp_path, {"net.yaml": spec("[pipe.yaml]")})
    os.mkfifo(tmp_path / "pipe.yaml")  # opening it would wait forever for a writer
    assert rendered(path)[0] == "DIR/net.yaml:4:10: error: cannot import 'pipe.yaml': not a regular file (DIR/pipe.yaml)"


def test_imports_nest_at_most_so_deep(tmp_path):
    files = {f"f{i}.yaml": f"cnnspec: 1\nimport: f{i + 1}.yaml\nblocks: {{}}\n" for i in range(MAX_IMPORT_DEPTH + 2)}
    path = write(tmp_path, {**files, "net.yaml": spec("f0.yaml", "  - relu\n")})
    assert rendered(path) == [f"DIR/f{MAX_IMPORT_DEPTH - 1}.yaml:2:9: error: imports nest deeper than "
                              f"{MAX_IMPORT_DEPTH} files, at 'f{MAX_IMPORT_DEPTH}.yaml'"]


def test_a_spec_reads_at_most_so_many_files(tmp_path):
    names = [f"f{i}.yaml" for i in range(MAX_IMPORTS + 1)]
    files = {name: f"cnnspec: 1\nblocks:\n  b{i}:\n    layers: [relu]\n" for i, name in enumerate(names)}
    listed = "\n" + "".join(f"  - {name}\n" for name in names)
    path = write(tmp_path, {**files, "net.yaml": spec(listed.rstrip("\n"), "  - relu\n")})
    assert rendered(path)[-1] == (f"DIR/net.yaml:{5 + MAX_IMPORTS}:5: error: a spec may import at most "
                                  f"{MAX_IMPORTS} files in all, and 'f{MAX_IMPORTS}.yaml' would be one more")


def test_text_imports_only_the_library():
    with pytest.raises(SpecError) as info:
        cnnspec.loads(spec("[lib.yaml]"), "<model metadata>")
    assert info.value.diagnostics[0].render() == (
        "<model metadata>:4:10: error: 'import' of a file needs a spec read from a file, and this one is "
        "<model metadata>; got 'lib.yaml' (the library, 'cnnspec:NAME', imports from anywhere)")


@pytest.mark.parametrize("value, expected", [
    ("3", "net.yaml:4:9: error: 'import' must be a file or a list of files ('blocks.yaml', 'cnnspec:resnet'), got 3"),
    ("[3]", "net.yaml:4:9: error: 'import' must be a file or a list of files ('blocks.yaml', 'cnnspec:resnet'), "
            "got [3]"),
    ("''", "net.yaml:4:9: error: 'import' must be a file or a list of files ('blocks.yaml', 'cnnspec:resnet'), "
           "got ''"),
])
def test_what_import_holds_is_checked_by_the_schema(value, expected):
    with pytest.raises(SpecError) as info:
        cnnspec.loads(spec(value, "  - relu\n"), "net.yaml")
    assert info.value.diagnostics[0].render() == expected


# ---------------------------------------------------------------- a hostile imported file: located in that file
HOSTILE = [
    ("yaml11", "cnnspec: 1\nblocks:\n  unit:\n    params: {on: yes}\n    layers: [relu]\n",
     "DIR/lib.yaml:4:18: error: 'yes' is a boolean in YAML 1.1 but a string in YAML 1.2; write true or false, or "
     "quote it"),
    ("tag", "cnnspec: 1\nblocks: !!python/object:os.system {}\n",
     "DIR/lib.yaml:2:9: error: YAML tags such as 'tag:yaml.org,2002:python/object:os.system' are not allowed in a spec"),
    ("bomb", "cnnspec: 1\na: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
             "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
             "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
     "DIR/lib.yaml:7:"),
    ("syntax", "cnnspec: 1\nblocks: {unit: [\n", "DIR/lib.yaml:3:1: error: YAML syntax error"),
    ("duplicate", "cnnspec: 1\nblocks: {}\nblocks: {}\n", "DIR/lib.yaml:3:1: error: duplicate key 'blocks' (first at line 2)"),
    ("not-a-mapping", "- relu\n", "DIR/lib.yaml:1:1: error: an imported file must be a mapping with 'cnnspec: 1' and "
                                  "'blocks', got [\"relu\"]"),
    ("no-version", "blocks: {}\n", "DIR/lib.yaml:1:1: error: the spec needs 'cnnspec'"),
    ("other-version", "cnnspec: 2\nblocks: {}\n", "DIR/lib.yaml:1:10: error: unsupported language version cnnspec: 2"),
    ("no-blocks", "cnnspec: 1\n", "DIR/lib.yaml:1:1: error: the spec needs 'blocks'"),
    ("unknown-key", "cnnspec: 1\nblocks: {}\nblokcs: {}\n", "DIR/lib.yaml:3:1: error: unknown key 'blokcs'; did you "
                                                            "mean 'blocks'?"),
    ("bad-block", "cnnspec: 1\nblocks:\n  unit: {layer: [relu]}\n", "DIR/lib.yaml:3:10: error: unknown key 'layer'"),
]


@pytest.mark.parametrize("case, text, expected", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_a_hostile_imported_file_is_located_in_that_file(tmp_path, case, text, expected):
    path = write(tmp_path, {"net.yaml": spec("[lib.yaml]", "  - relu\n"), "lib.yaml": text})
    assert rendered(path)[0].startswith(expected)


def test_an_imported_file_over_the_size_limit(tmp_path):
    from cnnspec.spec.loader import MAX_FILE_BYTES

    path = write(tmp_path, {"net.yaml": spec("[big.yaml]", "  - relu\n"), "big.yaml": "#" * (MAX_FILE_BYTES + 1)})
    assert rendered(path) == [f"DIR/net.yaml:4:10: error: cannot import 'big.yaml': DIR/big.yaml: file is "
                              f"{MAX_FILE_BYTES + 1} bytes; a spec may be at most {MAX_FILE_BYTES} bytes"]


def test_an_imported_file_that_is_not_utf8(tmp_path):
    path = write(tmp_path, {"net.yaml": spec("[lib.yaml]", "  - relu\n")})
    (tmp_path / "lib.yaml").write_bytes(b"cnnspec: 1\nblocks: {}\n# \xff\n")
    assert rendered(path) == ["DIR/lib.yaml:3:3: error: file is not UTF-8: byte 0xff cannot be decoded"]


# ---------------------------------------------------------------- errors inside imported blocks
def test_an_error_in_an_imported_block_is_located_there_and_names_the_call(tmp_path):
    files = {"net.yaml": spec("[lib.yaml]", "  - {unit: {filters: 0}, name: u}\n"), "lib.yaml": LIB}
    assert rendered(write(tmp_path, files)) == [
        "DIR/lib.yaml:6:28: error: u.conv: 'filters' must be at least 1, got 0 (in block 'unit' called "
        "at DIR/net.yaml:6)"]


def test_an_error_many_calls_reach_in_an_imported_block_is_said_once(tmp_path):
    lib = LIB.replace("      - relu\n", "      - rleu\n")
    layers = "  - {unit: null, name: a}\n  - {unit: null, name: b}\n"
    assert rendered(write(tmp_path, {"net.yaml": spec("[lib.yaml]", layers), "lib.yaml": lib})) == [
        "DIR/lib.yaml:7:9: error: unknown op 'rleu'; did you mean 'relu'? (in block 'unit', reached by 2 calls, "
        "first at DIR/net.yaml:6)"]


def test_the_cli_prints_imported_errors_one_line_each_and_exits_1(tmp_path, capsys):
    path = write(tmp_path, {"net.yaml": spec("[lib.yaml, nope.yaml]"), "lib.yaml": LIB.replace("kernel: 1", "kernal: 1")})
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == f"{path}:4:20: error: cannot import 'nope.yaml': no such file ({tmp_path / 'nope.yaml'})"
    assert err[1] == (f"{tmp_path / 'lib.yaml'}:6:38: error: u.conv has no argument 'kernal'; did you mean 'kernel'? "
                      f"(in block 'unit' called at {path}:6)")
    assert err[-1] == f"{path}: 2 errors"


def test_check_json_names_the_file_of_an_error_in_an_imported_block(tmp_path, capsys):
    files = {"net.yaml": spec("[lib.yaml]", "  - {unit: {filters: 0}, name: u}\n"), "lib.yaml": LIB}
    path = write(tmp_path, files)
    assert main(["check", "--json", str(path)]) == 1
    error = json.loads(capsys.readouterr().out)["errors"][0]
    assert (error["file"], error["line"], error["column"]) == (str(tmp_path / "lib.yaml"), 6, 28)
    path.write_text(spec("[lib.yaml]", "  - {unit: null, name: u}\n  - {dense: 3}\n"))
    assert main(["check", "--json", str(path)]) == 1
    assert "file" not in json.loads(capsys.readouterr().out)["errors"][0]  # an error in the spec itself


# ---------------------------------------------------------------- never a traceback
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from test_fuzz import JSONISH, YAMLISH  # noqa: E402

ENTRIES = st.sampled_from(["lib.yaml", "sub/lib.yaml", "../lib.yaml", "net.yaml", "cnnspec:resnet", "cnnspec:",
                           "cnnspec:x", "lib.yml", "/lib.yaml", "", "lib.yaml/"]) | st.text(max_size=10)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(entries=st.lists(ENTRIES, max_size=4) | ENTRIES | JSONISH,
       lib=YAMLISH | st.builds(lambda v: json.dumps({"cnnspec": 1, "blocks": v}), JSONISH))
def test_random_imports_and_imported_files_give_located_errors_only(tmp_path_factory, entries, lib):
    root = tmp_path_factory.mktemp("fuzz")
    text = json.dumps({"cnnspec": 1, "name": "f", "input": [2, 4, 4], "import": entries,
                       "layers": [{"unit": None}, "relu"]})
    path = write(root, {"net.yaml": text, "lib.yaml": lib, "sub/lib.yaml": lib})
    graph, diagnostics = check_path(path)
    assert graph is not None or diagnostics
    for d in diagnostics:
        assert d.location is not None and "\n" not in d.render()
