"""Inlay hints: each top-level layer's output shape at the end of its line, as ``check --json`` gives it;
a block call's also its parameter count; ``expect`` is named only where it disagrees."""
from __future__ import annotations

from dataclasses import dataclass

from lsprotocol import types

from ..graph.ops import fmt_shape
from .analysis import Analysis
from .text import Lines


@dataclass(frozen=True)
class Hint:
    line: int  # 0-based line of the layer item
    label: str
    tooltip: str


def hints_of(a: Analysis) -> list[Hint]:
    out = []
    for _i, _raw, nodes in a.entries:
        if not nodes:
            continue
        last = nodes[-1]
        row = a.shapes.get(last.name)
        shape = row.get("output_shape") if row else None
        if shape is None:
            continue
        label = fmt_shape(tuple(shape))
        is_call = bool(last.via)
        if is_call:
            rows = [a.shapes.get(n.name) for n in nodes]
            if all(r and r.get("params") is not None for r in rows):
                label += f" · {sum(r['params'] for r in rows):,} params"
        expect = last.expect  # as the check read it (an expression over parameters evaluated)
        if expect is not None and list(expect) != list(shape):
            label += f" ≠ expect {fmt_shape(tuple(expect))}"
        where = last.via[-1][1] if is_call else last.location
        what = f"{last.via[-1][0]} call ({len(nodes)} layers)" if is_call else last.op
        out.append(Hint(where.line - 1, label, f"{last.name}: {what}, output {fmt_shape(tuple(shape))}"))
    return out


def to_lsp(hints: list[Hint], lines: Lines, wanted: types.Range | None = None) -> list[types.InlayHint]:
    """The hints at the end of their lines in ``lines`` (the current text: after an edit that broke
    it, the last good hints stay on their lines), within ``wanted`` where given."""
    out = []
    for h in hints:
        if h.line >= len(lines.lines):
            continue
        if wanted is not None and not (wanted.start.line <= h.line <= wanted.end.line):
            continue
        out.append(types.InlayHint(position=lines.line_end(h.line), label=h.label, kind=types.InlayHintKind.Type,
                                   padding_left=True, tooltip=h.tooltip))
    return out
