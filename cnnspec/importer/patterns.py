"""The pattern table: ONNX op type -> a matcher that turns the node (and the chain an exporter
makes of one op: ``x * sigmoid(x)``, Erf-GELU, ``Transpose -> LayerNormalization -> Transpose``)
into layers of the language. The inverse of :data:`cnnspec.onnxfile.lowering.LOWERINGS`.

A matcher returns the layers it made (usually one) and marks the nodes it used; a node no matcher
takes is a :class:`~.reader.Refusal` naming it, its op type, its inputs' shapes and the nearest
supported form. Identity, Dropout, a float Cast and transposes that cancel are aliases: their output
is their input.
"""
from __future__ import annotations

import math
from typing import Callable

from .layers import Layer
from .reader import ONode, Source, refuse

ACTIVATION_OPS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "HardSwish": "hard_swish"}
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

    def run(self) -> list:
        for node in self.source.nodes:  # an operator outside the language is named before any pattern
            if node.op not in MATCHERS:
                why = ("makes a shape that depends on the data (a dynamic shape no constant folding resolves)"
                       if node.op in DYNAMIC else "is an operator the language has no op for")
                raise refuse(self.source, node, why, NEAREST.get(node.op, SUPPORTED))
        for node in self.source.nodes:
            if node.index not in self.used:
                MATCHERS[node.op](self, node)
        return self.layers


# ---- helpers ----

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
    return node.inputs[k] if len(node.inputs) > k and node.inputs[k] in m.source.constants else None


# ---- convolutions and dense ----

def match_conv(m: Matcher, node: ONode) -> None:
    x = m.data_input(node)
    _need_map_input(m, node, "Conv over a 4-D [batch, C, H, W] input")
    w = _weight(m, node, 1, "weight")
    if w is None or w.ndim != 4:
        raise refuse(m.source, node, "is not a 2-D convolution", "Conv with a 4-D weight [F, C/groups, kh, kw]")
    b = _weight(m, node, 2, "bias")
    kernel = tuple(node.attr("kernel_shape", w.shape[2:]))
    stride = tuple(node.attr("strides", (1, 1)))
    dilation = tuple(node.attr("dilations", (1, 1)))
    pads = _auto_pads(m, node, kernel, stride, dilation)
    if pads is None:
        raise refuse(m.source, node, "has padding this importer cannot read", "Conv with explicit 'pads'")
    args = {"filters": int(w.shape[0]), "kernel": compact_pair(kernel)}
    if stride != (1, 1):
        args["stride"] = compact_pair(stride)
    if any(pads):
        args["padding"] = compact_sides(pads)
    if dilation != (1, 1):
        args["dilation"] = compact_pair(dilation)
    if node.attr("group", 1) != 1:
        args["groups"] = int(node.attr("group"))
    weights = {"weight": w}
    if b is not None:
        weights["bias"] = b.reshape(-1)
    else:
        args["bias"] = False
    m.emit("conv2d", args, [x], node.outputs[0], node, weights, _name_source(m, node, 1))


def match_conv_transpose(m: Matcher, node: ONode) -> None:
    x = m.data_input(node)
    _need_map_input(m, node, "ConvTranspose over a 4-D input")
    w = _weight(m, node, 1, "weight")
    b = _weight(m, node, 2, "bias")
    if w is None or w.ndim != 4 or node.attr("group", 1) != 1 or tuple(node.attr("dilations", (1, 1))) != (1, 1) \
            or node.attr("output_shape") is not None or node.attr("auto_pad", "NOTSET") not in ("NOTSET", ""):
        raise refuse(m.source, node, "uses groups, dilation, output_shape or auto_pad",
                     "ConvTranspose with group 1, dilation 1 and explicit pads")
    kernel = tuple(node.attr("kernel_shape", w.shape[2:]))
    stride = tuple(node.attr("strides", (1, 1)))
    args = {"filters": int(w.shape[1]), "kernel": compact_pair(kernel)}
    if stride != (1, 1):
        args["stride"] = compact_pair(stride)
    pads = _pads4(node)
    if any(pads):
        args["padding"] = compact_sides(pads)
    extra = tuple(node.attr("output_padding", (0, 0)))
    if any(extra):
        args["output_padding"] = compact_pair(extra)
    weights = {"weight": w}
    if b is not None:
        weights["bias"] = b.reshape(-1)
    else:
        args["bias"] = False
    m.emit("conv2d_transpose", args, [x], node.outputs[0], node, weights, _name_source(m, node, 1))


def match_gemm(m: Matcher, node: ONode) -> None:
    x = _vector_input(m, node)
    w = _weight(m, node, 1, "weight")
    c = _weight(m, node, 2, "bias")
    if w is None or w.ndim != 2 or node.attr("transA", 0):
        raise refuse(m.source, node, "is not a dense layer", "Gemm(x, W) with a constant W, transA = 0")
    w = w if node.attr("transB", 0) else w.T
    w = w * node.attr("alpha", 1.0) if node.attr("alpha", 1.0) != 1.0 else w
    args = {"units": int(w.shape[0])}
    weights = {"weight": w}
    if c is not None:
        if c.size not in (1, w.shape[0]):
            raise refuse(m.source, node, "has a bias that is not one number per unit", "Gemm with a bias [units]")
        weights["bias"] = _np().broadcast_to(c.reshape(-1) * node.attr("beta", 1.0), (w.shape[0],)).copy()
    else:
        args["bias"] = False
    m.emit("dense", args, [x], node.outputs[0], node, weights, _name_source(m, node, 1))


def match_matmul(m: Matcher, node: ONode) -> None:
    x = _vector_input(m, node)
    w = _weight(m, node, 1, "weight")
    if w is None or w.ndim != 2:
        raise refuse(m.source, node, "is not a dense layer", "MatMul(x, W) with a constant 2-D W, then Add(bias)")
    add = m.sole_consumer(node.outputs[0], "Add")
    bias = None
    if add is not None:
        other = [i for i in add.inputs if i != node.outputs[0]]
        bias = m.const(other[0]) if len(other) == 1 else None
        if bias is not None and bias.size != w.shape[1]:
            bias = None
    weights = {"weight": w.T}
    args = {"units": int(w.shape[1])}
    if bias is not None:
        weights["bias"] = bias.reshape(-1)
        m.emit("dense", args, [x], add.outputs[0], node, weights, _name_source(m, node, 1), nodes=(node, add))
    else:
        args["bias"] = False
        m.emit("dense", args, [x], node.outputs[0], node, weights, _name_source(m, node, 1))


def _vector_input(m: Matcher, node: ONode) -> str:
    x = m.data_input(node)
    shape = m.sample(x)
    if shape is None or len(shape) != 1:
        raise refuse(m.source, node, "reads something other than a [batch, N] vector",
                     f"{node.op} after Flatten (or a Reshape to [batch, -1])")
    return x


# ---- normalisation ----

def match_batchnorm(m: Matcher, node: ONode) -> None:
    x = m.data_input(node)
    parts = [_weight(m, node, k, what) for k, what in enumerate(("", "scale", "bias", "mean", "variance")) if k]
    if any(p is None for p in parts) or node.attr("training_mode", 0):
        raise refuse(m.source, node, "has no constant statistics or is in training mode",
                     "BatchNormalization in inference mode with constant scale, bias, mean and variance")
    scale, bias, mean, var = (p.reshape(-1) for p in parts)
    args = {}
    eps = float(node.attr("epsilon", 1e-5))
    if not math.isclose(eps, 1e-5, rel_tol=1e-6):
        args["eps"] = _clean(eps)
    momentum = _clean(1.0 - float(node.attr("momentum", 0.9)))
    if not math.isclose(momentum, 0.1, rel_tol=1e-6) and 0 <= momentum <= 1:
        args["momentum"] = momentum
    weights = {}
    names = [node.inputs[k] for k in (1, 2)]
    np = _np()
    if names[0].endswith("/fixed_weight") and np.all(scale == 1):
        args["scale"] = False
    else:
        weights["weight"] = scale
    if names[1].endswith("/fixed_bias") and np.all(bias == 0):
        args["center"] = False
    else:
        weights["bias"] = bias
    weights.update(running_mean=mean, running_var=var)
    source_name = next((n for n in (node.inputs[3], node.inputs[1]) if n in m.source.constants
                        and not n.endswith(("/fixed_weight",))), None)
    m.emit("batchnorm", args, [x], node.outputs[0], node, weights, source_name)


def _clean(value: float) -> float:
    """A float32 attribute (0.1 read back as 0.10000000149) at the precision it was written with."""
    return float(f"{value:.7g}")


def _layernorm(m: Matcher, node: ONode, x: str, out: str, nodes) -> None:
    w, b = _weight(m, node, 1, "scale"), _weight(m, node, 2, "bias")
    if w is None:
        raise refuse(m.source, node, "has no constant scale", "LayerNormalization with constant scale and bias")
    args = {}
    eps = float(node.attr("epsilon", 1e-5))
    if not math.isclose(eps, 1e-5, rel_tol=1e-6):
        args["eps"] = _clean(eps)
    weights = {"weight": w.reshape(-1), "bias": (b if b is not None else _np().zeros_like(w)).reshape(-1)}
    m.emit("layernorm", args, [x], out, node, weights, _name_source(m, node, 1), nodes=nodes)


def match_layernorm(m: Matcher, node: ONode) -> None:
    x = m.data_input(node)
    shape = m.sample(x)
    if shape is None or len(shape) != 1 or node.attr("axis", -1) not in (-1, 1):
        raise refuse(m.source, node, "normalises over axes other than the features of a vector",
                     "LayerNormalization over a [batch, N] vector's last axis, or a map's channels between "
                     "Transpose [0, 2, 3, 1] and [0, 3, 1, 2]")
    _layernorm(m, node, x, node.outputs[0], (node,))


def match_transpose(m: Matcher, node: ONode) -> None:
    """Only transposes that cancel: a pair of inverse permutations (an alias), or the channels-last
    sandwich around LayerNormalization (a layernorm over a map's channels)."""
    perm = list(node.attr("perm", []))
    x = m.data_input(node)
    user = m.sole_consumer(node.outputs[0])
    if perm == [0, 2, 3, 1] and user is not None and user.op == "LayerNormalization" \
            and user.attr("axis", -1) in (-1, 3):
        back = m.sole_consumer(user.outputs[0], "Transpose")
        if back is not None and list(back.attr("perm", [])) == [0, 3, 1, 2]:
            _layernorm(m, user, x, back.outputs[0], (user, node, back))
            return
    if user is not None and user.op == "Transpose" and perm:
        inverse = [perm.index(k) for k in range(len(perm))]
        if list(user.attr("perm", [])) == inverse:
            m.take(node, user)
            m.alias[user.outputs[0]] = x
            return
    raise refuse(m.source, node, f"transposes to {perm} and no later Transpose undoes it (a channels-last graph?)",
                 "channels-first (NCHW) graphs; transposes only in pairs that cancel, or around LayerNormalization; "
                 "export with NCHW input (tf2onnx: --inputs-as-nchw)")


# ---- pooling, shape ----

def _pool_args(m: Matcher, node: ONode):
    kernel = tuple(node.attr("kernel_shape"))
    stride = tuple(node.attr("strides", (1, 1)))
    if tuple(node.attr("dilations", (1, 1))) != (1, 1) or len(kernel) != 2:
        raise refuse(m.source, node, "is not a 2-D pool without dilation", f"{node.op} with a 2-D kernel")
    pads = _auto_pads(m, node, kernel, stride, (1, 1))
    args = {"kernel": compact_pair(kernel)}
    if stride != kernel:
        args["stride"] = compact_pair(stride)
    if any(pads):
        args["padding"] = compact_sides(pads)
    return args, pads


def match_maxpool(m: Matcher, node: ONode) -> None:
    x = m.data_input(node)
    _need_map_input(m, node, "MaxPool over a 4-D input")
    args, _ = _pool_args(m, node)
    if node.attr("ceil_mode", 0):
        args["ceil"] = True
    if len(node.outputs) > 1 and node.outputs[1]:
        raise refuse(m.source, node, "also outputs indices", "MaxPool with one output")
    m.emit("maxpool2d", args, [x], node.outputs[0], node)


def match_avgpool(m: Matcher, node: ONode) -> None:
    x = m.data_input(node)
    shape = _need_map_input(m, node, "AveragePool over a 4-D input")
    args, pads = _pool_args(m, node)
    if any(pads) and not node.attr("count_include_pad", 0):
        from ..graph.shapes import output_size

        kernel, stride = node.attr("kernel_shape"), node.attr("strides", node.attr("kernel_shape"))
        same = [output_size(size, k, s, "same") for size, k, s in zip(shape[1:], kernel, stride)]
        if tuple(pads) != (same[0].pad_before, same[0].pad_after, same[1].pad_before, same[1].pad_after):
            raise refuse(m.source, node, "pads without counting the padding (count_include_pad = 0)",
                         "AveragePool counting its explicit padding, or TensorFlow's 'same' padding")
        args["padding"] = "same"
    if node.attr("ceil_mode", 0):
        out = m.sample(node.outputs[0])
        from ..graph.shapes import output_size

        floor = tuple(output_size(size, k, s, (p0, p1)).size for size, k, s, (p0, p1) in zip(
            shape[1:], node.attr("kernel_shape"), node.attr("strides", node.attr("kernel_shape")),
            ((pads[0], pads[1]), (pads[2], pads[3]))))
        if out is None or tuple(out[1:]) != floor:
            raise refuse(m.source, node, "rounds its last window up (ceil_mode) where that changes the size",
                         "AveragePool with ceil_mode 0")
    m.emit("avgpool2d", args, [x], node.outputs[0], node)


def _global(op: str):
    def match(m: Matcher, node: ONode) -> None:
        x = m.data_input(node)
        _need_map_input(m, node, f"{node.op} over a 4-D input")
        flat = _flatten_after(m, node.outputs[0])
        if flat is not None:
            m.emit(op, {}, [x], flat.outputs[0], node, nodes=(node, flat))
        else:
            m.emit(op, {"keepdims": True}, [x], node.outputs[0], node)
    return match


def _flatten_after(m: Matcher, value: str) -> ONode | None:
    """The Flatten, Reshape or Squeeze that makes a [C, 1, 1] value a [C] vector, where it is the sole user."""
    user = m.sole_consumer(value, ("Flatten", "Reshape", "Squeeze"))
    if user is None:
        return None
    out = m.sample(user.outputs[0])
    return user if out is not None and len(out) == 1 else None


def match_reduce(m: Matcher, node: ONode) -> None:
    """ReduceMean / ReduceMax over height and width: a global pool (keepdims as the node says)."""
    x = m.data_input(node)
    shape = m.sample(x)
    axes = node.attr("axes")
    if axes is None and len(node.inputs) > 1 and node.inputs[1]:
        axes = m.const(node.inputs[1])
    rank = len(shape) + 1 if shape is not None else 4
    if node.op == "ReduceMean" and axes is not None and shape is not None \
            and sorted(int(a) % rank for a in axes) == [1] and _layernorm_decomposed(m, node, x):
        return
    axes = sorted(int(a) % 4 for a in (axes if axes is not None else ()))
    if shape is None or len(shape) != 3 or axes != [2, 3]:
        raise refuse(m.source, node, f"reduces over axes {axes}", f"{node.op} over axes [2, 3] (a global pool)")
    op = "global_avgpool2d" if node.op == "ReduceMean" else "global_maxpool2d"
    keep = bool(node.attr("keepdims", 1))
    flat = _flatten_after(m, node.outputs[0]) if keep else None
    if flat is not None:
        m.emit(op, {}, [x], flat.outputs[0], node, nodes=(node, flat))
    else:
        m.emit(op, {"keepdims": True} if keep else {}, [x], node.outputs[0], node)


def _reduce_axes(m: Matcher, node: ONode):
    axes = node.attr("axes")
    if axes is None and len(node.inputs) > 1 and node.inputs[1]:
        axes = m.const(node.inputs[1])
    return None if axes is None else [int(a) for a in _np().asarray(axes).reshape(-1)]


def _layernorm_decomposed(m: Matcher, mean: ONode, x: str) -> bool:
    """LayerNormalization as older exporters (and hand-written LayerNorm2d) spell it, over the
    channels (axis 1) of a map or the features of a vector: mean = ReduceMean(x); d = x - mean;
    var = ReduceMean(d^2); y = d / sqrt(var + eps) [* w] [+ b]. A layernorm, or False."""
    np = _np()
    sub = m.sole_consumer(mean.outputs[0], "Sub")
    if sub is None or m.value(sub.inputs[0]) != x or sub.inputs[1] != mean.outputs[0] or not mean.attr("keepdims", 1):
        return False
    users = m.consumers.get(sub.outputs[0], [])
    square = next((u for u in users if u.op == "Pow" and _const_is(m, u, 2.0)
                   or u.op == "Mul" and list(u.inputs) == [sub.outputs[0]] * 2), None)
    div = next((u for u in users if u.op == "Div" and u.inputs[0] == sub.outputs[0]), None)
    if square is None or div is None or len(users) != 2:
        return False
    var = m.sole_consumer(square.outputs[0], "ReduceMean")
    if var is None or _reduce_axes(m, var) != _reduce_axes(m, mean):
        return False
    add = m.sole_consumer(var.outputs[0], "Add")
    sqrt = m.sole_consumer(add.outputs[0], "Sqrt") if add is not None else None
    eps = next((m.const(i) for i in add.inputs if m.const(i) is not None), None) if add is not None else None
    if sqrt is None or eps is None or eps.size != 1 or m.sole_consumer(sqrt.outputs[0]) is not div:
        return False
    nodes, out = [mean, sub, square, var, add, sqrt, div], div.outputs[0]
    channels = m.sample(x)[0]
    w, b = np.ones(channels, np.float32), np.zeros(channels, np.float32)
    mul = m.sole_consumer(out, "Mul")
    if mul is not None:
        k = 1 - list(mul.inputs).index(out) if out in mul.inputs else None
        c = _channel_constant(m, mul, k) if k is not None else None
        if c is not None:
            w = np.broadcast_to(np.asarray(c, np.float32), (channels,)).copy()
            nodes.append(mul)
            out = mul.outputs[0]
    plus = m.sole_consumer(out, "Add")
    if plus is not None:
        k = 1 - list(plus.inputs).index(out)
        c = _channel_constant(m, plus, k)
        if c is not None:
            b = np.broadcast_to(np.asarray(c, np.float32), (channels,)).copy()
            nodes.append(plus)
            out = plus.outputs[0]
    value = float(eps.reshape(()))
    args = {} if math.isclose(value, 1e-5, rel_tol=1e-6) else {"eps": _clean(value)}
    m.emit("layernorm", args, [x], out, mean, {"weight": w, "bias": b}, nodes=tuple(nodes))
    return True


def match_reshape(m: Matcher, node: ONode) -> None:
    """Flatten, Reshape and Squeeze/Unsqueeze: a flatten when a map becomes a vector, an alias when
    nothing changes, a [C, 1, 1] view of a vector (for broadcasting) when a vector becomes one."""
    x = m.data_input(node)
    before, after = m.sample(x), m.sample(node.outputs[0])
    if node.op == "Flatten" and node.attr("axis", 1) != 1:
        raise refuse(m.source, node, f"flattens from axis {node.attr('axis')}", "Flatten with axis 1")
    if before is None or after is None or (m.source.shape(node.outputs[0]) or (0,))[0] != 1:
        raise refuse(m.source, node, "has a shape no constant folding resolves (or changes the batch)",
                     "Reshape to a constant [batch, -1] (a flatten)")
    if before == after:
        m.take(node)
        m.alias[node.outputs[0]] = x
    elif len(before) == 3 and len(after) == 1:
        m.emit("flatten", {}, [x], node.outputs[0], node)
    elif len(before) == 1 and after == (before[0], 1, 1):
        m.take(node)
        m.as_map[node.outputs[0]] = x
    else:
        raise refuse(m.source, node, f"reshapes {list(before)} to {list(after)}",
                     "a flatten of a [C, H, W] map to [C*H*W] (Flatten, or Reshape to [batch, -1])")


def match_alias(m: Matcher, node: ONode) -> None:
    x = m.data_input(node, vector_ok=False) if node.inputs[0] not in m.as_map else node.inputs[0]
    if node.op == "Dropout" and len(node.outputs) > 1 and node.outputs[1] and m.consumers.get(node.outputs[1]):
        raise refuse(m.source, node, "has its mask used", "Dropout whose mask nothing reads")
    if node.op == "Cast":
        from onnx import TensorProto

        if node.attr("to") not in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE):
            raise refuse(m.source, node, "casts to a non-float type", "Cast between float types")
    m.take(node)
    m.alias[node.outputs[0]] = x


# ---- activations ----

def _other(node: ONode, value: str):
    """The input of a two-input node that is not ``value`` (None where both are, or none is)."""
    ins = list(node.inputs)
    if value not in ins or len(ins) != 2:
        return None
    ins.remove(value)
    return ins[0]


def _times_x(m: Matcher, node: ONode, x: str) -> ONode | None:
    """The Mul that multiplies ``node``'s output by ``x`` (silu, mish, hard-swish end so)."""
    mul = m.sole_consumer(node.outputs[0], "Mul")
    if mul is not None and m.value(_other(mul, node.outputs[0]) or "") == x:
        return mul
    return None


def _activation(op: str, args=None, *, then_times_x: str | None = None):
    """An activation node; ``then_times_x``: the op it is when a Mul by its own input follows."""
    def match(m: Matcher, node: ONode) -> None:
        x = m.data_input(node)
        if then_times_x:
            mul = _times_x(m, node, x)
            if mul is not None:
                m.emit(then_times_x, {}, [x], mul.outputs[0], node, nodes=(node, mul))
                return
        m.emit(op, args(node) if callable(args) else dict(args or {}), [x], node.outputs[0], node)
    return match


def match_clip(m: Matcher, node: ONode) -> None:
    x = m.data_input(node)
    low = node.attr("min") if "min" in node.attrs else _scalar(m, node, 1)
    high = node.attr("max") if "max" in node.attrs else _scalar(m, node, 2)
    if low == 0 and high == 6:
        m.emit("relu6", {}, [x], node.outputs[0], node)
    elif low == 0 and high is None:
        m.emit("relu", {}, [x], node.outputs[0], node)
    else:
        raise refuse(m.source, node, f"clips to [{low}, {high}]", "Clip to [0, 6] (relu6) or [0, inf) (relu)")


def _scalar(m: Matcher, node: ONode, k: int):
    v = m.const(node.inputs[k]) if len(node.inputs) > k and node.inputs[k] else None
    return None if v is None or v.size != 1 else float(v.reshape(()))


def match_hard_sigmoid(m: Matcher, node: ONode) -> None:
    x = m.data_input(node)
    if not (math.isclose(node.attr("alpha", 0.2), 1 / 6, rel_tol=1e-5)
            and math.isclose(node.attr("beta", 0.5), 0.5, rel_tol=1e-6)):
        raise refuse(m.source, node, f"has alpha {node.attr('alpha', 0.2)}, beta {node.attr('beta', 0.5)}",
                     "HardSigmoid with alpha 1/6 and beta 0.5 (PyTorch's hardsigmoid)")
    mul = _times_x(m, node, x)
    if mul is not None:
        m.emit("hard_swish", {}, [x], mul.outputs[0], node, nodes=(node, mul))
    else:
        m.emit("hard_sigmoid", {}, [x], node.outputs[0], node)


def match_softmax(m: Matcher, node: ONode) -> None:
    x = m.data_input(node)
    shape = m.sample(x)
    axis = node.attr("axis", -1)
    rank = len(shape) + 1 if shape is not None else 0
    if shape is None or axis % rank != 1:
        raise refuse(m.source, node, f"is over axis {axis}", "Softmax over the channels (axis 1)")
    m.emit("softmax", {}, [x], node.outputs[0], node)


def match_softplus(m: Matcher, node: ONode) -> None:
    """Softplus -> Tanh -> Mul(x): mish; nothing else (the language has no softplus)."""
    x = m.data_input(node)
    tanh = m.sole_consumer(node.outputs[0], "Tanh")
    mul = _times_x(m, tanh, x) if tanh is not None else None
    if mul is None:
        raise refuse(m.source, node, "is a softplus on its own", "Softplus -> Tanh -> Mul by the input (mish)")
    m.emit("mish", {}, [x], mul.outputs[0], node, nodes=(node, tanh, mul))


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


def match_div(m: Matcher, node: ONode) -> None:
    """x / sqrt(2) -> Erf -> + 1 -> (* x, * 0.5 in either order): the erf GELU; x / c per channel:
    normalize."""
    x = m.data_input(node)
    if _const_is(m, node, math.sqrt(2.0)):
        head = _chain(m, node, [("Erf", None), ("Add", lambda n: _const_is(m, n, 1.0))])
        if head is not None:
            first = m.sole_consumer(head[-1].outputs[0], "Mul")
            second = m.sole_consumer(first.outputs[0], "Mul") if first is not None else None
            if second is not None:
                halves = [n for n in (first, second) if _const_is(m, n, 0.5)]
                by_x = [n for n in (first, second) if x in (m.value(i) for i in n.inputs)]
                if len(halves) == 1 and len(by_x) == 1 and halves[0] is not by_x[0]:
                    m.emit("gelu", {}, [x], second.outputs[0], node, nodes=(node, *head, first, second))
                    return
    c = _channel_constant(m, node, 1)
    if c is None or (_np().asarray(c) <= 0).any():
        raise refuse(m.source, node, "divides by something other than a positive constant per channel",
                     "Div by a positive constant (normalize), or the erf GELU x*0.5*(1+erf(x/sqrt(2)))")
    m.emit("normalize", {"std": _numbers(c)}, [x], node.outputs[0], node)


def match_gelu(m: Matcher, node: ONode) -> None:
    x = m.data_input(node)
    approximate = node.attr("approximate", "none")
    m.emit("gelu", {} if approximate == "none" else {"approximate": approximate}, [x], node.outputs[0], node)


# ---- element-wise ----

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


def _binary(op: str):
    def match(m: Matcher, node: ONode) -> None:
        consts = [k for k in (0, 1) if m.const(node.inputs[k]) is not None]
        if len(consts) == 2:
            raise refuse(m.source, node, "computes on constants only", "constant folding (this is a bug)")
        if consts:
            return CONSTANT_BINARY[node.op](m, node, consts[0])
        ins = [m.data_input(node, k, vector_ok=True) for k in range(len(node.inputs))]
        shapes = [m.sample(v) for v in ins]
        if None in shapes:
            raise refuse(m.source, node, "has an input of unknown shape", f"{node.op} of equal shapes")
        out = m.sample(node.outputs[0])
        fixed = []
        for v, shape in zip(ins, shapes):
            if shape != out and len(shape) == 3 and shape[1:] == (1, 1) and len(out) == 3 and shape[0] == out[0]:
                # a [C, 1, 1] gate (squeeze-and-excite): flattened to [C], which the language broadcasts
                m.source.shapes[f"{v}#vector"] = (1, shape[0])
                flat = m.emit("flatten", {}, [v], f"{v}#vector", node, hint="flatten")
                flat.nodes = ()
                v = flat.output
            elif shape != out and not (len(shape) == 1 and len(out) == 3 and shape[0] == out[0]):
                raise refuse(m.source, node, f"broadcasts {list(shape)} to {list(out)}",
                             f"{node.op} of equal shapes, or a [C] / [C, 1, 1] value over a [C, H, W] map")
            fixed.append(v)
        m.emit(op, {}, fixed, node.outputs[0], node)
    return match


def _const_add(m: Matcher, node: ONode, k: int) -> None:
    """A constant added: the bias of the conv2d/dense before it where that has none, else a normalize."""
    x = m.data_input(node, 1 - k)
    c = _channel_constant(m, node, k)
    if c is None:
        raise refuse(m.source, node, "adds a constant that is not one number per channel",
                     "Add of a constant per channel (a bias, or a normalize)")
    before = next((l for l in reversed(m.layers) if l.output == x), None)
    if before is not None and before.op in FUSABLE and "bias" not in before.weights \
            and m.sole_consumer(x) is node and not before.args.get("activation"):
        n = before.weights["weight"].shape[1 if before.op == "conv2d_transpose" else 0]
        before.weights["bias"] = _np().broadcast_to(_np().asarray(c, dtype="float32"), (n,)).copy()
        before.args.pop("bias", None)
        before.output = node.outputs[0]
        before.nodes = before.nodes + (node,)
        m.take(node)
        return
    neg = -c if not isinstance(c, float) else -c
    m.emit("normalize", {"mean": _numbers(neg)}, [x], node.outputs[0], node)


def _const_sub(m: Matcher, node: ONode, k: int) -> None:
    if k != 1:
        raise refuse(m.source, node, "subtracts from a constant", "Sub of a constant per channel (normalize)")
    x = m.data_input(node)
    c = _channel_constant(m, node, 1)
    if c is None:
        raise refuse(m.source, node, "subtracts a constant that is not one number per channel",
                     "Sub of a constant per channel, then Div (normalize)")
    div = m.sole_consumer(node.outputs[0], "Div")
    d = _channel_constant(m, div, 1) if div is not None and div.inputs[0] == node.outputs[0] else None
    if d is not None and not (_np().asarray(d) <= 0).any():
        m.emit("normalize", {"mean": _numbers(c), "std": _numbers(d)}, [x], div.outputs[0], node, nodes=(node, div))
    else:
        m.emit("normalize", {"mean": _numbers(c)}, [x], node.outputs[0], node)


def _const_mul(m: Matcher, node: ONode, k: int) -> None:
    """A learned per-channel multiplier (``scale``), or a positive number for every channel (normalize)."""
    x = m.data_input(node, 1 - k)
    c = _channel_constant(m, node, k)
    if c is None:
        raise refuse(m.source, node, "multiplies by a constant that is not one number per channel",
                     "Mul by a constant per channel (a layer scale)")
    if isinstance(c, float):
        if c <= 0:
            raise refuse(m.source, node, f"multiplies by {c}", "Mul by a positive number or a per-channel constant")
        m.emit("normalize", {"std": _clean(1.0 / c)}, [x], node.outputs[0], node)
        return
    name = node.inputs[k]
    m.emit("scale", {}, [x], node.outputs[0], node, {"weight": _np().asarray(c, dtype="float32")},
           name if name in m.source.constants and "." in name else None)


CONSTANT_BINARY = {"Add": _const_add, "Sub": _const_sub, "Mul": _const_mul,
                   "Div": lambda m, node, k: match_div(m, node)}


def match_mul(m: Matcher, node: ONode) -> None:
    _binary("multiply")(m, node)


def match_concat(m: Matcher, node: ONode) -> None:
    ins = [m.data_input(node, k) for k in range(len(node.inputs))]
    shape = m.sample(ins[0])
    if shape is None or node.attr("axis") % (len(shape) + 1) != 1:
        raise refuse(m.source, node, f"joins along axis {node.attr('axis')}", "Concat along the channels (axis 1)")
    if len(ins) == 1:
        m.take(node)
        m.alias[node.outputs[0]] = ins[0]
        return
    m.emit("concat", {}, ins, node.outputs[0], node)


def match_resize(m: Matcher, node: ONode) -> None:
    x = m.data_input(node)
    shape = _need_map_input(m, node, "Resize of a 4-D input")
    out = m.sample(node.outputs[0])
    scales = [out[1] / shape[1], out[2] / shape[2]] if out is not None else None
    mode = node.attr("mode", "nearest")
    coords = node.attr("coordinate_transformation_mode", "half_pixel")
    nearest = node.attr("nearest_mode", "round_prefer_floor")
    ok = scales is not None and out[0] == shape[0] and all(s >= 1 and s == int(s) for s in scales)
    if ok and mode == "nearest" and (coords == "asymmetric" and nearest == "floor"
                                     or coords in ("half_pixel", "pytorch_half_pixel") and nearest.startswith("round")):
        args = {"scale": compact_pair([int(s) for s in scales])}
    elif ok and mode == "linear" and coords in ("half_pixel", "pytorch_half_pixel"):
        args = {"scale": compact_pair([int(s) for s in scales]), "mode": "bilinear"}
    else:
        raise refuse(m.source, node, f"resizes by {scales} ({mode}, {coords})",
                     "Resize by integer scales: nearest (asymmetric, floor) or linear (half_pixel)")
    m.emit("upsample2d", args, [x], node.outputs[0], node)


def match_pad(m: Matcher, node: ONode) -> None:
    x = m.data_input(node)
    _need_map_input(m, node, "Pad of a 4-D input")
    pads = node.attr("pads") if "pads" in node.attrs else m.const(node.inputs[1])
    axes = m.const(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] else None
    value = node.attr("value", None)
    if value is None:
        value = _scalar(m, node, 2) or 0.0
    if pads is None or node.attr("mode", "constant") != "constant":
        raise refuse(m.source, node, f"pads in mode '{node.attr('mode', 'constant')}' or by computed amounts",
                     "Pad with constant amounts in mode 'constant' (zeropad2d)")
    pads = [int(p) for p in _np().asarray(pads).reshape(-1)]
    if axes is not None:
        full = [0] * 8
        for a, (b, e) in zip(_np().asarray(axes).reshape(-1), zip(pads[:len(pads) // 2], pads[len(pads) // 2:])):
            full[int(a) % 4], full[int(a) % 4 + 4] = b, e
        pads = full
    if len(pads) != 8 or any(pads[k] for k in (0, 1, 4, 5)):
        raise refuse(m.source, node, f"pads {pads}", "Pad of height and width only")
    sides = (pads[2], pads[6], pads[3], pads[7])
    if all(s >= 0 for s in sides):
        args = {"padding": compact_sides(sides)}
        if value:
            args["value"] = _clean(float(value))
        m.emit("zeropad2d", args, [x], node.outputs[0], node)
    elif all(s <= 0 for s in sides):
        m.emit("crop2d", {"cropping": compact_sides([-s for s in sides])}, [x], node.outputs[0], node)
    else:
        raise refuse(m.source, node, f"pads and crops at once {sides}", "Pad by amounts all >= 0 or all <= 0")


def match_slice(m: Matcher, node: ONode) -> None:
    x = m.data_input(node)
    shape = _need_map_input(m, node, "Slice of a 4-D input's height and width (a crop)")
    vals = [m.const(i) if i else None for i in node.inputs[1:]] + [None] * 4
    starts, ends, axes, steps = vals[:4]
    if starts is None or ends is None:
        raise refuse(m.source, node, "slices by computed amounts", "Slice by constant starts and ends (crop2d)")
    axes = [int(a) % 4 for a in (axes if axes is not None else range(len(starts)))]
    steps = [1] * len(axes) if steps is None else [int(s) for s in steps]
    full = (1, *shape)
    crop = {2: [0, 0], 3: [0, 0]}
    for a, s, e, st in zip(axes, starts.reshape(-1), ends.reshape(-1), steps):
        size = full[a]
        s = max(0, min(size, int(s) + size if s < 0 else int(s)))
        e = max(0, min(size, int(e) + size if e < 0 else int(e)))
        if st != 1 or (a in (0, 1) and (s, e) != (0, size)):
            raise refuse(m.source, node, f"slices axis {a} from {s} to {e} by {st}",
                         "Slice of height and width with step 1 (crop2d)")
        if a in crop:
            crop[a] = [s, size - e]
    m.emit("crop2d", {"cropping": compact_sides((*crop[2], *crop[3]))}, [x], node.outputs[0], node)


def match_unsqueeze(m: Matcher, node: ONode) -> None:
    match_reshape(m, node)


MATCHERS: dict[str, Callable] = {
    "Conv": match_conv,
    "ConvTranspose": match_conv_transpose,
    "Gemm": match_gemm,
    "MatMul": match_matmul,
    "BatchNormalization": match_batchnorm,
    "LayerNormalization": match_layernorm,
    "Transpose": match_transpose,
    "MaxPool": match_maxpool,
    "AveragePool": match_avgpool,
    "GlobalAveragePool": _global("global_avgpool2d"),
    "GlobalMaxPool": _global("global_maxpool2d"),
    "ReduceMean": match_reduce,
    "ReduceMax": match_reduce,
    "Flatten": match_reshape,
    "Reshape": match_reshape,
    "Squeeze": match_reshape,
    "Unsqueeze": match_unsqueeze,
    "Identity": match_alias,
    "Dropout": match_alias,
    "Cast": match_alias,
    "Relu": _activation("relu"),
    "Sigmoid": _activation("sigmoid", then_times_x="silu"),
    "Tanh": _activation("tanh"),
    "HardSwish": _activation("hard_swish"),
    "HardSigmoid": match_hard_sigmoid,
    "LeakyRelu": _activation("leaky_relu", lambda n: {} if math.isclose(n.attr("alpha", 0.01), 0.01, rel_tol=1e-5)
                             else {"slope": _clean(n.attr("alpha", 0.01))}),
    "Elu": _activation("elu", lambda n: {} if n.attr("alpha", 1.0) == 1.0 else {"alpha": _clean(n.attr("alpha"))}),
    "Mish": _activation("mish"),
    "Gelu": match_gelu,
    "Clip": match_clip,
    "Softmax": match_softmax,
    "Softplus": match_softplus,
    "Pow": lambda m, node: _refuse_part(m, node, "the layernorm decomposition: ReduceMean, Sub, Pow 2, ReduceMean, "
                                                 "Add eps, Sqrt, Div"),
    "Sqrt": lambda m, node: _refuse_part(m, node, "the layernorm decomposition: ReduceMean, Sub, Pow 2, ReduceMean, "
                                                  "Add eps, Sqrt, Div"),
    "Erf": lambda m, node: _refuse_part(m, node, "the erf GELU: x / sqrt(2) -> Erf -> + 1 -> * x -> * 0.5"),
    "Div": match_div,
    "Add": _binary("add"),
    "Mul": match_mul,
    "Sub": lambda m, node: _const_sub(m, node, 1) if m.const(node.inputs[1]) is not None else _refuse_sub(m, node),
    "Concat": match_concat,
    "Resize": match_resize,
    "Pad": match_pad,
    "Slice": match_slice,
}


def _refuse_part(m: Matcher, node: ONode, pattern: str) -> None:
    """An op the language has only inside a pattern, met outside it."""
    raise refuse(m.source, node, "is not part of a pattern the language has", pattern)


def _refuse_sub(m: Matcher, node: ONode) -> None:
    raise refuse(m.source, node, "subtracts one layer's output from another's",
                 "Sub of a constant per channel (normalize); Add and Mul of layers")


SUPPORTED = ("Conv, ConvTranspose, Gemm/MatMul, BatchNormalization, LayerNormalization, the pools, the "
             "activations, Add/Mul/Concat, Resize, Pad, Slice (see README 'Bringing a model in')")
DYNAMIC = {"NonZero", "Unique", "NonMaxSuppression", "TopK", "Compress"}
# the nearest supported form for operators the language has no op for
NEAREST = {
    **{op: "static shapes: export the model with a fixed input size and without data-dependent indexing"
       for op in DYNAMIC},
    "LSTM": "convolutional layers only: the language has no recurrent op (Conv, pools, Gemm)",
    "GRU": "convolutional layers only: the language has no recurrent op (Conv, pools, Gemm)",
    "RNN": "convolutional layers only: the language has no recurrent op (Conv, pools, Gemm)",
    "Loop": "a graph without control flow: unroll the loop before exporting",
    "If": "a graph without control flow: export with the branch taken",
    "Scan": "a graph without control flow: unroll it before exporting",
    "Shape": "static shapes: export with a fixed input size so shape computations fold to constants",
    "Attention": "convolutional layers, dense layers and element-wise ops",
    "InstanceNormalization": "BatchNormalization or LayerNormalization",
    "GroupNormalization": "BatchNormalization or LayerNormalization",
    "ReduceMean": "ReduceMean over axes [2, 3] (a global pool) or LayerNormalization",
}


def match_layers(source: Source) -> list:
    """The layers, in the graph's order; the values that equal others (Identity, Dropout, a cancelled
    Transpose pair) are left in ``source.aliases``."""
    matcher = Matcher(source)
    layers = matcher.run()
    source.aliases = matcher.alias
    return layers
