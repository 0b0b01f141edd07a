"""What is under the cursor: the document path (keys and list indices) of the key or scalar value
written there, from the loader's own positions (no second parse)."""
from __future__ import annotations

from dataclasses import dataclass

from .analysis import Analysis


@dataclass(frozen=True)
class Spot:
    path: tuple  # into the document's data
    key: bool  # the cursor is on the key of ``path`` (else on its scalar value)
    start: int  # code-point columns on the line
    end: int
    value: object  # the key's name, or the scalar


def _scalars(data) -> dict[tuple, object]:
    """Every scalar of the data by path, without recursion."""
    out, stack = {}, [((), data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((path + (k,), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((path + (i,), v) for i, v in enumerate(value))
        else:
            out[path] = value
    return out


def index(a: Analysis) -> dict[int, list[Spot]]:
    """0-based line -> the keys and scalars that start on it."""
    cached = getattr(a, "_spots", None)
    if cached is not None:
        return cached
    spots: dict[int, list[Spot]] = {}
    if a.doc is not None:
        lines = a.lines
        for path, (line, col) in a.doc.key_pos.items():
            end = lines.token_end(line - 1, col - 1)
            spots.setdefault(line - 1, []).append(Spot(path, True, col - 1, end, path[-1]))
        for path, value in _scalars(a.doc.data).items():
            pos = a.doc.value_pos.get(path)
            if pos is None:
                continue
            line, col = pos
            end = lines.token_end(line - 1, col - 1)
            spots.setdefault(line - 1, []).append(Spot(path, False, col - 1, end, value))
    a._spots = spots
    return spots


def at(a: Analysis, line: int, col: int) -> Spot | None:
    """The tightest key or scalar that covers a 0-based code-point position (its end included)."""
    found = [s for s in index(a).get(line, ()) if s.start <= col <= s.end]
    return min(found, key=lambda s: s.end - s.start, default=None)


def layer_item(path: tuple) -> tuple | None:
    """The path of the layer item a path lies in: ``("layers", i)`` or ``("blocks", B, "layers", i)``."""
    if len(path) >= 2 and path[0] == "layers" and isinstance(path[1], int):
        return path[:2]
    if len(path) >= 4 and path[0] == "blocks" and path[2] == "layers" and isinstance(path[3], int):
        return path[:4]
    return None


def item_op(raw) -> str | None:
    """The op (or block) key of a raw layer item: a bare string, or the one key that is not reserved."""
    from ..spec.schema import RESERVED

    if isinstance(raw, str):
        return raw
    if isinstance(raw, dict):
        keys = [k for k in raw if k not in RESERVED]
        return keys[0] if len(keys) == 1 and isinstance(keys[0], str) else None
    return None


def get(data, path: tuple):
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data
