"""Patterns of the layers that hold weights: Conv, ConvTranspose, Gemm and MatMul(+Add) as dense,
BatchNormalization, LayerNormalization (also between channels-last Transposes, and decomposed)."""
from __future__ import annotations

import math

from .matcher import (Matcher, _auto_pads, _channel_constant, _clean, _const_is, _name_source, _need_map_input,
                      _np, _pads4, _weight, compact_pair, compact_sides)
from .reader import ONode, refuse


def match_conv(m: Matcher, node: ONode) -> None:
    x = m.data_input(node)
    _need_map_input(m, node, "Conv over a 4-D [batch, C, H, W] input")
    w = _weight(m, node, 1, "weight")
    if w is None or w.ndim != 4:
        raise refuse(m.source, node, "is not a 2-D convolution", "Conv with a 4-D weight [F, C/groups, kh, kw]")
    b = _weight(m, node, 2, "bias")
    args = _conv_args(m, node, w, {"filters": int(w.shape[0])})
    if node.attr("group", 1) != 1:
        args["groups"] = int(node.attr("group"))
    weights = {"weight": w}
    if b is not None:
        weights["bias"] = b.reshape(-1)
    else:
        args["bias"] = False
    m.emit("conv2d", args, [x], node.outputs[0], node, weights, _name_source(m, node, 1))


def match_separable(m: Matcher, node: ONode) -> bool:
    """cnnspec's separable_conv2d as its writer (and its torch backend) lowers it: a depthwise Conv whose
    weight is ``X.depthwise.weight`` feeding only a 1x1 Conv whose weight is ``X.pointwise.weight``.
    A MobileNet's own depthwise and pointwise (other names, a batchnorm between) stay two convs."""
    dw_name, c_in = _name_source(m, node, 1), (m.sample(node.inputs[0]) or (0,))[0]
    if not dw_name or not dw_name.endswith(".depthwise.weight") or node.attr("group", 1) != c_in or c_in < 1:
        return False
    layer = dw_name[:-len(".depthwise.weight")]
    pw = m.sole_consumer(node.outputs[0], "Conv")
    if pw is None or _name_source(m, pw, 1) != f"{layer}.pointwise.weight" or pw.inputs[0] != node.outputs[0]:
        return False
    dw, w = m.const(node.inputs[1]), m.const(pw.inputs[1])
    b = _weight(m, pw, 2, "bias")
    if dw.ndim != 4 or dw.shape[1] != 1 or dw.shape[0] % c_in or w.ndim != 4 or w.shape[1:] != (dw.shape[0], 1, 1) \
            or pw.attr("group", 1) != 1 or any(_pads4(pw) or (1,)) or pw.attr("auto_pad", "NOTSET") not in ("NOTSET", "") \
            or tuple(pw.attr("strides", (1, 1))) != (1, 1) or tuple(pw.attr("dilations", (1, 1))) != (1, 1) \
            or (b is not None and (b.size != w.shape[0] or _name_source(m, pw, 2) != f"{layer}.pointwise.bias")) \
            or len(node.inputs) > 2 and node.inputs[2]:
        return False
    args = _conv_args(m, node, dw, {"filters": int(w.shape[0])})
    if dw.shape[0] != c_in:
        args["depth_multiplier"] = int(dw.shape[0] // c_in)
    weights = {"depthwise.weight": dw, "pointwise.weight": w}
    if b is not None:
        weights["pointwise.bias"] = b.reshape(-1)
    else:
        args["bias"] = False
    m.emit("separable_conv2d", args, [m.data_input(node)], pw.outputs[0], pw, weights, dw_name, nodes=(node, pw))
    return True


def _conv_args(m: Matcher, node: ONode, w, args: dict) -> dict:
    """A Conv's kernel, stride, padding and dilation as the language's arguments after ``args``."""
    kernel = tuple(node.attr("kernel_shape", w.shape[2:]))
    stride = tuple(node.attr("strides", (1, 1)))
    dilation = tuple(node.attr("dilations", (1, 1)))
    pads = _auto_pads(m, node, kernel, stride, dilation)
    if pads is None:
        raise refuse(m.source, node, "has padding this importer cannot read", "Conv with explicit 'pads'")
    args["kernel"] = compact_pair(kernel)
    if stride != (1, 1):
        args["stride"] = compact_pair(stride)
    if any(pads):
        args["padding"] = compact_sides(pads)
    if dilation != (1, 1):
        args["dilation"] = compact_pair(dilation)
    return args


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
    if node.index in m.channels_last:
        return _pointwise(m, node)
    x = _vector_input(m, node)
    w = _weight(m, node, 1, "weight")
    if w is None or w.ndim != 2:
        raise refuse(m.source, node, "is not a dense layer", "MatMul(x, W) with a constant 2-D W, then Add(bias)")
    add, bias = _bias_add(m, node, int(w.shape[1]))
    weights = {"weight": w.T}
    args = {"units": int(w.shape[1])}
    if bias is not None:
        weights["bias"] = bias.reshape(-1)
        m.emit("dense", args, [x], add.outputs[0], node, weights, _name_source(m, node, 1), nodes=(node, add))
    else:
        args["bias"] = False
        m.emit("dense", args, [x], node.outputs[0], node, weights, _name_source(m, node, 1))


def _bias_add(m: Matcher, node: ONode, units: int):
    """(the Add that alone reads a MatMul's output, its constant bias of ``units`` values), or
    (that Add or None, None) where no such bias follows."""
    add = m.sole_consumer(node.outputs[0], "Add")
    if add is None:
        return None, None
    other = [i for i in add.inputs if i != node.outputs[0]]
    bias = m.const(other[0]) if len(other) == 1 else None
    return add, (bias if bias is not None and bias.size == units else None)


def _pointwise(m: Matcher, node: ONode) -> None:
    """A Linear over channels-last pixels: a 1x1 conv2d (weight [out, in, 1, 1]); its name from its
    weight, else its bias (TorchScript renames a transposed weight)."""
    x = m.data_input(node)
    w = _weight(m, node, 1, "weight")
    if w is None or w.ndim != 2:
        raise refuse(m.source, node, "is not a per-pixel linear layer", "MatMul(x, W) with a constant 2-D W")
    add, bias = _bias_add(m, node, int(w.shape[1]))
    weights = {"weight": w.T.reshape(w.shape[1], w.shape[0], 1, 1)}
    args = {"filters": int(w.shape[1]), "kernel": 1}
    name = _name_source(m, node, 1)
    if bias is not None:
        weights["bias"] = bias.reshape(-1)
        bias_name = next(i for i in add.inputs if i != node.outputs[0])
        if not (name and "." in name and "::" not in name) and len(m.consumers.get(bias_name, ())) == 1:
            name = bias_name
        m.emit("conv2d", args, [x], add.outputs[0], node, weights, name, nodes=(node, add))
    else:
        args["bias"] = False
        m.emit("conv2d", args, [x], node.outputs[0], node, weights, name)


def _vector_input(m: Matcher, node: ONode) -> str:
    x = m.data_input(node)
    shape = m.sample(x)
    if shape is None or len(shape) != 1:
        raise refuse(m.source, node, "reads something other than a [batch, N] vector",
                     f"{node.op} after Flatten (or a Reshape to [batch, -1])")
    return x


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
    source_name = next((name for name in (_name_source(m, node, k) for k in (3, 1, 2, 4))
                        if name and not name.endswith(("/fixed_weight", "/fixed_bias"))), None)
    m.emit("batchnorm", args, [x], node.outputs[0], node, weights, source_name)


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
    if node.index in m.channels_last and shape is not None and len(shape) == 3 and node.attr("axis", -1) in (-1, 3):
        _layernorm(m, node, x, node.outputs[0], (node,))
        return
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
    if perm == [0, 2, 3, 1] and _channels_last_region(m, node, x):
        return
    raise refuse(m.source, node, f"transposes to {perm} and no later Transpose undoes it (a channels-last graph?)",
                 "channels-first (NCHW) graphs; transposes only in pairs that cancel, or around LayerNormalization; "
                 "export with NCHW input (tf2onnx: --inputs-as-nchw)")


# ops that work on each pixel alone, so a channels-last stretch of them reads channels-first as well
PER_PIXEL = {"LayerNormalization", "MatMul", "Add", "Mul", "Sub", "Div", "Relu", "Sigmoid", "Tanh", "Gelu", "Erf",
             "HardSwish", "HardSigmoid", "Clip", "LeakyRelu", "Elu", "Softplus", "Mish", "Identity", "Dropout", "Pow",
             "Softmax"}


def _channels_last_region(m: Matcher, into: ONode, x: str) -> bool:
    """Transpose [0, 2, 3, 1], per-pixel ops only, Transpose [0, 3, 1, 2] (torchvision's ConvNeXt
    block: its LayerNorm and Linear layers run channels-last): the stretch reads channels-first, a
    Linear being a 1x1 convolution. Its values' shapes become [C, H, W]; both transposes are
    aliases; the matchers know the region by :attr:`Matcher.channels_last`. False where the stretch
    mixes in anything else (nothing is changed then)."""
    region, values, stack, exits = [], {into.outputs[0]}, [into.outputs[0]], []
    seen = set()
    while stack:
        v = stack.pop()
        if v in m.outputs:
            return False
        for user in m.consumers.get(v, []):
            if user.index in seen:
                continue
            if user.op == "Transpose" and list(user.attr("perm", [])) == [0, 3, 1, 2]:
                seen.add(user.index)
                exits.append(user)
                continue
            if user.op not in PER_PIXEL or user.index in m.used:
                return False
            seen.add(user.index)
            region.append(user)
            for o in user.outputs:
                if o:
                    values.add(o)
                    stack.append(o)
    if not exits or not region:
        return False
    for n in region + exits:   # everything read inside comes from the region or is a constant
        if any(i and i not in values and m.const(i) is None for i in n.inputs):
            return False
    m.take(into, *exits)
    m.alias[into.outputs[0]] = x
    for back in exits:
        m.alias[back.outputs[0]] = back.inputs[0]
    for v in values:
        shape = m.source.shapes.get(v)
        if shape is not None and len(shape) == 4:
            n, h, w, c = shape
            m.source.shapes[v] = (n, c, h, w)
    m.channels_last.update(n.index for n in region)
    return True


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
