"""The ONNX target's lowering table: one entry per op, each turning a checked node into ONNX nodes.

Framework-free: it reads the frozen IR (attributes normalised, shapes, resolved pads) and names
values; :mod:`cnnspec.onnx_writer` assembles the graph and serialises it. A lowering receives an
:class:`Emitter`, the node, its input value names and the value name its output must carry, and
returns nothing; an op that computes nothing at inference is :data:`ALIAS` (its output is its input).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .errors import LoweringMissing
from .ir import Node
from .ops import activation_defaults

ALIAS = "alias"  # the op computes nothing at inference: its value is its input's


@dataclass
class Emitter:
    """Collects ONNX nodes, initializers and every value's shape (without the batch), in order."""

    nodes: list = field(default_factory=list)
    initializers: list = field(default_factory=list)   # (name, float32 numpy array)
    shapes: dict = field(default_factory=dict)         # value name -> shape without batch
    weights: dict = field(default_factory=dict)        # neutral weight key -> array

    def node(self, op_type: str, inputs, output: str, name: str, shape, **attrs) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op_type, list(inputs), [output], name=name, **attrs))
        self.shapes[output] = tuple(shape)
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


ACTIVATIONS: dict[str, Callable] = {
    "relu": lambda e, x, out, name, shape, attrs: e.node("Relu", [x], out, name, shape),
    "relu6": lambda e, x, out, name, shape, attrs: _clip(e, x, out, name, shape, 0.0, 6.0),
    "sigmoid": lambda e, x, out, name, shape, attrs: e.node("Sigmoid", [x], out, name, shape),
    "tanh": lambda e, x, out, name, shape, attrs: e.node("Tanh", [x], out, name, shape),
    "softmax": lambda e, x, out, name, shape, attrs: e.node("Softmax", [x], out, name, shape, axis=1),
    "leaky_relu": lambda e, x, out, name, shape, attrs: e.node("LeakyRelu", [x], out, name, shape,
                                                               alpha=float(attrs["slope"])),
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

def lower_conv2d(e: Emitter, node: Node, ins, out) -> None:
    a = node.attrs
    inputs = [ins[0], e.weight(f"{node.name}.weight")] + ([e.weight(f"{node.name}.bias")] if a["bias"] else [])
    target = _fused(node, out)
    e.node("Conv", inputs, target, node.name, node.shape, kernel_shape=list(a["kernel"]),
           strides=list(a["stride"]), pads=onnx_pads(node.pads), dilations=list(a["dilation"]), group=a["groups"])
    if target != out:
        _then_activation(e, node, target, out)


def lower_conv2d_transpose(e: Emitter, node: Node, ins, out) -> None:
    # node.pads are the crop (ONNX's ConvTranspose pads); the neutral weight is ONNX's [C_in, filters, kh, kw]
    a = node.attrs
    inputs = [ins[0], e.weight(f"{node.name}.weight")] + ([e.weight(f"{node.name}.bias")] if a["bias"] else [])
    target = _fused(node, out)
    e.node("ConvTranspose", inputs, target, node.name, node.shape, kernel_shape=list(a["kernel"]),
           strides=list(a["stride"]), pads=onnx_pads(node.pads), output_padding=list(a["output_padding"]))
    if target != out:
        _then_activation(e, node, target, out)


def lower_dense(e: Emitter, node: Node, ins, out) -> None:
    a = node.attrs
    inputs = [ins[0], e.weight(f"{node.name}.weight")] + ([e.weight(f"{node.name}.bias")] if a["bias"] else [])
    target = _fused(node, out)
    e.node("Gemm", inputs, target, node.name, node.shape, transB=1)
    if target != out:
        _then_activation(e, node, target, out)


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


def lower_global_avgpool2d(e: Emitter, node: Node, ins, out) -> None:
    pooled = e.node("GlobalAveragePool", ins, f"{node.name}/pooled", node.name, node.shape + (1, 1))
    e.node("Flatten", [pooled], out, f"{node.name}/flatten", node.shape, axis=1)


def lower_batchnorm(e: Emitter, node: Node, ins, out) -> None:
    parts = [e.weight(f"{node.name}.{p}") for p in ("weight", "bias", "running_mean", "running_var")]
    e.node("BatchNormalization", [ins[0], *parts], out, node.name, node.shape, epsilon=float(node.attrs["eps"]))


def lower_flatten(e: Emitter, node: Node, ins, out) -> None:
    e.node("Flatten", ins, out, node.name, node.shape, axis=1)  # NCHW: channel, row, column order


def lower_activation(op: str):
    def lower(e: Emitter, node: Node, ins, out) -> None:
        ACTIVATIONS[op](e, ins[0], out, node.name, node.shape, node.attrs)
    lower.__name__ = f"lower_{op}"
    return lower


def lower_add(e: Emitter, node: Node, ins, out) -> None:
    """A chain of Adds, left to right, as every framework sums (same rounding)."""
    acc = ins[0]
    for k, other in enumerate(ins[1:], 1):
        target = out if k == len(ins) - 1 else f"{node.name}/sum{k}"
        acc = e.node("Add", [acc, other], target, node.name if target == out else f"{node.name}/add{k}", node.shape)


def lower_concat(e: Emitter, node: Node, ins, out) -> None:
    e.node("Concat", ins, out, node.name, node.shape, axis=1)  # channels for maps, features for vectors


LOWERINGS: dict[str, Callable | str] = {
    "conv2d": lower_conv2d,
    "conv2d_transpose": lower_conv2d_transpose,
    "dense": lower_dense,
    "maxpool2d": lower_maxpool2d,
    "avgpool2d": lower_avgpool2d,
    "zeropad2d": lower_zeropad2d,
    "crop2d": lower_crop2d,
    "upsample2d": lower_upsample2d,
    "global_avgpool2d": lower_global_avgpool2d,
    "batchnorm": lower_batchnorm,
    "dropout": ALIAS,
    "flatten": lower_flatten,
    **{op: lower_activation(op) for op in ACTIVATIONS},
    "add": lower_add,
    "concat": lower_concat,
}


def lowering(op: str, layer: str | None = None):
    """The table's entry for ``op``; a missing one is :class:`LoweringMissing` naming op and target."""
    try:
        return LOWERINGS[op]
    except KeyError:
        raise LoweringMissing(op, "onnx", layer) from None
