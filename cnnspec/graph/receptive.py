"""Receptive field and effective stride of every layer's output, framework-free.

One rule per op in :data:`RULES`; ``tests/test_receptive.py`` fails for an op of ``cnnspec.graph.ops.OPS``
without one, and a layer whose op has none (or whose shape is unknown) gets None, never an error.

Conventions (Araujo, Norris and Sim, "Computing receptive fields of convolutional neural networks",
Distill 2019): sizes are in input pixels, padding counts as pixels outside the image (a field may
start before the image and be larger than it: it is not clipped), and the field of a layer reached
by several paths is their union. Per axis a field is a set of :class:`Span` s, one per effective
stride that reaches it, so joining paths of different strides stays exact; the reported size is the
largest over the layer's positions. Fractional strides (upsampling, transposed convolutions) give an
upper bound; every other op is exact.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from math import ceil, floor
from typing import Callable

from .ir import INPUT, Graph, Node
from .ops import ACTIVATIONS


@dataclass(frozen=True)
class Span:
    """One axis, one path family: output position i sees input pixels ``floor(start + i*stride)``
    to that plus ``size - 1``. ``stride`` 0 means every position sees the same pixels (a broadcast vector)."""

    start: Fraction
    stride: Fraction
    size: int

    def first(self, i: int) -> int:
        return floor(self.start + i * self.stride)


@dataclass(frozen=True)
class Resample:
    """How one axis of an op reads its input: output position o reads input positions
    ``floor(offset + o*step)`` to that plus ``taps - 1``. A window (kernel k, stride s, dilation d,
    padding p before) is ``Resample(-p, s, d*(k-1) + 1)``; the other spatial ops are one too."""

    offset: Fraction
    step: Fraction
    taps: int

    def apply(self, span: Span) -> Span:
        return Span(span.start + self.offset * span.stride, span.stride * self.step,
                    span.size + ceil((self.taps - 1) * span.stride))


Axis = tuple  # of Span, one per distinct stride, ordered by stride


def merge(spans) -> Axis:
    """Union of spans: those of equal stride become one (exact where their starts differ by whole pixels)."""
    by_stride: dict[Fraction, list[Span]] = {}
    for s in spans:
        by_stride.setdefault(s.stride, []).append(s)
    return tuple(_union(group) for _, group in sorted(by_stride.items()))


def _union(group) -> Span:
    start = min(s.start for s in group)
    return Span(start, group[0].stride, max(ceil(s.start - start) + s.size for s in group))


@dataclass(frozen=True)
class Field:
    """A layer output's field on both axes; ``positions`` is its (height, width), (1, 1) for a vector."""

    height: Axis
    width: Axis
    positions: tuple[int, int]
    spatial: bool

    def axes(self):
        return (self.height, self.width)

    def interval(self, axis: int, i: int) -> tuple[int, int]:
        """First and last input pixel (row or column) seen by output position i on ``axis`` (0: height)."""
        spans = self.axes()[axis]
        return (min(s.first(i) for s in spans), max(s.first(i) + s.size - 1 for s in spans))

    @cached_property
    def size(self) -> tuple[int, int]:
        """The largest extent over the positions: the extent is convex in i, so an end position holds it."""
        out = []
        for axis, n in enumerate(self.positions):
            out.append(max(hi - lo + 1 for lo, hi in (self.interval(axis, i) for i in {0, n - 1})))
        return tuple(out)

    @cached_property
    def stride(self) -> tuple:
        return tuple(max(s.stride for s in spans) for spans in self.axes())


def _positions(shape) -> tuple[int, int]:
    return (shape[1], shape[2]) if len(shape) == 3 else (1, 1)


def input_field(shape) -> Field:
    one = (Span(Fraction(0), Fraction(1), 1),)
    return Field(one, one, _positions(shape), len(shape) == 3)


# ---- the rules: (node, input fields) -> (height axis, width axis) ----

Rule = Callable[[Node, list], tuple]


def _pair(value, default=(0, 0)):
    if value is None or isinstance(value, str):
        return default
    return (value, value) if isinstance(value, int) else tuple(value)


def _before(value) -> tuple[int, int]:
    """(top, left) of a padding or cropping: a size, a pair, or four numbers (top, bottom, left, right)."""
    sides = _pair(value)
    return (sides[0], sides[2]) if len(sides) == 4 else sides


def _resampled(node: Node, fields, per_axis) -> tuple:
    (f,) = fields
    return tuple(merge(r.apply(s) for s in spans) for r, spans in zip(per_axis, f.axes()))


def window(node: Node, fields) -> tuple:
    """conv2d and the pools: kernel, stride, dilation and the padding before (as shape inference resolved it)."""
    a = node.attrs
    pads = (node.pads[0], node.pads[2]) if node.pads else _before(a.get("padding"))
    dilation = _pair(a.get("dilation"), (1, 1))
    return _resampled(node, fields, [Resample(Fraction(-p), Fraction(s), d * (k - 1) + 1)
                                     for k, s, d, p in zip(a["kernel"], a["stride"], dilation, pads)])


def transposed(node: Node, fields) -> tuple:
    """conv2d_transpose: output o (o + p in the uncropped output) reads inputs i with o + p - i*s in the
    kernel's taps: at most ceil((d*(k-1) + 1) / s) of them, at a fractional stride 1/s."""
    a = node.attrs
    kernel, stride = _pair(a["kernel"]), _pair(a["stride"], (1, 1))
    dilation = _pair(a.get("dilation"), (1, 1))
    padding = a.get("padding")
    crop = ([(k - s) // 2 for k, s in zip(kernel, stride)] if padding == "same" else _before(padding))
    per_axis = []
    for k, s, d, p in zip(kernel, stride, dilation, crop):
        reach = d * (k - 1)
        per_axis.append(Resample(Fraction(p - reach + s - 1, s), Fraction(1, s), -(-(reach + 1) // s)))
    return _resampled(node, fields, per_axis)


def upsample(node: Node, fields) -> tuple:
    """upsample2d: nearest reads input floor(o / f); bilinear the two around (o + 0.5)/f - 0.5, except
    at scale 1 on an axis, where that is o itself (the other weight is 0)."""
    two = node.attrs.get("mode") == "bilinear"
    return _resampled(node, fields, [Resample(Fraction(1 - f, 2 * f) if two else Fraction(0), Fraction(1, f),
                                              2 if two and f > 1 else 1) for f in _pair(node.attrs["scale"], (1, 1))])


def shift(key: str, sign: int) -> Rule:
    """zeropad2d (output position o is input o - top) and crop2d (o + top): the field moves, its size stays."""
    def rule(node: Node, fields) -> tuple:
        return _resampled(node, fields, [Resample(Fraction(sign * p), Fraction(1), 1)
                                         for p in _before(node.attrs[key])])
    return rule


def identity(node: Node, fields) -> tuple:
    """Pointwise and per-channel ops: each output position reads its own input position."""
    return fields[0].axes()


def whole(node: Node, fields) -> tuple:
    """Global pooling, flatten, dense: one output position reads every input position (a window as large
    as the map). A vector's input already covers everything."""
    (f,) = fields
    if not f.spatial:
        return f.axes()
    out = []
    for spans, n in zip(f.axes(), f.positions):
        r = Resample(Fraction(0), Fraction(n), n)
        collapsed = [r.apply(s) for s in spans]
        start = min(s.start for s in collapsed)
        out.append((Span(start, max(s.stride for s in collapsed),
                         max(ceil(s.start - start) + s.size for s in collapsed)),))
    return tuple(out)


def scrambled(node: Node, fields) -> tuple:
    """reshape: to a vector, as flatten; to a map, an output position's values come from anywhere in the
    input (a conservative bound: the whole input field, the same for every position, stride 0)."""
    axes = whole(node, fields)
    if len(node.shape) != 3:
        return axes
    return tuple(tuple(Span(s.start, Fraction(0), s.size) for s in spans) for spans in axes)


def join(node: Node, fields) -> tuple:
    """add, concat, multiply: the union over inputs. A vector broadcast over a map reaches every position
    with the same pixels (stride 0)."""
    spatial = any(f.spatial for f in fields)
    out = []
    for axis in (0, 1):
        spans = []
        for f in fields:
            spans += (f.axes()[axis] if f.spatial or not spatial
                      else [Span(s.start, Fraction(0), s.size) for s in f.axes()[axis]])
        out.append(merge(spans))
    return tuple(out)


# op -> rule; a new op needs one line here (the completeness test names the op that lacks it)
RULES: dict[str, Rule] = {
    **{name: identity for name in ACTIVATIONS},  # every activation is pointwise
    "conv2d": window,
    "separable_conv2d": window,  # the 1x1 after the depthwise window widens nothing
    "maxpool2d": window,
    "avgpool2d": window,
    "conv2d_transpose": transposed,
    "upsample2d": upsample,
    "zeropad2d": shift("padding", -1),
    "crop2d": shift("cropping", 1),
    "global_avgpool2d": whole,
    "global_maxpool2d": whole,
    "flatten": whole,
    "reshape": scrambled,
    "dense": whole,
    "batchnorm": identity,
    "layernorm": identity,
    "scale": identity,
    "normalize": identity,
    "dropout": identity,
    "add": join,
    "concat": join,
    "multiply": join,
}


def receptive_fields(graph: Graph) -> dict[str, Field | None]:
    """Layer name -> its output's field (``input`` included); None where the op has no rule or a shape is unknown."""
    fields: dict[str, Field | None] = {INPUT: input_field(graph.input_shape)}
    for node in graph.nodes:
        rule = RULES.get(node.op)
        inputs = [fields.get(name) for name in node.inputs]
        if rule is None or node.shape is None or any(f is None for f in inputs):
            fields[node.name] = None
            continue
        height, width = rule(node, inputs)
        fields[node.name] = Field(height, width, _positions(node.shape), len(node.shape) == 3)
    return fields


def as_number(value: Fraction):
    """An int where whole (the usual case), else a float: for JSON."""
    return int(value) if value.denominator == 1 else float(value)
