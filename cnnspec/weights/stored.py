"""What every weights-file reader hands back: each tensor's declared shape and dtype, and a way to
load it later. Readers declare before they allocate, so a file is compared with the spec by names
and shapes first (:mod:`.match`) and only the tensors the spec takes are ever read: a file that
declares a 10^12-element tensor is refused on its declaration, not by running out of memory.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..errors import InputError

MAX_TENSOR_BYTES = 4 * 1024 ** 3  # one tensor; a VGG-16 fc6 weight is 411 MB


@dataclass(frozen=True)
class Stored:
    """One tensor as the file declares it; ``load()`` reads it (checked against the declaration)."""

    shape: tuple[int, ...]
    dtype: str
    load: Callable[[], object]


@dataclass
class WeightsFile:
    """A read file: its tensors by name in ``layout`` ('neutral' or 'keras'; None: guess from the
    names), the format's name, and what the reader understood and must say (a wrapper dict unwrapped,
    a prefix dropped, graph constants skipped)."""

    format: str
    tensors: dict[str, Stored]
    layout: str | None = "neutral"
    meta: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: v.shape for k, v in self.tensors.items()}


def numel(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def declared_shape(dims, source: str, key: str) -> tuple[int, ...]:
    """A shape from a file's header: at most 8 non-negative integers, or one error."""
    import operator

    try:
        shape = tuple(operator.index(d) for d in dims)
    except TypeError:
        raise _bad(source, key, f"declares the shape {dims!r}") from None
    if len(shape) > 8 or any(d < 0 for d in shape):
        raise _bad(source, key, f"declares the shape {list(shape)}")
    return shape


def _bad(source, key, what) -> InputError:
    return InputError(f"{source}: tensor '{key}' {what}; not a weights file cnnspec will read")
