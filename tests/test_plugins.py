"""Backend plugins: each declares what it needs on its class, discovery imports the plugin package
but never its framework, and a plugin that does not load is listed as broken rather than a crash."""
from __future__ import annotations

import os
import subprocess
import sys
import types
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import cnnspec.backend.plugins
from cnnspec.backend.interface import Backend
from cnnspec.backend.plugins import GROUP, discover, load_backend
from cnnspec.cli import main
from cnnspec.errors import BackendUnavailable

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("torch", "tensorflow", "keras")


def test_backends_command_imports_no_framework():
    code = ("import sys; from cnnspec.cli import main; code = main(['backends']); "
            "print('FRAMEWORKS:' + ' '.join(sorted({m.split('.')[0] for m in sys.modules} & set(%r)))); "
            "sys.exit(code)") % (FRAMEWORKS,)
    path = os.pathsep.join([str(ROOT), str(ROOT / "backends"), os.environ.get("PYTHONPATH", "")])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": path})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "FRAMEWORKS:"
    listed = {line.split()[0]: line for line in lines[:-1]}
    assert "torch" in listed and "keras" in listed and "broken" not in listed["torch"]


def test_shipped_backends_declare_their_requirements():
    found = discover()
    torch, keras = found["torch"].cls, found["keras"].cls
    assert torch.requires == ("torch", "onnx") and torch.extra == "torch"
    assert {"keras", "tensorflow", "onnx"} <= set(keras.requires) and keras.extra == "keras"


class NeedsNothingHere(Backend):
    name = "needy"
    requires = ("cnnspec_no_such_framework",)
    extra = "needy"
    compile = get_weights = set_weights = predict = export_onnx = build = None


@pytest.fixture
def plugins(monkeypatch):
    module = types.ModuleType("cnnspec_fake_plugins")
    module.Needy, module.NotABackend = NeedsNothingHere, dict
    module.BadRequires = type("BadRequires", (NeedsNothingHere,), {"requires": "torch"})
    monkeypatch.setitem(sys.modules, "cnnspec_fake_plugins", module)
    points = [EntryPoint(name, value, GROUP) for name, value in (
        ("missing", "cnnspec_no_such_plugin:Backend"), ("needy", "cnnspec_fake_plugins:Needy"),
        ("dict", "cnnspec_fake_plugins:NotABackend"), ("badreq", "cnnspec_fake_plugins:BadRequires"))]
    monkeypatch.setattr(cnnspec.backend.plugins, "entry_points", lambda group: [p for p in points if p.group == group])


def test_a_plugin_that_does_not_load_is_listed_as_broken(plugins, capsys):
    found = discover()
    assert "ModuleNotFoundError" in found["missing"].broken and not found["missing"].installed
    assert "not a cnnspec.backend.interface.Backend subclass" in found["dict"].broken
    assert "'requires' is not a tuple" in found["badreq"].broken
    assert found["needy"].missing == ("cnnspec_no_such_framework",) and not found["needy"].broken
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "missing  broken: its entry point does not load (ModuleNotFoundError" in out
    assert "missing cnnspec_no_such_framework (pip install 'cnnspec[needy]')" in out


@pytest.mark.parametrize("name, message", [
    ("missing", "backend 'missing' is broken: its entry point does not load"),
    ("needy", "backend 'needy' needs cnnspec_no_such_framework, which is not installed; pip install 'cnnspec[needy]'"),
])
def test_loading_a_broken_or_uninstalled_plugin_is_one_clear_error(plugins, capsys, tmp_path, name, message):
    with pytest.raises(BackendUnavailable, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_backend(name)
    assert main(["build", str(ROOT / "specs" / "digits.yaml"), "--backend", name, "-o", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
