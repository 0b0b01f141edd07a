"""``cnnspec backends``: which backend plugins are installed, checked without importing them."""
from __future__ import annotations

NAME = "backends"
HELP = "list backend plugins and whether their frameworks are installed"


def add_arguments(parser):
    pass


def run(args) -> int:
    from ..plugins import EXTRAS, discover

    found = discover()
    if not found:
        print("no backend plugins installed; pip install 'cnnspec[torch]' or 'cnnspec[keras]'")
        return 0
    width = max(len(n) for n in found)
    for name, info in found.items():
        state = "installed" if info.installed else (f"missing {', '.join(info.missing)} "
                                                    f"(pip install 'cnnspec[{EXTRAS.get(name, name)}]')")
        print(f"{name.ljust(width)}  {state}  [{info.target}]")
    return 0
