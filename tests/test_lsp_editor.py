"""A real editor: headless Neovim (Debian's package; ``make editor`` installs it as root) starts
``cnnspec lsp``, opens a spec with an error, and reports the diagnostics and inlay hints it received.
Skips with the reason where Neovim is missing, as the browser test does where chromium is."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pygls", reason="cnnspec lsp needs the 'lsp' extra (pygls)")

from test_lsp import check_lines  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "editors" / "nvim_lsp.lua"
SPEC = """\
cnnspec: 1
name: editor
input: [1, 28, 28]
layers:
  - {conv2d: {filters: 8, kernel: 3}, name: c1}
  - {maxpool2d: 2, name: p1}
  - {conv2d: {filters: 16, kernel: 3, activation: rleu}, name: c2}
  - flatten
  - dense: 10
"""


@pytest.mark.slow
def test_headless_neovim_receives_the_diagnostics_and_the_inlay_hints(tmp_path):
    nvim = shutil.which("nvim")
    if nvim is None:
        pytest.skip("no Neovim here: `make editor` installs Debian's neovim as root (apt-get); this test needs it")
    spec = tmp_path / "editor.cnnspec.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "nvim.json"
    env = {**os.environ, "CNNSPEC_NVIM_OUT": str(out), "CNNSPEC_NVIM_SPEC": str(spec),
           "CNNSPEC_NVIM_CMD": json.dumps([sys.executable, "-m", "cnnspec", "lsp"]), "XDG_STATE_HOME": str(tmp_path),
           "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path)}
    run = subprocess.run([nvim, "--headless", "--clean", "-n", "-c", f"luafile {SCRIPT}"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert out.exists(), run.stderr[-2000:] + run.stdout[-2000:]
    got = json.loads(out.read_text())
    assert got["waited"], got
    expected = check_lines(spec)
    assert [(d["lnum"], d["col"], d["message"]) for d in got["diagnostics"]] == [(l, c, m) for l, c, m, _ in expected]
    assert got["diagnostics"][0]["end_col"] == got["diagnostics"][0]["col"] + len("rleu")
    assert got["diagnostics"][0]["source"] == "cnnspec" and got["diagnostics"][0]["severity"] == 1  # ERROR
    # the error is on c2's argument, so c2 and what follows has no shape: c1 and p1 keep theirs
    assert [(h["line"], h["label"]) for h in got["hints"]] == [(4, "[8, 26, 26]"), (5, "[8, 13, 13]")]
    if got["native_hints"] is not None:  # Neovim 0.10+: the hints it shows itself
        assert [(h["line"], h["label"]) for h in got["native_hints"]] == [(4, "[8, 26, 26]"), (5, "[8, 13, 13]")]
    assert not list(tmp_path.glob("*.swp"))


def test_the_vscode_extension_folder_starts_cnnspec_lsp_for_specs():
    """The manifest parses, names its entry point, and its file patterns and first-line rule pick the zoo's
    specs (each starts with 'cnnspec: 1') and not a YAML file that is no spec."""
    import re

    folder = ROOT / "editors" / "vscode"
    manifest = json.loads((folder / "package.json").read_text())
    assert (folder / manifest["main"]).is_file()
    assert "vscode-languageclient" in manifest["dependencies"]
    (language,) = manifest["contributes"]["languages"]
    assert "*.cnnspec.yaml" in language["filenamePatterns"]
    first_line = re.compile(language["firstLine"])
    for spec in sorted((ROOT / "specs").glob("*.yaml")):
        assert first_line.search(spec.read_text().split("\n")[0]), spec.name
    assert not first_line.search("name: not-a-spec") and not first_line.search("cnnspec: 12")
    (grammar,) = manifest["contributes"]["grammars"]
    assert json.loads((folder / grammar["path"]).read_text())["patterns"] == [{"include": "source.yaml"}]
    code = (folder / "extension.js").read_text()
    assert 'language: "cnnspec"' in code and manifest["contributes"]["configuration"]["properties"][
        "cnnspec.command"]["default"] == ["cnnspec", "lsp"]
