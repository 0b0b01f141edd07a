"""Backend plugins, discovered through the ``cnnspec.backends`` entry-point group (as xarray does).

Availability is decided without importing the plugin or its framework: each entry point's
distribution metadata is enough, and ``importlib.util.find_spec`` checks the framework is there.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib.metadata import entry_points

from .errors import BackendUnavailable, UsageError

GROUP = "cnnspec.backends"
# what each known backend needs importable; a third-party plugin may declare REQUIRES on its class
REQUIREMENTS = {"torch": ("torch", "onnx"), "keras": ("keras", "tensorflow", "onnx"), "onnx": ("onnx", "onnxruntime")}
EXTRAS = {"torch": "torch", "keras": "keras", "onnx": "onnx"}


@dataclass(frozen=True)
class BackendInfo:
    name: str
    target: str          # "module:Class"
    missing: tuple[str, ...]

    @property
    def installed(self) -> bool:
        return not self.missing


def _module_present(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def discover() -> dict[str, BackendInfo]:
    found = {}
    for ep in entry_points(group=GROUP):
        needs = REQUIREMENTS.get(ep.name, ())
        found[ep.name] = BackendInfo(ep.name, ep.value, tuple(m for m in needs if not _module_present(m)))
    return dict(sorted(found.items()))


def load_backend(name: str):
    """The backend object; unknown or uninstalled names are one clear error listing what exists."""
    known = discover()
    if name not in known:
        listed = ", ".join(known) or "none"
        raise UsageError(f"unknown backend '{name}' (installed plugins: {listed})")
    info = known[name]
    if info.missing:
        extra = EXTRAS.get(name, name)
        raise BackendUnavailable(f"backend '{name}' needs {', '.join(info.missing)}, which is not installed; "
                                 f"pip install 'cnnspec[{extra}]'")
    (ep,) = [e for e in entry_points(group=GROUP) if e.name == name]
    cls = ep.load()
    return cls()
