"""Block folding (placeholder until the folding lands)."""
from __future__ import annotations


def fold_blocks(layers, entries, source):
    return entries, {}
