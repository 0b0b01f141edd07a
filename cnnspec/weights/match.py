"""How a file's tensors meet what a spec expects, by name and shape alone (nothing loaded yet).

:func:`compare` is the one comparison: it sorts the names into matched, missing, unexpected and
wrongly shaped, with the closest name on the other side for each (``difflib``). A strict load turns
any difference into one error (:func:`mismatch_message`, :func:`require_fit`); a partial load (``train
--init --allow-partial``) can take ``Comparison.matched`` and report the rest from the same object.
A tensor the spec turned off (a ``batchnorm`` with ``scale: false`` given ``bn.weight``) is named
with the switch that turned it off (:data:`SWITCHES`).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

from ..errors import InputError, plural
from ..graph.ir import Graph
from ..graph.ops import fmt_shape

MAX_LINES = 10
IGNORED_SUFFIXES = ("num_batches_tracked",)  # PyTorch's batchnorm step counters: no weight of any layer

# op -> part (neutral or Keras name) -> the argument that, off, drops it
SWITCHES: dict[str, dict[str, str]] = {
    "conv2d": {"bias": "bias"},
    "conv2d_transpose": {"bias": "bias"},
    "dense": {"bias": "bias"},
    "batchnorm": {"weight": "scale", "gamma": "scale", "bias": "center", "beta": "center"},
}


@dataclass(frozen=True)
class Misfit:
    """One name that did not match: its shape on each side (None where absent) and the nearest name
    on the other side, or the spec argument that explains it."""

    key: str
    found: tuple | None
    needed: tuple | None
    closest: str | None = None
    cause: str | None = None

    @property
    def kind(self) -> str:
        return "missing" if self.found is None else "unexpected" if self.needed is None else "shape"

    def line(self) -> str:
        if self.kind == "shape":
            return f"  shape      {self.key}: {fmt_shape(self.found)} in the file, the spec needs {fmt_shape(self.needed)}"
        shape = fmt_shape(self.needed if self.kind == "missing" else self.found)
        where = "in the file" if self.kind == "missing" else "in the spec"
        tail = f": {self.cause}" if self.cause else f" (closest {where}: {self.closest})" if self.closest else ""
        return f"  {self.kind:<10} {self.key} {shape}{tail}"

    def phrase(self) -> str:
        """The misfit as a phrase inside a sentence (``train --init``'s report of what starts fresh)."""
        if self.kind == "shape":
            return f"'{self.key}' is {list(self.found)} in the file, {list(self.needed)} in the spec"
        if self.kind == "missing":
            return f"'{self.key}' is missing from the file"
        return f"'{self.key}' in the file has no place in the spec" + (f" ({self.cause})" if self.cause else "")


@dataclass(frozen=True)
class Comparison:
    """The file's names against the spec's, in the spec's order (then the file's)."""

    matched: tuple[str, ...]
    missing: tuple[Misfit, ...]
    unexpected: tuple[Misfit, ...]
    misshapen: tuple[Misfit, ...]

    @property
    def fits(self) -> bool:
        return not (self.missing or self.unexpected or self.misshapen)

    @property
    def misfits(self) -> tuple[Misfit, ...]:
        """Wrong shapes first (few, and the most telling), then missing, then unexpected."""
        return self.misshapen + self.missing + self.unexpected


def closest(name: str, shape, candidates: dict) -> str | None:
    """The likeliest other name for a tensor: a renamed tensor keeps its shape, so a close name of
    the same shape first; a name alone must be closer."""
    same = [k for k, s in candidates.items() if tuple(s) == tuple(shape)]
    found = difflib.get_close_matches(name, same, n=1, cutoff=0.6) or \
        difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.8)
    return found[0] if found else None


def switched_off(key: str, graph: Graph | None) -> str | None:
    """Why the spec has no place for ``layer.part`` when its layer exists but an argument dropped the part."""
    if graph is None or "." not in key:
        return None
    layer, part = key.rsplit(".", 1)
    node = next((n for n in graph.nodes if n.name == layer), None)
    arg = SWITCHES.get(node.op, {}).get(part) if node is not None else None
    if arg is None or node.attrs.get(arg, True):
        return None
    return f"layer '{layer}' is a {node.op} with `{arg}: false`, which holds no {part} (set `{arg}: true` or drop it)"


def compare(found: dict, expected: dict, graph: Graph | None = None) -> Comparison:
    """``found`` and ``expected``: name -> shape. Nothing is loaded: a file that declares a huge
    tensor is judged on its declaration."""
    missing_keys = [k for k in expected if k not in found]
    unexpected_keys = [k for k in found if k not in expected and not k.endswith(IGNORED_SUFFIXES)]
    spare = {k: found[k] for k in unexpected_keys}
    wanted = {k: expected[k] for k in missing_keys}
    missing = tuple(Misfit(k, None, tuple(expected[k]), closest(k, expected[k], spare)) for k in missing_keys)
    unexpected = tuple(Misfit(k, tuple(found[k]), None, closest(k, found[k], wanted), switched_off(k, graph))
                       for k in unexpected_keys)
    misshapen = tuple(Misfit(k, tuple(found[k]), tuple(expected[k])) for k in expected
                      if k in found and tuple(found[k]) != tuple(expected[k]))
    matched = tuple(k for k in expected if k in found and tuple(found[k]) == tuple(expected[k]))
    return Comparison(matched, missing, unexpected, misshapen)


def mismatch_message(comparison: Comparison, source: str, misfit: str) -> str:
    """A summary line, then one line per tensor (at most :data:`MAX_LINES`), then how many more."""
    counts = [f"{plural(len(group), 'tensor')} {what}" for group, what in (
        (comparison.missing, "missing"), (comparison.unexpected, "unexpected"),
        (comparison.misshapen, "wrongly shaped")) if group]
    lines = [f"{source}: {misfit}: " + ", ".join(counts)]
    misfits = comparison.misfits
    lines += [m.line() for m in misfits[:MAX_LINES]]
    if len(misfits) > MAX_LINES:
        lines.append(f"  ... and {len(misfits) - MAX_LINES} more")
    return "\n".join(lines)


def require_fit(found: dict, expected: dict, source: str, misfit: str, graph: Graph | None = None) -> Comparison:
    """The strict load: every expected name with its shape and nothing else, or one error listing
    what differs."""
    comparison = compare(found, expected, graph)
    if not comparison.fits:
        raise InputError(mismatch_message(comparison, source, misfit))
    return comparison
