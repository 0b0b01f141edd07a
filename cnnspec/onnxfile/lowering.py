"""The ONNX target's lowering table: one entry per op, each turning a checked node into ONNX nodes.

Framework-free: it reads the frozen IR (attributes normalised, shapes, resolved pads) and names
values; :mod:`cnnspec.onnxfile.writer` assembles the graph and serialises it. A lowering receives an
:class:`Emitter`, the node, its input value names and the value name its output must carry, and
returns nothing; an op that computes nothing at inference is :data:`ALIAS` (its output is its input).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from ..errors import LoweringMissing
from ..graph.ir import Node
from ..graph.ops import activation_defaults

ALIAS = "alias"  # the op computes nothing at inference: its value is its input's


@dataclass
class Emitter:
    """Collects ONNX nodes, initializers and every value's shape (without the batch), in order."""

    nodes: list = field(default_factory=list)
    initializers: list = field(default_factory=list)   # (name, numpy array: float32, int64 for axes)
    shapes: dict = field(default_factory=dict)         # value name -> shape without batch
    weights: dict = field(default_factory=dict)        # neutral weight key -> array
    unbatched: set = field(default_factory=set)        # values computed from weights alone: no batch axis

    def node(self, op_type: str, inputs, output: str, name: str, shape, batched: bool = True, **attrs) -> str:
        """``batched=False``: the value has no batch axis (a weight reshaped), ``shape`` is its whole shape."""
        from onnx import helper

        self.nodes.append(helper.make_node(op_type, list(inputs), [output], name=name, **attrs))
        self.shapes[output] = tuple(shape)
        if not batched:
            self.unbatched.add(output)
        return output

    def weight(self, key: str) -> str:
        """A neutral weight as an initializer named by its key (``layer1.0.conv1.weight``)."""
        self.initializers.append((key, self.weights[key]))
        return key

    def constant(self, name: str, values, dtype: str = "float32") -> str:
        """A helper initializer: float32, or int64 for the index inputs of Pad and Slice."""
        import numpy as np

        self.initializers.append((name, np.asarray(values, dtype=dtype)))
        return name


def onnx_pads(pads) -> list[int]:
    """cnnspec's (top, bottom, left, right) as ONNX's [top, left, bottom, right]."""
    top, bottom, left, right = pads
    return [top, left, bottom, right]


# ---- activations: one table, used by the activation ops and by fused ``activation`` ----

def _clip(e: Emitter, x, out, name, shape, low, high):
    return e.node("Clip", [x, e.constant(f"{name}/min", low), e.constant(f"{name}/max", high)], out, name, shape)


def _step(e: Emitter, op_type: str, x, name, shape):
    """One helper node of an activation, its value named ``<name>/<op, lower case>``."""
    value = f"{name}/{op_type.lower()}"
    return e.node(op_type, [x], value, value, shape)


def _times_x(e: Emitter, x, out, name, shape, factor):
    """x * factor(x): silu, mish and gelu end so."""
    return e.node("Mul", [x, factor], out, name, shape)


def _gelu(e: Emitter, x, out, name, shape, approximate: str):
    """x * Phi(x) from opset-17 ops (Gelu itself is opset 20): 0.5 * (1 + erf(x / sqrt(2))), or for
    'tanh' 0.5 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3))), PyTorch's formulas."""
    def step(op, inputs, what):
        return e.node(op, inputs, f"{name}/{what}", f"{name}/{what}", shape)

    if approximate == "tanh":
        cube = step("Mul", [step("Mul", [x, x], "square"), x], "cube")
        inner = step("Add", [x, step("Mul", [cube, e.constant(f"{name}/k", 0.044715)], "k_cube")], "inner")
        core = step("Tanh", [step("Mul", [inner, e.constant(f"{name}/sqrt_2_over_pi", math.sqrt(2.0 / math.pi))],
                                  "scaled")], "tanh")
    else:
        core = step("Erf", [step("Div", [x, e.constant(f"{name}/sqrt2", math.sqrt(2.0))], "scaled")], "erf")
    one_plus = step("Add", [core, e.constant(f"{name}/one", 1.0)], "one_plus")
    phi = step("Mul", [one_plus, e.constant(f"{name}/half", 0.5)], "phi")
    return _times_x(e, x, out, name, shape, phi)


ACTIVATIONS: dict[str, Callable] = {
    "relu": lambda e, x, out, name, shape, attrs: e.node("Relu", [x], out, name, shape),
    "relu6": lambda e, x, out, name, shape, attrs: _clip(e, x, out, name, shape, 0.0, 6.0),
    "sigmoid": lambda e, x, out, name, shape, attrs: e.node("Sigmoid", [x], out, name, shape),
    "tanh": lambda e, x, out, name, shape, attrs: e.node("Tanh", [x], out, name, shape),
    "softmax": lambda e, x, out, name, shape, attrs: e.node("Softmax", [x], out, name, shape, axis=1),
    "leaky_relu": lambda e, x, out, name, shape, attrs: e.node("LeakyRelu", [x], out, name, shape,
                                                               alpha=float(attrs["slope"])),
    "silu": lambda e, x, out, name, shape, attrs: _times_x(e, x, out, name, shape, _step(e, "Sigmoid", x, name, shape)),
    # max(0, min(1, x/6 + 1/2)): min(max(x + 3, 0), 6) / 6
    "hard_sigmoid": lambda e, x, out, name, shape, attrs: e.node("HardSigmoid", [x], out, name, shape,
                                                                 alpha=1.0 / 6.0, beta=0.5),
    "hard_swish": lambda e, x, out, name, shape, attrs: e.node("HardSwish", [x], out, name, shape),  # opset 14
    "gelu": lambda e, x, out, name, shape, attrs: _gelu(e, x, out, name, shape, attrs["approximate"]),
    "elu": lambda e, x, out, name, shape, attrs: e.node("Elu", [x], out, name, shape, alpha=float(attrs["alpha"])),
    "mish": lambda e, x, out, name, shape, attrs: _times_x(
        e, x, out, name, shape, _step(e, "Tanh", _step(e, "Softplus", x, name, shape), name, shape)),
}


def _then_activation(e: Emitter, node: Node, pre: str, out: str) -> None:
    """The node's own computation wrote ``pre``; a fused activation takes it to ``out``."""
    act = node.attrs.get("activation")
    if act not in ACTIVATIONS:
        raise LoweringMissing(f"activation {act}", "onnx", node.name)
    ACTIVATIONS[act](e, pre, out, f"{node.name}/{act}", node.shape, activation_defaults(act))


def _fused(node: Node, out: str) -> str:
    return f"{node.name}/pre_activation" if node.attrs.get("activation") else out


# ---- ops ----

def _weighted(e: Emitter, node: Node, ins, out, op_type: str, **attrs) -> None:
    """conv2d, conv2d_transpose and dense: the input, the weight, the bias where the layer has one,
    then the fused activation where there is one."""
    parts = ("weight", "bias") if node.attrs["bias"] else ("weight",)
    target = _fused(node, out)
    e.node(op_type, [ins[0], *(e.weight(f"{node.name}.{p}") for p in parts)], target, node.name, node.shape, **attrs)
    if target != out:
        _then_activation(e, node, target, out)


def lower_conv2d(e: Emitter, node: Node, ins, out) -> None:
    a = node.attrs
    _weighted(e, node, ins, out, "Conv", kernel_shape=list(a["kernel"]), strides=list(a["stride"]),
              pads=onnx_pads(node.pads), dilations=list(a["dilation"]), group=a["groups"])


def lower_separable_conv2d(e: Emitter, node: Node, ins, out) -> None:
    """Two Conv nodes: the depthwise (group = input channels, no bias) into ``<layer>/depthwise``, then
    the 1x1 with the bias, then the fused activation."""
    a = node.attrs
    c_in = e.shapes[ins[0]][0]
    middle = c_in * a["depth_multiplier"]
    _, h, w = node.shape
    depthwise = e.node("Conv", [ins[0], e.weight(f"{node.name}.depthwise.weight")], f"{node.name}/depthwise",
                       f"{node.name}/depthwise", (middle, h, w), kernel_shape=list(a["kernel"]),
                       strides=list(a["stride"]), pads=onnx_pads(node.pads), dilations=list(a["dilation"]), group=c_in)
    parts = ("pointwise.weight", "pointwise.bias") if a["bias"] else ("pointwise.weight",)
    target = _fused(node, out)
    e.node("Conv", [depthwise, *(e.weight(f"{node.name}.{p}") for p in parts)], target, node.name, node.shape,
           kernel_shape=[1, 1])
    if target != out:
        _then_activation(e, node, target, out)


def lower_conv2d_transpose(e: Emitter, node: Node, ins, out) -> None:
    # node.pads are the crop (ONNX's ConvTranspose pads); the neutral weight is ONNX's [C_in, filters, kh, kw]
    a = node.attrs
    _weighted(e, node, ins, out, "ConvTranspose", kernel_shape=list(a["kernel"]), strides=list(a["stride"]),
              pads=onnx_pads(node.pads), output_padding=list(a["output_padding"]))


def lower_dense(e: Emitter, node: Node, ins, out) -> None:
    _weighted(e, node, ins, out, "Gemm", transB=1)


def _pool_attrs(node: Node) -> dict:
    a = node.attrs
    return dict(kernel_shape=list(a["kernel"]), strides=list(a["stride"]), pads=onnx_pads(node.pads))


def lower_maxpool2d(e: Emitter, node: Node, ins, out) -> None:
    # ONNX's MaxPool ignores padded positions (as -inf would): the contract's max padding. A ceil-mode
    # pool's pads reach its last window, so floor mode computes it: ONNX's shape inference at opset 17
    # lacks PyTorch's last-window rule, so ceil_mode=1 would declare one more row than ONNX Runtime makes.
    e.node("MaxPool", ins, out, node.name, node.shape, **_pool_attrs(node))


def lower_avgpool2d(e: Emitter, node: Node, ins, out) -> None:
    # explicit padding counts its zeros (PyTorch's default); `same` excludes them (TensorFlow's)
    count = 0 if node.attrs["padding"] == "same" else 1
    e.node("AveragePool", ins, out, node.name, node.shape, count_include_pad=count, **_pool_attrs(node))


def _nchw_sides(name: str, e: Emitter, pads) -> str:
    """(top, bottom, left, right) as ONNX Pad's int64 [begin N, C, H, W, end N, C, H, W]."""
    top, bottom, left, right = pads
    return e.constant(name, [0, 0, top, left, 0, 0, bottom, right], "int64")


def lower_zeropad2d(e: Emitter, node: Node, ins, out) -> None:
    pads = _nchw_sides(f"{node.name}/pads", e, node.pads)
    value = e.constant(f"{node.name}/value", float(node.attrs["value"]))
    e.node("Pad", [ins[0], pads, value], out, node.name, node.shape, mode="constant")


def lower_crop2d(e: Emitter, node: Node, ins, out) -> None:
    top, _, left, _ = node.pads
    _, h, w = node.shape
    starts = e.constant(f"{node.name}/starts", [top, left], "int64")
    ends = e.constant(f"{node.name}/ends", [top + h, left + w], "int64")
    axes = e.constant(f"{node.name}/axes", [2, 3], "int64")
    e.node("Slice", [ins[0], starts, ends, axes], out, node.name, node.shape)


# upsample2d: nearest repeats each pixel (source = floor(destination / scale)); bilinear samples at
# half-pixel centres, clamped at the borders (PyTorch's align_corners=False, TensorFlow's resize)
RESIZE_MODES = {
    "nearest": dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
    "bilinear": dict(mode="linear", coordinate_transformation_mode="half_pixel"),
}


def lower_upsample2d(e: Emitter, node: Node, ins, out) -> None:
    sh, sw = node.attrs["scale"]
    scales = e.constant(f"{node.name}/scales", [1.0, 1.0, float(sh), float(sw)])
    e.node("Resize", [ins[0], "", scales], out, node.name, node.shape, **RESIZE_MODES[node.attrs["mode"]])


def _global_pool(onnx_op: str):
    """GlobalAveragePool / GlobalMaxPool give [N, C, 1, 1]: the output as it is with ``keepdims``, else
    flattened to [N, C]."""
    def lower(e: Emitter, node: Node, ins, out) -> None:
        if node.attrs.get("keepdims"):
            e.node(onnx_op, ins, out, node.name, node.shape)
            return
        pooled = e.node(onnx_op, ins, f"{node.name}/pooled", node.name, node.shape + (1, 1))
        e.node("Flatten", [pooled], out, f"{node.name}/flatten", node.shape, axis=1)
    return lower


lower_global_avgpool2d = _global_pool("GlobalAveragePool")
lower_global_maxpool2d = _global_pool("GlobalMaxPool")


# batchnorm parts that `scale: false` / `center: false` fix: (the switch, the constant)
FIXED_BATCHNORM_PARTS = {"weight": ("scale", 1.0), "bias": ("center", 0.0)}


def lower_batchnorm(e: Emitter, node: Node, ins, out) -> None:
    """ONNX's BatchNormalization takes a scale and a bias: a part that is not learned is a constant
    (1 or 0) named ``<layer>/fixed_<part>``, not a weight."""
    def part(p):
        switch, value = FIXED_BATCHNORM_PARTS.get(p, (None, None))
        if switch is None or node.attrs[switch]:
            return e.weight(f"{node.name}.{p}")
        return e.constant(f"{node.name}/fixed_{p}", [value] * node.shape[0])

    parts = [part(p) for p in ("weight", "bias", "running_mean", "running_var")]
    e.node("BatchNormalization", [ins[0], *parts], out, node.name, node.shape, epsilon=float(node.attrs["eps"]))


def lower_layernorm(e: Emitter, node: Node, ins, out) -> None:
    """LayerNormalization over the last axis: a map goes channels-last, is normalised at each pixel,
    and comes back."""
    weights = [e.weight(f"{node.name}.weight"), e.weight(f"{node.name}.bias")]
    eps = float(node.attrs["eps"])
    if len(node.shape) == 1:
        e.node("LayerNormalization", [ins[0], *weights], out, node.name, node.shape, axis=-1, epsilon=eps)
        return
    c, h, w = node.shape
    last = e.node("Transpose", ins, f"{node.name}/channels_last", f"{node.name}/to_channels_last", (h, w, c),
                  perm=[0, 2, 3, 1])
    normed = e.node("LayerNormalization", [last, *weights], f"{node.name}/normalized", node.name, (h, w, c),
                    axis=-1, epsilon=eps)
    e.node("Transpose", [normed], out, f"{node.name}/to_channels_first", node.shape, perm=[0, 3, 1, 2])


def _per_channel(node: Node, values):
    """One number per channel, shaped to broadcast over [N, C, H, W] ([C, 1, 1]) or [N, C] ([C])."""
    import numpy as np

    channels = node.shape[0]
    column = np.broadcast_to(np.asarray(values, dtype=np.float32), (channels,))
    return column.reshape((channels,) + (1,) * (len(node.shape) - 1))


def lower_normalize(e: Emitter, node: Node, ins, out) -> None:
    a = node.attrs
    centered = e.node("Sub", [ins[0], e.constant(f"{node.name}/mean", _per_channel(node, a["mean"]))],
                      f"{node.name}/centered", f"{node.name}/sub", node.shape)
    e.node("Div", [centered, e.constant(f"{node.name}/std", _per_channel(node, a["std"]))], out, node.name, node.shape)


def lower_flatten(e: Emitter, node: Node, ins, out) -> None:
    e.node("Flatten", ins, out, node.name, node.shape, axis=1)  # NCHW: channel, row, column order


def lower_activation(op: str):
    def lower(e: Emitter, node: Node, ins, out) -> None:
        ACTIVATIONS[op](e, ins[0], out, node.name, node.shape, node.attrs)
    lower.__name__ = f"lower_{op}"
    return lower


def _as_maps(e: Emitter, node: Node, ins) -> tuple[list, list]:
    """Inputs and their shapes, a [N, C] vector beside maps unsqueezed to [N, C, 1, 1] (Unsqueeze axes
    [2, 3]), so it broadcasts over height and width."""
    shapes = [e.shapes[x] for x in ins]
    if len(node.shape) != 3 or all(len(s) == 3 for s in shapes):
        return list(ins), shapes
    axes = e.constant(f"{node.name}/map_axes", [2, 3], dtype="int64")
    out, out_shapes = [], []
    for k, (x, shape) in enumerate(zip(ins, shapes)):
        if len(shape) == 1:
            shape = (shape[0], 1, 1)
            x = e.node("Unsqueeze", [x, axes], f"{node.name}/in{k}_as_map", f"{node.name}/unsqueeze{k}", shape)
        out.append(x)
        out_shapes.append(shape)
    return out, out_shapes


def _chain(op_type: str, what: str):
    """A chain of ``op_type`` nodes, left to right, as every framework computes it (same rounding)."""
    def lower(e: Emitter, node: Node, ins, out) -> None:
        maps = [len(e.shapes[x]) == 3 for x in ins]
        values, shapes = _as_maps(e, node, ins)
        acc = values[0]
        for k, other in enumerate(values[1:], 1):
            last = k == len(values) - 1
            shape = node.shape if any(maps[:k + 1]) else shapes[0]  # [C, 1, 1] while only vectors so far
            target = out if last else f"{node.name}/{what}{k}"
            acc = e.node(op_type, [acc, other], target, node.name if last else f"{node.name}/{op_type.lower()}{k}",
                         shape)
    lower.__name__ = f"lower_{op_type.lower()}"
    return lower


lower_add = _chain("Add", "sum")
lower_multiply = _chain("Mul", "product")


def lower_scale(e: Emitter, node: Node, ins, out) -> None:
    """x times the per-channel weight, which a map needs as [C, 1, 1] (a value without a batch axis)."""
    weight = e.weight(f"{node.name}.weight")
    if len(node.shape) == 3:
        axes = e.constant(f"{node.name}/map_axes", [1, 2], dtype="int64")
        weight = e.node("Unsqueeze", [weight, axes], f"{node.name}/weight_as_map", f"{node.name}/unsqueeze",
                        (node.shape[0], 1, 1), batched=False)
    e.node("Mul", [ins[0], weight], out, node.name, node.shape)


def lower_reshape(e: Emitter, node: Node, ins, out) -> None:
    # 0 keeps the input's batch dimension (and its symbol for shape inference); the rest is resolved
    shape = e.constant(f"{node.name}/shape", [0, *node.shape], "int64")
    e.node("Reshape", [ins[0], shape], out, node.name, node.shape)


def lower_concat(e: Emitter, node: Node, ins, out) -> None:
    e.node("Concat", ins, out, node.name, node.shape, axis=1)  # channels for maps, features for vectors


LOWERINGS: dict[str, Callable | str] = {
    "conv2d": lower_conv2d,
    "separable_conv2d": lower_separable_conv2d,
    "reshape": lower_reshape,
    "conv2d_transpose": lower_conv2d_transpose,
    "dense": lower_dense,
    "maxpool2d": lower_maxpool2d,
    "avgpool2d": lower_avgpool2d,
    "zeropad2d": lower_zeropad2d,
    "crop2d": lower_crop2d,
    "upsample2d": lower_upsample2d,
    "global_avgpool2d": lower_global_avgpool2d,
    "global_maxpool2d": lower_global_maxpool2d,
    "batchnorm": lower_batchnorm,
    "layernorm": lower_layernorm,
    "normalize": lower_normalize,
    "dropout": ALIAS,
    "flatten": lower_flatten,
    **{op: lower_activation(op) for op in ACTIVATIONS},
    "add": lower_add,
    "multiply": lower_multiply,
    "scale": lower_scale,
    "concat": lower_concat,
}


def lowering(op: str, layer: str | None = None):
    """The table's entry for ``op``; a missing one is :class:`LoweringMissing` naming op and target."""
    try:
        return LOWERINGS[op]
    except KeyError:
        raise LoweringMissing(op, "onnx", layer) from None
