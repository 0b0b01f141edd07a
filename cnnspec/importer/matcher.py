"""The matcher every pattern works with: the folded graph's consumers and producers, the aliases
(Identity, Dropout, cancelled transposes), the [C, 1, 1] views of vectors, the layers made; and the
helpers patterns share (ONNX pads as the language's, constants per channel, chains of sole users).
"""
from __future__ import annotations

import math

from .layers import Layer
from .reader import ONode, Source, refuse


FUSABLE = ("conv2d", "conv2d_transpose", "dense")


def _np():
    import numpy as np
    return np


class Matcher:
    """Walks the folded graph in order; holds who consumes what, the aliases, the layers made."""

    def __init__(self, source: Source):
        self.source = source
        self.consumers: dict = {}
        for node in source.nodes:
            for i in node.inputs:
                if i:
                    self.consumers.setdefault(i, []).append(node)
        self.producer = {o: n for n in source.nodes for o in n.outputs}
        self.used: set = set()
        self.alias: dict = {}     # value -> the value it equals
        self.as_map: dict = {}    # a [C, 1, 1] value -> the [C] vector it holds
        self.layers: list = []
        self.made: dict = {}      # value -> the layer whose output it is
        self.channels_last: set = set()   # nodes of a channels-last stretch read channels-first
        self.outputs = set(source.outputs)

    # ---- reading values ----
    def value(self, v: str) -> str:
        while v in self.alias:
            v = self.alias[v]
        return v

    def const(self, v: str):
        return self.source.constants.get(v) if v else None

    def sample(self, v: str):
        """A value's shape without the batch, or None."""
        shape = self.source.shape(v)
        return None if shape is None else tuple(shape[1:])

    def sole_consumer(self, v: str, op: str | tuple | None = None) -> ONode | None:
        users = self.consumers.get(v, [])
        if len(users) != 1 or v in self.outputs or users[0].index in self.used:
            return None
        if op is not None and users[0].op not in ((op,) if isinstance(op, str) else op):
            return None
        return users[0]

    def take(self, *nodes: ONode) -> None:
        self.used.update(n.index for n in nodes)

    def emit(self, op, args, inputs, output, node, weights=None, weight_name=None, nodes=(), hint="") -> Layer:
        layer = Layer(op, dict(args), tuple(inputs), output, node, dict(weights or {}), weight_name,
                      tuple(nodes) or (node,), hint=hint)
        self.take(*layer.nodes)
        self.layers.append(layer)
        self.made[layer.output] = layer
        return layer

    def data_input(self, node: ONode, k: int = 0, vector_ok: bool = False) -> str:
        """A node's data input, its aliases resolved; a [C, 1, 1] view of a vector only where the
        op broadcasts it (add, multiply)."""
        v = self.value(node.inputs[k])
        if v in self.as_map:
            if vector_ok:
                return self.as_map[v]
            raise refuse(self.source, node, "reads a vector unsqueezed to [C, 1, 1]", "such a view only as an "
                         "input of Add or Mul (a [C] vector broadcast over a map)")
        if self.const(v) is not None:
            raise refuse(self.source, node, "computes on a constant where a layer's output is needed",
                         "constants as weights of Conv, Gemm, BatchNormalization or as a per-channel "
                         "Mul/Add/Sub/Div")
        return v

    def run(self, table: dict, unknown) -> list:
        """Every node through ``table`` (op type -> matcher); ``unknown(node)`` is the (why, nearest
        supported form) of an op type the table lacks, named before any pattern runs."""
        for node in self.source.nodes:
            if node.op not in table:
                raise refuse(self.source, node, *unknown(node))
        for node in self.source.nodes:
            if node.index not in self.used:
                table[node.op](self, node)
        return self.layers


def first_of(*patterns):
    """One table entry for an op type several patterns start at: each pattern returns False where its
    form is not there (nothing taken); the last one is the op's plain reading."""
    *special, plain = patterns

    def match(m: Matcher, node: ONode) -> None:
        if not any(p(m, node) for p in special):
            plain(m, node)

    match.patterns = patterns
    return match


def _pads4(node: ONode):
    """ONNX pads [top, left, bottom, right] as the language's (top, bottom, left, right)."""
    pads = list(node.attr("pads", [0, 0, 0, 0]))
    if len(pads) != 4:
        return None
    top, left, bottom, right = pads
    return top, bottom, left, right


def compact_pair(values):
    """(a, a) -> a; (a, b) -> [a, b]."""
    a, b = values
    return int(a) if a == b else [int(a), int(b)]


def compact_sides(sides):
    """(t, b, l, r) as the shortest padding the language reads: one number, a pair or four."""
    t, b, l, r = (int(s) for s in sides)
    if t == b and l == r:
        return compact_pair((t, l))
    return [t, b, l, r]


def _auto_pads(m: Matcher, node: ONode, kernel, stride, dilation):
    """SAME_UPPER / SAME_LOWER as explicit sides, from the input's size (ONNX's rule)."""
    auto = node.attr("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        return _pads4(node)
    if auto == "VALID":
        return (0, 0, 0, 0)
    shape = m.sample(node.inputs[0])
    if shape is None or len(shape) != 3:
        return None
    sides = []
    for size, k, s, d in zip(shape[1:], kernel, stride, dilation):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        small, big = total // 2, total - total // 2
        sides.append((small, big) if auto == "SAME_UPPER" else (big, small))
    return sides[0][0], sides[0][1], sides[1][0], sides[1][1]


def _need_map_input(m: Matcher, node: ONode, what: str):
    shape = m.sample(node.inputs[0])
    if shape is None or len(shape) != 3:
        raise refuse(m.source, node, f"needs a 4-D [batch, C, H, W] input with a known shape", what)
    return shape


def _weight(m: Matcher, node: ONode, k: int, what: str):
    w = m.const(node.inputs[k]) if len(node.inputs) > k and node.inputs[k] else None
    if w is None and len(node.inputs) > k and node.inputs[k]:
        raise refuse(m.source, node, f"its {what} is computed, not a constant", f"{node.op} with constant weights")
    return w


def _name_source(m: Matcher, node: ONode, k: int) -> str | None:
    """The initializer name a weight input carries (before constant folding renamed nothing)."""
    name = node.inputs[k] if len(node.inputs) > k and node.inputs[k] in m.source.constants else None
    # an initializer several nodes read (an exporter shares equal tensors) names none of them
    return name if name is not None and len(m.consumers.get(name, ())) == 1 else None


def _clean(value: float) -> float:
    """A float32 attribute (0.1 read back as 0.10000000149) at the precision it was written with."""
    return float(f"{value:.7g}")


def _other(node: ONode, value: str):
    """The input of a two-input node that is not ``value`` (None where both are, or none is)."""
    ins = list(node.inputs)
    if value not in ins or len(ins) != 2:
        return None
    ins.remove(value)
    return ins[0]


def _scalar(m: Matcher, node: ONode, k: int):
    v = m.const(node.inputs[k]) if len(node.inputs) > k and node.inputs[k] else None
    return None if v is None or v.size != 1 else float(v.reshape(()))


def _chain(m: Matcher, start: ONode, steps) -> list | None:
    """Follow sole consumers through ``steps`` (op type, a check of the node or None); the nodes, or None."""
    out, node = [], start
    for op, ok in steps:
        node = m.sole_consumer(node.outputs[0], op)
        if node is None or (ok is not None and not ok(node)):
            return None
        out.append(node)
    return out


def _const_is(m: Matcher, node: ONode, value: float) -> bool:
    return any(m.const(i) is not None and m.const(i).size == 1 and math.isclose(float(m.const(i).reshape(())),
                                                                                value, rel_tol=1e-5)
               for i in node.inputs)


def _channel_constant(m: Matcher, node: ONode, k: int):
    """A constant input that is one number or one per channel of the other input; None otherwise."""
    if len(node.inputs) <= k:
        return None
    c = m.const(node.inputs[k])
    if c is None:
        return None
    other = m.sample(node.inputs[1 - k])
    if other is None:
        return None
    channels = other[0] if other else 1
    squeezed = c.reshape(-1)
    if c.size == 1:
        return float(squeezed[0])
    if c.size != channels:
        return None
    trailing = c.shape[-len(other):] if c.ndim >= len(other) else c.shape
    ok_shapes = {(channels,) + (1,) * (len(other) - 1), (1, channels) + (1,) * (len(other) - 1), (channels,)}
    if tuple(c.shape) not in ok_shapes and tuple(trailing) != (channels,) + (1,) * (len(other) - 1):
        return None
    return squeezed


def _numbers(c):
    if isinstance(c, float):
        return _clean(c)
    values = [_clean(float(v)) for v in c]
    return values[0] if len(set(values)) == 1 else values


def _refuse_part(m: Matcher, node: ONode, pattern: str) -> None:
    """An op the language has only inside a pattern, met outside it."""
    raise refuse(m.source, node, "is not part of a pattern the language has", pattern)
