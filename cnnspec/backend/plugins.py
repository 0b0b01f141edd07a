"""Backend plugins, discovered through the ``cnnspec.backends`` entry-point group (as xarray does).

Each plugin declares on its backend class what it needs (``requires``: module names) and the pip
extra that installs them (``extra``), so there is no table here to keep in step with the plugins.
Discovery loads the entry point, which imports the plugin package but not its framework (a plugin
imports that only inside its methods), and ``importlib.util.find_spec`` checks each requirement
without importing it. A plugin whose entry point does not load is listed as broken, with why.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from ..errors import BackendUnavailable, UsageError

GROUP = "cnnspec.backends"


@dataclass(frozen=True)
class BackendInfo:
    name: str
    target: str          # "module:Class"
    missing: tuple[str, ...] = ()
    extra: str = ""      # the pip extra that installs what it needs; "" when it names none
    broken: str = ""     # why the entry point did not give a usable backend; "" when it did
    cls: type | None = field(default=None, repr=False, compare=False)

    @property
    def installed(self) -> bool:
        return not self.missing and not self.broken

    @property
    def install_hint(self) -> str:
        return f"pip install 'cnnspec[{self.extra}]'" if self.extra else f"install {', '.join(self.missing)}"


def _module_present(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


def inspect_entry_point(ep) -> BackendInfo:
    """What one entry point offers: its backend class and what of its requirements is missing."""
    from .interface import Backend

    try:
        cls = ep.load()
    except Exception as exc:  # noqa: BLE001 - a plugin's import may raise anything; one bad plugin must not hide the rest
        return BackendInfo(ep.name, ep.value, broken=f"its entry point does not load ({_first_line(exc)})")
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        return BackendInfo(ep.name, ep.value, broken="its entry point is not a cnnspec.backend.interface.Backend subclass")
    requires, extra = getattr(cls, "requires", ()), getattr(cls, "extra", "")
    if not (isinstance(requires, tuple) and all(isinstance(m, str) and m for m in requires)
            and isinstance(extra, str)):
        return BackendInfo(ep.name, ep.value, broken="its 'requires' is not a tuple of module names, or its "
                                                     "'extra' is not a string")
    return BackendInfo(ep.name, ep.value, tuple(m for m in requires if not _module_present(m)), extra, cls=cls)


def plugin_names() -> list[str]:
    """The installed plugins' names, from the entry points alone (nothing imported): for help texts."""
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def discover() -> dict[str, BackendInfo]:
    found = {ep.name: inspect_entry_point(ep) for ep in entry_points(group=GROUP)}
    return dict(sorted(found.items()))


def load_backend(name: str):
    """The backend object; unknown, broken or uninstalled names are one clear error."""
    known = discover()
    if name not in known:
        listed = ", ".join(known) or "none"
        raise UsageError(f"unknown backend '{name}' (installed plugins: {listed})")
    info = known[name]
    if info.broken:
        raise BackendUnavailable(f"backend '{name}' is broken: {info.broken}")
    if info.missing:
        raise BackendUnavailable(f"backend '{name}' needs {', '.join(info.missing)}, which is not installed; "
                                 f"{info.install_hint}")
    return info.cls()
