"""Hover: on a layer or a call, what ``check`` computed for it (op, inputs, output shape, params,
MACs, receptive field and stride); on an op, its documentation; on a block name, its parameters and
where it is defined."""
from __future__ import annotations

from lsprotocol import types

from ..graph.ops import OPS, fmt_shape
from . import docs, locate
from .analysis import Analysis


def _figures(a: Analysis, nodes: list) -> list[str]:
    rows = [a.shapes.get(n.name) for n in nodes]
    last = rows[-1] if rows else None
    if not last:
        return []
    out = []
    if last.get("output_shape") is not None:
        out.append(f"output: `{fmt_shape(tuple(last['output_shape']))}`")
    if all(r and r.get("params") is not None for r in rows):
        out.append(f"params: {sum(r['params'] for r in rows):,}")
        out.append(f"MACs: {sum(r['macs'] for r in rows):,}")
    if last.get("receptive_field") is not None:
        rf, stride = last["receptive_field"], last["effective_stride"]
        out.append(f"receptive field: {rf[0]}x{rf[1]}, stride {stride[0]}x{stride[1]}")
    return out


def layer_markdown(a: Analysis, index: int) -> str | None:
    """What check says of top-level layer item ``index`` (the last good graph's where the text is broken)."""
    for i, raw, nodes in a.entries:
        if i != index or not nodes:
            continue
        last = nodes[-1]
        if last.via:
            block = last.via[-1][0]
            first_of_call = nodes[0]
            head = f"**{_call_name(raw, last)}**: call of block `{block}` ({len(nodes)} layers)"
            inputs = [i for i in first_of_call.inputs]
        else:
            head = f"**{last.name}**: `{last.op}`"
            inputs = list(last.inputs)
        lines = [head, "", "inputs: " + ", ".join(f"`{i}`" for i in inputs)] + _figures(a, nodes)
        return "\n\n".join([lines[0], "  \n".join(lines[2:])])
    return None


def _call_name(raw, last) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    return name if isinstance(name, str) else last.name


def block_where(a: Analysis, name: str) -> str | None:
    loc = a.block_location(name)
    return f"{loc.file}:{loc.line}" if loc else None


def name_markdown(a: Analysis, name: str) -> str | None:
    """An op's or a block's documentation."""
    if name in OPS:
        return docs.op_markdown(name)
    block = a.blocks.get(name)
    if block is not None:
        return docs.block_markdown(name, block.definition, block_where(a, name))
    return None


def hover(a: Analysis, live: Analysis, position: types.Position) -> types.Hover | None:
    """``live`` is the document's latest analysis (its text under the cursor); ``a`` the one with a
    graph (the same, or the last good one)."""
    line = position.line
    spot = locate.at(live, line, live.lines.from_utf16(line, position.character))
    if spot is None:
        return None
    parts = []
    item = locate.layer_item(spot.path)
    raw = locate.get(live.doc.data, item) if item else None
    op = locate.item_op(raw) if item else None
    on_op = item is not None and op is not None and (
        (spot.key and spot.path == item + (op,)) or (not spot.key and spot.path == item))
    if spot.key and len(spot.path) == 2 and spot.path[0] == "blocks":
        on_op, op = True, spot.path[1]
    if on_op:
        text = name_markdown(live if live.blocks else a, op)
        if text:
            parts.append(text)
    if item is not None and item[0] == "layers":
        info = layer_markdown(a, item[1])
        if info:
            parts.insert(0, info)
    if not parts:
        return None
    rng = types.Range(start=live.lines.position(line, spot.start), end=live.lines.position(line, spot.end))
    return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value="\n\n---\n\n".join(parts)),
                       range=rng)
