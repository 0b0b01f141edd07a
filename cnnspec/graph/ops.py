"""The op table: everything framework-free about an op, in one place.

Each :class:`OpDef` holds its arguments (as JSON Schema, with how each normalises), its shape
rule, its weight parts and their shapes, how many inputs it takes and whether it computes anything
at inference. The activations are one registry (:data:`ACTIVATIONS`), from which the
``activation`` enum, the activation ops and every fused activation's default arguments come.
One table, not an if-chain: the schema, the checker, the weights code and every target read it;
``tests/test_lowering_complete.py`` fails for an op some target cannot lower.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..errors import plural
from .shapes import SideSize, output_size, standardize_pair, transpose_output_size

POS_INT = {"type": "integer", "minimum": 1, "maximum": 1_000_000}
NONNEG_INT = {"type": "integer", "minimum": 0, "maximum": 1_000_000}
SIZE = {"anyOf": [POS_INT, {"type": "array", "items": POS_INT, "minItems": 2, "maxItems": 2}],
        "description": "a positive integer or a pair [height, width]"}
NONNEG_PAIR = {"type": "array", "items": NONNEG_INT, "minItems": 2, "maxItems": 2}
FOUR_SIDES = {"type": "array", "items": NONNEG_INT, "minItems": 4, "maxItems": 4}
PADDING = {"anyOf": [NONNEG_INT, NONNEG_PAIR, FOUR_SIDES, {"enum": ["same", "valid"]}],
           "description": "zero or more, a pair [height, width], four numbers [top, bottom, left, right], "
                          "'same' or 'valid'"}
# zeropad2d's padding, crop2d's cropping: explicit amounts only
AMOUNTS = {"anyOf": [NONNEG_INT, NONNEG_PAIR, FOUR_SIDES],
           "description": "zero or more, a pair [height, width] or four numbers [top, bottom, left, right]"}
OUTPUT_PADDING = {"anyOf": [NONNEG_INT, NONNEG_PAIR], "description": "zero or more or a pair [height, width]"}


@dataclass(frozen=True)
class Arg:
    """One argument. ``kind`` says how a valid value normalises (see :data:`NORMALIZERS`): ``value``
    as written, ``pair`` a size or [height, width] as (h, w), ``sides`` also four numbers as
    (top, bottom, left, right); 'same' and 'valid' pass through. ``default_from`` names the
    argument whose value an omitted one takes (a pool's stride is its kernel)."""

    schema: dict
    default: object = None
    required: bool = False
    doc: str = ""
    kind: str = "value"
    default_from: str | None = None


def _as_pair(value, name):
    return value if value is None or isinstance(value, str) else standardize_pair(value, name)


def _as_sides(value, name):
    """Four numbers stay four (top, bottom, left, right); one or two are a pair, as for ``pair``."""
    if isinstance(value, (list, tuple)) and len(value) == 4:
        return tuple(value)
    return _as_pair(value, name)


def _as_numbers(value, name):
    """A number stays one number (for every channel); a list of them becomes a tuple, one per channel."""
    if isinstance(value, (list, tuple)):
        return tuple(float(v) for v in value)
    return None if value is None else float(value)


def _as_activation(value, name):
    """An activation's other spelling (``swish``) as its registry name (``silu``): the IR holds one name."""
    return ACTIVATION_ALIASES.get(value, value)


NORMALIZERS: dict[str, Callable] = {
    "value": lambda value, name: value,
    "pair": _as_pair,
    "sides": _as_sides,
    "numbers": _as_numbers,
    "activation": _as_activation,
}


@dataclass(frozen=True)
class Activation:
    """An activation function: an op of its own and a value of ``activation`` on conv2d and dense,
    where it takes its arguments' defaults. ``aliases`` are other spellings a spec may use (the
    contract's ``swish``); they are read as this name, so no target sees them."""

    doc: str
    args: dict = field(default_factory=dict)
    primary: str | None = None
    aliases: tuple[str, ...] = ()

    @property
    def defaults(self) -> dict:
        return {key: arg.default for key, arg in self.args.items()}


SLOPE = {"type": "number", "minimum": 0, "maximum": 1}
ALPHA = {"type": "number", "minimum": 0, "maximum": 1000}

# name -> definition; every target's activation table is checked against this one
ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation("max(x, 0)"),
    "relu6": Activation("min(max(x, 0), 6)"),
    "sigmoid": Activation("1 / (1 + exp(-x))"),
    "tanh": Activation("tanh(x)"),
    "softmax": Activation("over channels for [C, H, W], over features for [N]"),
    "leaky_relu": Activation("x if x > 0 else slope * x", {"slope": Arg(SLOPE, 0.01)}, primary="slope"),
    "silu": Activation("x * sigmoid(x); also spelled swish", aliases=("swish",)),
    "hard_sigmoid": Activation("min(max(x + 3, 0), 6) / 6"),
    "hard_swish": Activation("x * hard_sigmoid(x)"),
    "gelu": Activation("x * Phi(x), Phi the normal CDF (erf)", {
        "approximate": Arg({"enum": ["none", "tanh"]}, "none", doc="'tanh': the tanh formula for Phi"),
    }, primary="approximate"),
    "elu": Activation("x if x > 0 else alpha * (exp(x) - 1)", {"alpha": Arg(ALPHA, 1.0)}, primary="alpha"),
    "mish": Activation("x * tanh(softplus(x))"),
}
# another spelling -> the registry's name
ACTIVATION_ALIASES: dict[str, str] = {alias: name for name, act in ACTIVATIONS.items() for alias in act.aliases}

ACTIVATION = {"enum": [n for name, act in ACTIVATIONS.items() for n in (name, *act.aliases)] + [None],
              "description": "applied after the layer"}


@dataclass(frozen=True)
class Inferred:
    shape: tuple
    pads: tuple | None = None
    params: int = 0
    macs: int = 0


class ShapeProblem(Exception):
    """Raised by a shape rule; the message is shown after the layer's name."""


@dataclass(frozen=True)
class OpDef:
    """An op. ``weights(attrs, input_shapes, output_shape)`` gives its weight parts in the neutral
    layout, ordered, part -> shape (None: it holds none); ``inference_identity`` marks an op that
    computes nothing at inference (its output is its input there), so exports drop it."""

    name: str
    doc: str
    args: dict = field(default_factory=dict)
    primary: str | None = None
    infer: Callable | None = None
    min_inputs: int = 1
    max_inputs: int | None = 1
    weights: Callable | None = None
    inference_identity: bool = False

    @property
    def has_weights(self) -> bool:
        return self.weights is not None

    def normalize(self, raw: dict) -> dict:
        """Fill defaults and normalise each argument by its kind; the schema has already checked types."""
        attrs = {key: NORMALIZERS[arg.kind](raw.get(key, arg.default), key) for key, arg in self.args.items()}
        for key, arg in self.args.items():
            if attrs[key] is None and arg.default_from:
                attrs[key] = attrs[arg.default_from]
        return attrs

    def weight_shapes(self, attrs, input_shapes, output_shape) -> dict:
        """Part -> shape, in order; empty for an op without weights."""
        return dict(self.weights(attrs, input_shapes, output_shape)) if self.weights else {}


def fmt_shape(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def _need_map(op_name, shape):
    if len(shape) != 3:
        hint = "; a 1-D vector has no height and width (was there a 'flatten' too early?)" if len(shape) == 1 else ""
        raise ShapeProblem(f"needs a [C, H, W] input but gets {fmt_shape(shape)}{hint}")


def four_sides(value) -> tuple[int, int, int, int]:
    """A normalised amount (a pair, or four numbers) as (top, bottom, left, right)."""
    if len(value) == 4:
        return tuple(value)
    h, w = value
    return (h, h, w, w)


def _axis_padding(pad):
    """'same' or 'valid' for both axes, else each axis' (before, after)."""
    if isinstance(pad, str):
        return pad, pad
    top, bottom, left, right = four_sides(pad)
    return (top, bottom), (left, right)


def _kernel_text(kernel) -> str:
    kh, kw = kernel
    return f"{kh}" if kh == kw else f"{kh}x{kw}"


def _window_sides(attrs, shape, what="kernel", dilation=(1, 1)) -> tuple[SideSize, SideSize]:
    """Both sides through the shared output-size function; explains a side that comes out < 1."""
    _, h, w = shape
    kh, kw = attrs["kernel"]
    sh, sw = attrs["stride"]
    ph, pw = _axis_padding(attrs["padding"])
    ceil = attrs.get("ceil", False)
    top = output_size(h, kh, sh, ph, dilation[0], ceil)
    left = output_size(w, kw, sw, pw, dilation[1], ceil)
    for side in (top, left):
        if side.size < 1:
            raise ShapeProblem(f"{what} {_kernel_text(attrs['kernel'])} does not fit its {h}x{w} input: "
                               f"{side.arithmetic}")
    return top, left


def _pads(top: SideSize, left: SideSize) -> tuple[int, int, int, int]:
    return (top.pad_before, top.pad_after, left.pad_before, left.pad_after)


def _window(attrs, shape, what="kernel", dilation=(1, 1)):
    top, left = _window_sides(attrs, shape, what, dilation)
    return (top.size, left.size), _pads(top, left)


def written_padding(attrs) -> tuple[int, int, int, int]:
    """Explicit padding as written, (top, bottom, left, right) ('valid': none). A ceil-mode pool's
    ``node.pads`` reach further (to its last window); PyTorch's own ``ceil_mode`` takes these."""
    pad = attrs["padding"]
    return (0, 0, 0, 0) if pad == "valid" else four_sides(pad)


def infer_conv2d(attrs, shapes):
    (shape,) = shapes
    _need_map("conv2d", shape)
    c_in = shape[0]
    groups, filters = attrs["groups"], attrs["filters"]
    if c_in % groups:
        raise ShapeProblem(f"groups={groups} must divide the {c_in} input channels")
    if filters % groups:
        raise ShapeProblem(f"groups={groups} must divide filters={filters}")
    (h2, w2), pads = _window(attrs, shape, "kernel", attrs["dilation"])
    kh, kw = attrs["kernel"]
    per_filter = (c_in // groups) * kh * kw
    params = filters * per_filter + (filters if attrs["bias"] else 0)
    return Inferred((filters, h2, w2), pads, params, filters * h2 * w2 * per_filter)


def infer_separable_conv2d(attrs, shapes):
    """Keras' SeparableConv2D: a depthwise convolution (``depth_multiplier`` filters per input channel)
    then a 1x1 convolution to ``filters``; the bias, where there is one, is the 1x1's alone."""
    (shape,) = shapes
    _need_map("separable_conv2d", shape)
    c_in, filters = shape[0], attrs["filters"]
    middle = c_in * attrs["depth_multiplier"]
    (h2, w2), pads = _window(attrs, shape, "kernel", attrs["dilation"])
    kh, kw = attrs["kernel"]
    params = middle * kh * kw + middle * filters + (filters if attrs["bias"] else 0)
    macs = middle * h2 * w2 * kh * kw + filters * h2 * w2 * middle
    return Inferred((filters, h2, w2), pads, params, macs)


SIDE_NAMES = {2: ("height", "height", "width", "width"), 4: ("top", "bottom", "left", "right")}


def infer_pool(attrs, shapes):
    (shape,) = shapes
    _need_map("pool", shape)
    pad = attrs["padding"]
    if attrs.get("ceil") and pad == "same":
        raise ShapeProblem("'ceil: true' needs explicit or 'valid' padding, got 'same' "
                           "(which already rounds up: W2 = ceil(W1/S))")
    if not isinstance(pad, str):
        kh, kw = attrs["kernel"]
        for p, k, side in zip(four_sides(pad), (kh, kh, kw, kw), SIDE_NAMES[len(pad)]):
            if 2 * p > k:
                raise ShapeProblem(f"padding {p} is more than half the kernel {k} ({side}); "
                                   f"a window would see only padding")
    top, left = _window_sides(attrs, shape, "pool window")
    # a ceil-mode pool is a floor-mode one whose bottom and right -inf padding reaches its last window
    pads = (top.pad_before, top.window_pad_after, left.pad_before, left.window_pad_after)
    return Inferred((shape[0], top.size, left.size), pads)


def infer_conv2d_transpose(attrs, shapes):
    """The full transposed convolution, then its padding cropped. Refused where PyTorch or TensorFlow
    would refuse or disagree: output_padding of a stride or more, or with 'same'; 'same' with F < S."""
    (shape,) = shapes
    _need_map("conv2d_transpose", shape)
    c_in, h, w = shape
    kernel, stride, extra = attrs["kernel"], attrs["stride"], attrs["output_padding"]
    pad = attrs["padding"]
    for o, s, side in zip(extra, stride, ("height", "width")):
        if o >= s:
            raise ShapeProblem(f"output_padding must be less than the stride on each side, got {o} with "
                               f"stride {s} ({side})")
    if pad == "same":
        if any(extra):
            raise ShapeProblem(f"output_padding does not go with padding 'same', which makes W1*S; "
                               f"got output_padding {list(extra)}")
        for k, s, side in zip(kernel, stride, ("height", "width")):
            if k < s:
                raise ShapeProblem(f"padding 'same' needs a kernel at least as large as the stride, got kernel "
                                   f"{k} with stride {s} ({side}): it would crop F - S = {k} - {s} = {k - s}")
    ph, pw = _axis_padding(pad)
    top = transpose_output_size(h, kernel[0], stride[0], ph, extra[0])
    left = transpose_output_size(w, kernel[1], stride[1], pw, extra[1])
    for side in (top, left):
        if side.size < 1:
            raise ShapeProblem(f"padding crops all the transposed convolution makes of its {h}x{w} input: "
                               f"{side.arithmetic}")
    filters, (kh, kw) = attrs["filters"], kernel
    per_pixel = filters * kh * kw
    params = c_in * per_pixel + (filters if attrs["bias"] else 0)
    return Inferred((filters, top.size, left.size), _pads(top, left), params, c_in * h * w * per_pixel)


def infer_zeropad2d(attrs, shapes):
    (shape,) = shapes
    _need_map("zeropad2d", shape)
    c, h, w = shape
    top, bottom, left, right = pads = four_sides(attrs["padding"])
    return Inferred((c, h + top + bottom, w + left + right), pads)


def infer_crop2d(attrs, shapes):
    """At least one row and one column stay (Keras refuses an empty crop; PyTorch makes an empty map)."""
    (shape,) = shapes
    _need_map("crop2d", shape)
    c, h, w = shape
    top, bottom, left, right = crops = four_sides(attrs["cropping"])
    for before, after, size, what in ((top, bottom, h, "rows"), (left, right, w, "columns")):
        if size - before - after < 1:
            raise ShapeProblem(f"cropping must leave at least one pixel of its {h}x{w} input: cropping "
                               f"{before} + {after} {what} from {size} leaves {size - before - after}")
    return Inferred((c, h - top - bottom, w - left - right), crops)


def infer_upsample2d(attrs, shapes):
    (shape,) = shapes
    _need_map("upsample2d", shape)
    c, h, w = shape
    sh, sw = attrs["scale"]
    return Inferred((c, h * sh, w * sw))


def infer_global_pool(attrs, shapes):
    (shape,) = shapes
    _need_map("global pool", shape)
    return Inferred((shape[0], 1, 1) if attrs.get("keepdims") else (shape[0],))


def infer_flatten(attrs, shapes):
    (shape,) = shapes
    return Inferred((_numel(shape),))


def infer_reshape(attrs, shapes):
    """The input's values in channel, row, column order read into ``shape`` (without the batch); one
    -1 takes what the others leave. A result of three dimensions is a [C, H, W] map."""
    (shape,) = shapes
    target = list(attrs["shape"])
    total = _numel(shape)
    if len(target) == 2:
        raise ShapeProblem(f"shape {fmt_shape(target)}: a reshape makes a vector [N] or a map [C, H, W], "
                           f"not two dimensions")
    if target.count(-1) > 1:
        raise ShapeProblem(f"shape {fmt_shape(target)} has {target.count(-1)} entries of -1; at most one may be "
                           f"inferred")
    if any(v == 0 or v < -1 for v in target):
        raise ShapeProblem(f"shape {fmt_shape(target)}: each size is 1 or more, or a single -1")
    known = _numel([v for v in target if v != -1])
    if -1 in target:
        if total % known:
            raise ShapeProblem(f"the input {fmt_shape(shape)} holds {total} values, which shape {fmt_shape(target)} "
                               f"cannot take: {total} is no multiple of the other sizes' product {known}")
        target[target.index(-1)] = total // known
    elif known != total:
        raise ShapeProblem(f"the input {fmt_shape(shape)} holds {total} values, but shape {fmt_shape(target)} "
                           f"holds {known}")
    return Inferred(tuple(target))


def infer_dense(attrs, shapes):
    (shape,) = shapes
    if len(shape) != 1:
        raise ShapeProblem(f"needs a 1-D input but gets {fmt_shape(shape)}; add 'flatten' before it")
    units = attrs["units"]
    return Inferred((units,), None, shape[0] * units + (units if attrs["bias"] else 0), shape[0] * units)


def _need_channels(shape) -> int:
    """C of a [C, H, W] map or N of an [N] vector: the axis per-channel ops work along."""
    if len(shape) not in (1, 3):
        raise ShapeProblem(f"needs a [C, H, W] or 1-D input but gets {fmt_shape(shape)}")
    return shape[0]


def infer_batchnorm(attrs, shapes):
    (shape,) = shapes
    learned = int(attrs["scale"]) + int(attrs["center"])  # the running statistics are not learned
    return Inferred(tuple(shape), None, learned * _need_channels(shape))


def infer_layernorm(attrs, shapes):
    (shape,) = shapes
    return Inferred(tuple(shape), None, 2 * _need_channels(shape))


def infer_normalize(attrs, shapes):
    (shape,) = shapes
    channels = _need_channels(shape)
    unit = "channel" if len(shape) == 3 else "feature"
    for key in ("mean", "std"):
        values = attrs[key]
        if isinstance(values, tuple) and len(values) != channels:
            raise ShapeProblem(f"'{key}' needs a single number or one per {unit} ({channels}), but has "
                               f"{plural(len(values), 'number')} for an input of {fmt_shape(shape)}")
    return Inferred(tuple(shape))


def infer_scale(attrs, shapes):
    (shape,) = shapes
    return Inferred(tuple(shape), None, _need_channels(shape))


def infer_same(attrs, shapes):
    return Inferred(tuple(shapes[0]))


def infer_broadcast(attrs, shapes):
    """Equal shapes, or [C] vectors beside [C, H, W] maps of the same C: each vector is broadcast over
    height and width (squeeze-and-excite gates a map with one). The output is the map's shape."""
    maps = [tuple(s) for s in shapes if len(s) == 3]
    out = maps[0] if maps else tuple(shapes[0])
    for shape in map(tuple, shapes):
        if shape == out or (len(shape) == 1 and len(out) == 3 and shape[0] == out[0]):
            continue
        if len(shape) == 1 and len(out) == 3:
            raise ShapeProblem(f"a [C] vector is broadcast over a [C, H, W] map of the same C, but "
                               f"{fmt_shape(shape)} has {shape[0]} channels and the map {fmt_shape(out)} has {out[0]}")
        raise ShapeProblem("inputs must have equal shapes but get " + ", ".join(fmt_shape(s) for s in shapes))
    return Inferred(out)


def infer_concat(attrs, shapes):
    ranks = {len(s) for s in shapes}
    if len(ranks) != 1:
        raise ShapeProblem("inputs must all be feature maps or all vectors but get " + ", ".join(fmt_shape(s) for s in shapes))
    if ranks == {3} and len({tuple(s[1:]) for s in shapes}) != 1:
        raise ShapeProblem("inputs must differ only in channels but get " + ", ".join(fmt_shape(s) for s in shapes))
    return Inferred((sum(s[0] for s in shapes),) + tuple(shapes[0][1:]))


# ---- weight parts, the contract's neutral layout (PyTorch's) ----

def conv2d_weights(attrs, shapes, out):
    kh, kw = attrs["kernel"]
    parts = {"weight": (attrs["filters"], shapes[0][0] // attrs["groups"], kh, kw)}
    if attrs["bias"]:
        parts["bias"] = (attrs["filters"],)
    return parts


def separable_conv2d_weights(attrs, shapes, out):
    kh, kw = attrs["kernel"]
    middle = shapes[0][0] * attrs["depth_multiplier"]
    parts = {"depthwise.weight": (middle, 1, kh, kw), "pointwise.weight": (attrs["filters"], middle, 1, 1)}
    if attrs["bias"]:
        parts["pointwise.bias"] = (attrs["filters"],)
    return parts


def conv2d_transpose_weights(attrs, shapes, out):
    kh, kw = attrs["kernel"]
    parts = {"weight": (shapes[0][0], attrs["filters"], kh, kw)}  # PyTorch's ConvTranspose2d layout
    if attrs["bias"]:
        parts["bias"] = (attrs["filters"],)
    return parts


def dense_weights(attrs, shapes, out):
    (n_in,) = shapes[0]
    parts = {"weight": (attrs["units"], n_in)}
    if attrs["bias"]:
        parts["bias"] = (attrs["units"],)
    return parts


def batchnorm_weights(attrs, shapes, out):
    """``scale: false`` / ``center: false`` hold no weight / bias (fixed at 1 / 0); the statistics stay."""
    learned = [part for part, on in (("weight", attrs["scale"]), ("bias", attrs["center"])) if on]
    return {part: (out[0],) for part in learned + ["running_mean", "running_var"]}


def layernorm_weights(attrs, shapes, out):
    return {"weight": (out[0],), "bias": (out[0],)}


def scale_weights(attrs, shapes, out):
    return {"weight": (out[0],)}


def _numbers(item: dict, what: str = "a number") -> dict:
    """One number for every channel, or a list of one per channel (the shape rule checks the count)."""
    return {"anyOf": [item, {"type": "array", "items": item, "minItems": 1, "maxItems": 1_000_000}],
            "allowed": f"{what} or a list of them, one per channel",
            "description": f"{what} for every channel, or a list of one per channel"}


_POOL_ARGS = {
    "kernel": Arg(SIZE, required=True, doc="window size", kind="pair"),
    "stride": Arg(SIZE, None, doc="defaults to the kernel", kind="pair", default_from="kernel"),
    "padding": Arg(PADDING, 0, doc="max pads with -inf; avg counts explicit zeros, excludes 'same' padding",
                   kind="sides"),
}

OPS: dict[str, OpDef] = {}


def _register(op: OpDef):
    OPS[op.name] = op


_register(OpDef("conv2d", "2-D convolution, cross-correlation as in every framework", {
    "filters": Arg(POS_INT, required=True),
    "kernel": Arg(SIZE, required=True, kind="pair"),
    "stride": Arg(SIZE, 1, kind="pair"),
    "padding": Arg(PADDING, 0, kind="sides"),
    "dilation": Arg(SIZE, 1, kind="pair"),
    "groups": Arg(POS_INT, 1, doc="groups == input channels == filters is a depthwise convolution"),
    "bias": Arg({"type": "boolean"}, True),
    "activation": Arg(ACTIVATION, None, kind="activation"),
}, primary="filters", infer=infer_conv2d, weights=conv2d_weights))
_register(OpDef("separable_conv2d", "depthwise 2-D convolution then a 1x1 convolution (Keras' SeparableConv2D)", {
    "filters": Arg(POS_INT, required=True, doc="the 1x1 convolution's output channels"),
    "kernel": Arg(SIZE, required=True, kind="pair"),
    "stride": Arg(SIZE, 1, kind="pair"),
    "padding": Arg(PADDING, 0, kind="sides"),
    "dilation": Arg(SIZE, 1, kind="pair"),
    "depth_multiplier": Arg({"type": "integer", "minimum": 1, "maximum": 1024}, 1,
                            doc="depthwise filters per input channel"),
    "bias": Arg({"type": "boolean"}, True, doc="on the 1x1 convolution only"),
    "activation": Arg(ACTIVATION, None, kind="activation"),
}, primary="filters", infer=infer_separable_conv2d, weights=separable_conv2d_weights))
_register(OpDef("conv2d_transpose", "transposed 2-D convolution (learned upsampling), PyTorch's ConvTranspose2d", {
    "filters": Arg(POS_INT, required=True),
    "kernel": Arg(SIZE, required=True, kind="pair"),
    "stride": Arg(SIZE, 1, kind="pair"),
    "padding": Arg(PADDING, 0, doc="cropped from the full output; 'same' makes W1*S (TensorFlow's split)",
                   kind="sides"),
    "output_padding": Arg(OUTPUT_PADDING, 0, doc="rows and columns added at the bottom and right; less than "
                                                "the stride", kind="pair"),
    "bias": Arg({"type": "boolean"}, True),
    "activation": Arg(ACTIVATION, None, kind="activation"),
}, primary="filters", infer=infer_conv2d_transpose, weights=conv2d_transpose_weights))
_register(OpDef("maxpool2d", "max pooling", dict(_POOL_ARGS, ceil=Arg(
    {"type": "boolean"}, False, doc="round the last partial window up (PyTorch's ceil_mode); not with 'same'")),
    primary="kernel", infer=infer_pool))
_register(OpDef("avgpool2d", "average pooling", dict(_POOL_ARGS), primary="kernel", infer=infer_pool))
_register(OpDef("zeropad2d", "pads height and width with a constant (zeros unless 'value' says)", {
    "padding": Arg(AMOUNTS, required=True, kind="sides"),
    "value": Arg({"type": "number", "minimum": -1e38, "maximum": 1e38}, 0, doc="the padding's value"),
}, primary="padding", infer=infer_zeropad2d))
_register(OpDef("crop2d", "removes rows and columns at the edges", {
    "cropping": Arg(AMOUNTS, required=True, kind="sides"),
}, primary="cropping", infer=infer_crop2d))
_register(OpDef("upsample2d", "repeats (nearest) or interpolates (bilinear, half-pixel centres) by an integer scale", {
    "scale": Arg(SIZE, required=True, kind="pair"),
    "mode": Arg({"enum": ["nearest", "bilinear"]}, "nearest"),
}, primary="scale", infer=infer_upsample2d))
_GLOBAL_POOL_ARGS = {"keepdims": Arg({"type": "boolean"}, False, doc="true: a [C, 1, 1] map (PyTorch's "
                                      "AdaptiveAvgPool2d(1)), which a 1x1 conv2d can read; false: [C]")}
_register(OpDef("global_avgpool2d", "mean over height and width", dict(_GLOBAL_POOL_ARGS), primary="keepdims",
                infer=infer_global_pool))
_register(OpDef("global_maxpool2d", "maximum over height and width", dict(_GLOBAL_POOL_ARGS), primary="keepdims",
                infer=infer_global_pool))
_register(OpDef("batchnorm", "batch normalisation; inference uses the running statistics", {
    "eps": Arg({"type": "number", "exclusiveMinimum": 0, "maximum": 1}, 1e-5),
    "momentum": Arg({"type": "number", "minimum": 0, "maximum": 1}, 0.1,
                    doc="PyTorch's convention: running = (1 - momentum) * running + momentum * batch"),
    "scale": Arg({"type": "boolean"}, True, doc="false: no learned scale ('weight'), fixed at 1"),
    "center": Arg({"type": "boolean"}, True, doc="false: no learned shift ('bias'), fixed at 0"),
}, primary="eps", infer=infer_batchnorm, weights=batchnorm_weights))
_register(OpDef("layernorm", "layer normalisation over the channels at each pixel ([C, H, W]) or the features", {
    "eps": Arg({"type": "number", "exclusiveMinimum": 0, "maximum": 1}, 1e-5),
}, primary="eps", infer=infer_layernorm, weights=layernorm_weights))
_register(OpDef("normalize", "(x - mean) / std per channel (features for a vector); no weights", {
    "mean": Arg(_numbers({"type": "number"}), 0.0, kind="numbers"),
    "std": Arg(_numbers({"type": "number", "exclusiveMinimum": 0}, "a number > 0"), 1.0, kind="numbers"),
}, infer=infer_normalize))
_register(OpDef("dropout", "zeroes a fraction of activations while training; nothing at inference", {
    "rate": Arg({"type": "number", "minimum": 0, "exclusiveMaximum": 1}, required=True),
}, primary="rate", infer=infer_same, inference_identity=True))
_register(OpDef("reshape", "the values in channel, row, column order, read into a new shape (a vector or a "
                "[C, H, W] map)", {
    "shape": Arg({"type": "array", "items": {"type": "integer", "minimum": -1, "maximum": 1_000_000_000},
                  "minItems": 1, "maxItems": 3, "allowed": "a list of sizes without the batch, at most one -1: "
                  "[64, 7, 7] or [-1]"}, required=True, doc="the new shape without the batch; one -1 is inferred"),
}, primary="shape", infer=infer_reshape))
_register(OpDef("flatten", "[C, H, W] to [C*H*W] in channel, row, column order", infer=infer_flatten))
_register(OpDef("dense", "fully connected layer", {
    "units": Arg(POS_INT, required=True),
    "bias": Arg({"type": "boolean"}, True),
    "activation": Arg(ACTIVATION, None, kind="activation"),
}, primary="units", infer=infer_dense, weights=dense_weights))
for _name, _act in ACTIVATIONS.items():
    _register(OpDef(_name, _act.doc, dict(_act.args), primary=_act.primary, infer=infer_same))
for _alias, _name in ACTIVATION_ALIASES.items():
    OPS[_alias] = OPS[_name]  # the same op: nodes carry OpDef.name, so the IR never holds the alias
_register(OpDef("add", "element-wise sum of two or more equal shapes; a [C] vector is broadcast over a "
                "[C, H, W] map", infer=infer_broadcast, min_inputs=2, max_inputs=None))
_register(OpDef("multiply", "element-wise product of two or more equal shapes; a [C] vector is broadcast "
                "over a [C, H, W] map (a squeeze-and-excite gate)", infer=infer_broadcast, min_inputs=2,
                max_inputs=None))
_register(OpDef("scale", "a learned multiplier per channel ([C, H, W]) or feature ([N]): layer scale", {
    "init": Arg({"type": "number"}, 1.0, doc="the initial value of every multiplier"),
}, primary="init", infer=infer_scale, weights=scale_weights))
_register(OpDef("concat", "join along channels (features for vectors)", infer=infer_concat, min_inputs=2, max_inputs=None))


def activation_defaults(name: str) -> dict:
    """The arguments a fused ``activation: <name>`` runs with: the registry's defaults."""
    return ACTIVATIONS[name].defaults


def activation_slope(name: str = "leaky_relu") -> float:
    """The slope a fused ``activation: leaky_relu`` uses (the registry's default)."""
    return activation_defaults(name)["slope"]
