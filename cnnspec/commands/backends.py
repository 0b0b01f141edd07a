"""``cnnspec backends``: which backend plugins are installed, checked without importing their frameworks."""
from __future__ import annotations

NAME = "backends"
HELP = "list backend plugins and whether their frameworks are installed"


def add_arguments(parser):
    pass


def run(args) -> int:
    from ..backend.plugins import discover

    found = discover()
    if not found:
        print("no backend plugins installed; pip install 'cnnspec[torch]' or 'cnnspec[keras]'")
        return 0
    width = max(len(n) for n in found)
    for name, info in found.items():
        print(f"{name.ljust(width)}  {_state(info)}  [{info.target}]")
    return 0


def _state(info) -> str:
    if info.broken:
        return f"broken: {info.broken}"
    if info.missing:
        return f"missing {', '.join(info.missing)} ({info.install_hint})"
    return "installed"
