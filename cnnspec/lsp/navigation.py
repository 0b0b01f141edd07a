"""Go to definition (a block call to its block, in this file, an imported one or the shipped library;
a name in ``in:`` to that layer; an ``import`` entry to its file) and the outline of blocks and layers."""
from __future__ import annotations

import os
from pathlib import Path

from lsprotocol import types

from ..errors import Location
from ..graph.ops import OPS, fmt_shape
from ..spec.imports import LIBRARY, LIBRARY_PREFIX
from . import locate
from .analysis import Analysis


def _lsp_location(loc: Location, uri_of, lines_of) -> types.Location:
    lines = lines_of(loc.file)
    rng = (lines.token_range(loc.line, loc.column) if lines is not None else
           types.Range(start=types.Position(line=loc.line - 1, character=loc.column - 1),
                       end=types.Position(line=loc.line - 1, character=loc.column - 1)))
    return types.Location(uri=uri_of(loc.file), range=rng)


def _import_target(a: Analysis, entry) -> str | None:
    if not isinstance(entry, str) or not entry:
        return None
    if entry.startswith(LIBRARY_PREFIX):
        path = LIBRARY / f"{entry[len(LIBRARY_PREFIX):]}.yaml"
    elif a.origin is not None:
        path = Path(a.origin).parent / entry
    else:
        return None
    return os.path.realpath(path) if path.is_file() else None


def _layer_named(a: Analysis, item: tuple, name: str) -> Location | None:
    """The layer ``name`` as seen from a layer item: in the same list (spec or block), by its ``name``,
    else a layer of the graph by its full name."""
    data = a.doc.data
    items = locate.get(data, item[:-1])
    if isinstance(items, list):
        for j, raw in enumerate(items[:item[-1]]):
            if isinstance(raw, dict) and raw.get("name") == name:
                return a.doc.loc(item[:-1] + (j,))
    if a.graph is not None and item[0] == "layers":
        for node in a.graph.nodes:
            if node.name == name:
                return node.via[-1][1] if node.via and node.location.file != a.file else node.location
    return None


def definition(a: Analysis, position: types.Position, uri_of, lines_of) -> list[types.Location] | None:
    line = position.line
    spot = locate.at(a, line, a.lines.from_utf16(line, position.character))
    if spot is None:
        return None
    path = spot.path
    if path and path[0] == "import" and not spot.key:
        target = _import_target(a, spot.value)
        if target is None:
            return None
        start = types.Position(line=0, character=0)
        return [types.Location(uri=uri_of(target), range=types.Range(start=start, end=start))]
    item = locate.layer_item(path)
    if item is None:
        return None
    raw = locate.get(a.doc.data, item)
    op = locate.item_op(raw)
    on_op = (spot.key and path == item + (op,)) or (not spot.key and path == item)
    if on_op and op is not None and op not in OPS:
        loc = a.block_location(op)
        return [_lsp_location(loc, uri_of, lines_of)] if loc else None
    if not spot.key and len(path) > len(item) and path[len(item)] == "in" and isinstance(spot.value, str):
        loc = _layer_named(a, item, spot.value)
        return [_lsp_location(loc, uri_of, lines_of)] if loc else None
    return None


def _line_range(a: Analysis, path: tuple, until: int, key: bool = False) -> tuple[types.Range, types.Range]:
    """The lines from an item's start to the line before ``until`` (0-based: the next item's line), and its
    first token."""
    loc = a.doc.loc(path, key=key)
    start = loc.line - 1
    end = max(start, until - 1)
    while end > start and not a.lines.line(end).strip():
        end -= 1
    full = types.Range(start=a.lines.position(start, 0), end=a.lines.line_end(end))
    return full, a.lines.token_range(loc.line, loc.column)


def _items(a: Analysis, base: tuple, items: list, stop: int, names: dict) -> list[types.DocumentSymbol]:
    starts = [a.doc.loc(base + (i,)).line - 1 for i in range(len(items))] + [stop]
    out = []
    for i, raw in enumerate(items):
        op = locate.item_op(raw) or "?"
        name = raw.get("name") if isinstance(raw, dict) and isinstance(raw.get("name"), str) else names.get(i, op)
        full, sel = _line_range(a, base + (i,), starts[i + 1])
        detail = op if op in OPS else f"block {op}"
        shape = names.get(("shape", i))
        out.append(types.DocumentSymbol(name=str(name), kind=types.SymbolKind.Field if op in OPS else types.SymbolKind.Module,
                                        range=full, selection_range=sel,
                                        detail=detail + (f" → {shape}" if shape else "")))
    return out


def symbols(a: Analysis) -> list[types.DocumentSymbol]:
    """Blocks (their layers inside) and the spec's layers, with their ops and output shapes."""
    data = a.doc.data if a.doc is not None else None
    if not isinstance(data, dict):
        return []
    tops = sorted((a.doc.loc((k,), key=True).line - 1, k) for k in data)
    next_top = {k: (tops[j + 1][0] if j + 1 < len(tops) else len(a.lines.lines)) for j, (_l, k) in enumerate(tops)}
    out = []
    blocks = data.get("blocks")
    if isinstance(blocks, dict):
        names = sorted((a.doc.loc(("blocks", b), key=True).line - 1, b) for b in blocks)
        for j, (first, b) in enumerate(names):
            until = names[j + 1][0] if j + 1 < len(names) else next_top["blocks"]
            full, sel = _line_range(a, ("blocks", b), until, key=True)
            inner = blocks[b].get("layers") if isinstance(blocks[b], dict) else None
            children = _items(a, ("blocks", b, "layers"), inner, until, {}) if isinstance(inner, list) else []
            out.append(types.DocumentSymbol(name=str(b), kind=types.SymbolKind.Class, range=full, selection_range=sel,
                                            detail="block", children=children))
    layers = data.get("layers")
    if isinstance(layers, list):
        names = {}
        for i, _raw, nodes in a.entries:
            if nodes:
                last = nodes[-1]
                names[i] = last.name
                row = a.shapes.get(last.name)
                if row and row.get("output_shape") is not None:
                    names[("shape", i)] = fmt_shape(tuple(row["output_shape"]))
        out += _items(a, ("layers",), layers, next_top["layers"], names)
    return out


