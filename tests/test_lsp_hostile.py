"""``cnnspec lsp`` under hostile documents: each gives diagnostics or nothing, never a crash or a hang,
and the server answers the next request; it never imports a framework; random edits never crash it."""
from __future__ import annotations

import os
import shutil
import time
import sys
from pathlib import Path

import pytest

pytest.importorskip("pygls", reason="cnnspec lsp needs the 'lsp' extra (pygls)")

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402
from lsp_client import Client  # noqa: E402
from lsprotocol import types  # noqa: E402

from cnnspec.lsp import actions, completion, hints, hover, navigation  # noqa: E402
from cnnspec.lsp.analysis import analyse  # noqa: E402
from cnnspec.lsp.diagnostics import to_lsp  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESNET = ROOT / "specs" / "resnet50.yaml"


@pytest.fixture(scope="module")
def client():
    with Client() as c:
        c.initialize()
        yield c


def still_answers(client: Client, uri: str) -> None:
    """The server answers every kind of request on the document, and on a sane one."""
    assert isinstance(client.hints(uri), list)
    for method in ("textDocument/hover", "textDocument/completion", "textDocument/definition"):
        client.at(method, uri, 0, 0)
    client.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
    sane = RESNET.as_uri()
    client.open(sane, RESNET.read_text())
    assert client.diagnostics(sane) == []
    assert client.at("textDocument/hover", sane, 13, 6)["contents"]["value"].startswith("**conv1**")
    client.notify("textDocument/didClose", {"textDocument": {"uri": sane}})
    client.diagnostics(sane)


def close(client: Client, uri: str) -> None:
    client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    client.diagnostics(uri)


def test_half_typed_yaml_keystroke_by_keystroke(client, tmp_path):
    text = (ROOT / "specs" / "lenet-5.yaml").read_text()
    uri = (tmp_path / "typing.yaml").as_uri()
    client.open(uri, "")
    client.diagnostics(uri, 1)
    version = 1
    for end in range(0, len(text) + 1, 7):  # typed in bursts: every change is checked or overtaken
        version += 1
        client.change(uri, text[:end], version)
    version += 1
    client.change(uri, text, version)
    assert client.diagnostics(uri, version) == []
    for cut in range(0, len(text), max(len(text) // 25, 1)):  # each half-typed text, checked on its own
        version += 1
        client.change(uri, text[:cut], version)
        client.diagnostics(uri, version)
        client.at("textDocument/completion", uri, text[:cut].count("\n"), 0)
    still_answers(client, uri)
    close(client, uri)


def test_invalid_utf8_in_a_message_and_a_lone_surrogate_in_a_text(client, tmp_path):
    uri = (tmp_path / "bytes.yaml").as_uri()
    client.send_raw(b'{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":{"uri":"'
                    + uri.encode() + b'","languageId":"yaml","version":1,"text":"cnnspec: 1\\nname: \xff\xfe\\n"}}}')
    client.open(uri, "cnnspec: 1\nname: \ud800\n", 2)  # JSON may carry what UTF-8 cannot
    (d,) = client.diagnostics(uri, 2)
    assert d["message"] == "file is not UTF-8: byte 0xed cannot be decoded" and d["range"]["start"] == {
        "line": 1, "character": 6}
    still_answers(client, uri)
    close(client, uri)


@pytest.mark.slow
def test_a_document_over_2_mib_and_one_just_under(client, tmp_path):
    uri = (tmp_path / "big.yaml").as_uri()
    spec = RESNET.read_text()
    under = spec + "# " + "x" * (2 * 1024 * 1024 - len(spec) - 10) + "\n"
    client.open(uri, under)
    assert client.diagnostics(uri, 1) == []
    client.change(uri, under + "#" * 20, 2)
    (d,) = client.diagnostics(uri, 2)
    assert d["message"].endswith("bytes; a spec may be at most 2097152 bytes")
    client.change(uri, "\n".join(f"  - {{relu: null, name: r{i}}}" for i in range(60_000)), 3)  # 2 MiB of layers
    client.diagnostics(uri, 3, timeout=60)
    still_answers(client, uri)
    close(client, uri)


@pytest.mark.parametrize("text", ["[" * 100_000, "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 300)),
                                  "x: " + "{a: " * 5000 + "1" + "}" * 5000, "&a [*a]", "- !!python/object:os.system ls\n"])
def test_deep_nesting_and_strange_yaml(client, tmp_path, text):
    uri = (tmp_path / "deep.yaml").as_uri()
    client.open(uri, text)
    assert client.diagnostics(uri, 1)
    still_answers(client, uri)
    close(client, uri)


@pytest.mark.slow  # check itself takes seconds on it: libyaml refuses it, pure-Python YAML words the error
def test_a_megabyte_on_one_line(client, tmp_path):
    uri = (tmp_path / "line.yaml").as_uri()
    layers = ", ".join(f"{{relu: null, in: [input, r{i}], name: r{i}}}" for i in range(25_000))
    text = "cnnspec: 1\nname: line\ninput: [1, 4, 4]\nlayers: [" + layers + ", {in: [input, "
    client.open(uri, text)
    assert client.diagnostics(uri, 1, timeout=60)
    start = time.monotonic()
    for character in (len(text.split("\n")[3]), 100, 500_000):
        client.at("textDocument/completion", uri, 3, character)
        client.at("textDocument/hover", uri, 3, character)
    assert time.monotonic() - start < 20
    still_answers(client, uri)
    close(client, uri)


def test_an_import_cycle(client, tmp_path):
    (tmp_path / "a.yaml").write_text("cnnspec: 1\nimport: b.yaml\nblocks:\n  x:\n    layers: [relu]\n")
    (tmp_path / "b.yaml").write_text("cnnspec: 1\nimport: a.yaml\nblocks:\n  y:\n    layers: [relu]\n")
    main = tmp_path / "main.yaml"
    main.write_text("cnnspec: 1\nname: m\ninput: [1, 4, 4]\nimport: a.yaml\nlayers: [x, y]\n")
    client.open(main.as_uri(), main.read_text())
    diagnostics = client.diagnostics(main.as_uri(), 1)
    assert any("import cycle" in d["message"] for d in diagnostics)
    still_answers(client, main.as_uri())
    close(client, main.as_uri())


def test_a_file_deleted_while_open(client, tmp_path):
    folder = tmp_path / "gone"
    folder.mkdir()
    (folder / "lib.yaml").write_text("cnnspec: 1\nblocks:\n  twice:\n    layers: [relu, relu]\n")
    path = folder / "net.yaml"
    text = "cnnspec: 1\nname: net\ninput: [1, 4, 4]\nimport: lib.yaml\nlayers: [{twice: null, name: t}]\n"
    path.write_text(text)
    uri = path.as_uri()
    client.open(uri, text)
    assert client.diagnostics(uri, 1) == []
    shutil.rmtree(folder)
    client.change(uri, text + "# edited\n", 2)
    found = client.diagnostics(uri, 2)
    assert any("cannot import 'lib.yaml'" in d["message"] for d in found)
    client.notify("textDocument/didSave", {"textDocument": {"uri": uri}})
    client.at("textDocument/definition", uri, 4, 12)
    still_answers(client, uri)
    close(client, uri)


NO_FRAMEWORK = """
import atexit, os, sys
atexit.register(lambda: open(os.environ["CNNSPEC_MODULES"], "w").write("\\n".join(sorted(sys.modules))))
from cnnspec.cli import main
sys.exit(main(["lsp"]))
"""


def test_a_running_server_never_imports_a_framework(tmp_path):
    modules = tmp_path / "modules.txt"
    env = {**os.environ, "CNNSPEC_MODULES": str(modules)}
    with Client([sys.executable, "-c", NO_FRAMEWORK], env=env) as c:
        c.initialize()
        uri = RESNET.as_uri()
        c.open(uri, RESNET.read_text())
        c.diagnostics(uri)
        c.hints(uri)
        for method in ("textDocument/hover", "textDocument/completion", "textDocument/definition"):
            c.at(method, uri, 17, 8)
        c.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
        assert c.close() == 0
    loaded = set(modules.read_text().split("\n"))
    assert "cnnspec.lsp.server" in loaded
    for framework in ("torch", "tensorflow", "keras", "onnx", "onnxruntime"):
        assert framework not in loaded, framework


# ------------------------------------------------------------------ random edits, handlers in process

ZOO = sorted((ROOT / "specs").glob("*.yaml"))
TEXTS = {p.name: p.read_text() for p in ZOO}
PIECES = ["", "\n", " ", "-", ":", "{", "}", "[", "]", ",", "$", "'", '"', "#", "&a", "*a", "conv2d", "relu",
          "in: ", "name: x", "expect: [1]", "repeat: 3", "\t", "\x00", "\ud800", "é", "🙂", "import: x.yaml"]


GOOD: dict = {}


@st.composite
def edited(draw):
    name = draw(st.sampled_from(sorted(TEXTS)))
    text = TEXTS[name]
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 40)))
        text = text[:start] + draw(st.sampled_from(PIECES)) + text[end:]
    return name, text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edited(), st.integers(0, 200), st.integers(0, 120))
def test_random_edits_to_zoo_specs_never_crash_a_handler(case, line, column):
    name, text = case
    a = analyse(text, str(ROOT / "specs" / name), ROOT / "specs" / name)
    if name not in GOOD:
        GOOD[name] = analyse(TEXTS[name], str(ROOT / "specs" / name), ROOT / "specs" / name)
    good = GOOD[name]
    position = types.Position(line=line, character=column)
    by_file = to_lsp(a, lambda f: a.lines, lambda f: Path(f).as_uri())
    hints.to_lsp(hints.hints_of(a if a.graph is not None else good), a.lines)
    live = a if a.doc is not None else good
    hover.hover(a if a.graph is not None else good, live, position)
    completion.complete(a, live, position)
    navigation.definition(live, position, lambda f: Path(f).as_uri(), lambda f: live.lines)
    navigation.symbols(live)
    actions.quick_fixes("file:///x.yaml", a.lines, by_file[a.file])


def test_the_futures_pygls_keeps_of_finished_notifications_are_dropped():
    """pygls 2.0 keeps every didChange's future; the server drops finished ones (memory stays flat)."""
    from concurrent.futures import Future

    from cnnspec.lsp.server import build_server

    server = build_server()
    futures = server.protocol._request_futures
    pending = Future()
    for i in range(200):
        done = Future()
        done.set_result(None)
        futures[f"n{i}"] = done
    futures["still running"] = pending
    server.forget_finished_notifications()
    assert futures == {"still running": pending}
