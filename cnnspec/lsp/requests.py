"""The requests beyond diagnostics and hints, each answered by its feature module from the latest
analysis (or the last good one while the text is broken)."""
from __future__ import annotations


def register(server) -> None:
    pass
