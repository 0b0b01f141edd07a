"""Hypothesis strategies: random *valid* specs, built so that every size stays >= 1.

The ops come from ``cnnspec.graph.ops.OPS`` through :data:`STRATEGIES`, one small entry per op (the
activations straight from the registry), so a new op is fuzzed the day it is added:
``tests/test_lowering_complete.py`` fails for an op without an entry. Sizes are tracked with the
core's own output-size function only to keep the draw valid; the tests then compare frameworks
against the checker, so a wrong formula would still be caught by the framework layers disagreeing.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

from hypothesis import assume
from hypothesis import strategies as st

import cnnspec
from cnnspec.graph.ops import ACTIVATION_ALIASES, ACTIVATIONS, four_sides
from cnnspec.graph.shapes import output_size, transpose_output_size

ACTS = [None, *ACTIVATIONS, *ACTIVATION_ALIASES]
# values an activation's arguments are drawn from (its default otherwise)
ACTIVATION_ARG_VALUES = {"slope": [0.01, 0.2], "approximate": ["none", "tanh"], "alpha": [1.0, 0.5]}
GROW_UP_TO = 12  # upsampling ops grow a map only up to this side, so random specs stay small


def _sides(amount):
    """An int, a pair or four numbers as (top, bottom, left, right)."""
    return four_sides((amount, amount) if isinstance(amount, int) else tuple(amount))


def _axes(padding):
    """'same'/'valid' for both axes, else each axis' (before, after)."""
    if isinstance(padding, str):
        return padding, padding
    top, bottom, left, right = _sides(padding)
    return (top, bottom), (left, right)


def _fits(h, w, kernel, stride, padding, dilation, ceil=False):
    kh, kw = kernel
    sh, sw = stride
    ph, pw = _axes(padding)
    oh = output_size(h, kh, sh, ph, dilation[0], ceil).size
    ow = output_size(w, kw, sw, pw, dilation[1], ceil).size
    return oh, ow


def _amounts(draw, high):
    """An int, a pair or four numbers [top, bottom, left, right], each 0..high."""
    return draw(st.one_of(st.integers(0, high), st.lists(st.integers(0, high), min_size=2, max_size=2),
                          st.lists(st.integers(0, high), min_size=4, max_size=4)))


def _size(draw, lo, hi):
    if draw(st.booleans()):
        v = draw(st.integers(lo, hi))
        return v, (v, v)
    pair = [draw(st.integers(lo, hi)), draw(st.integers(lo, hi))]
    return pair, tuple(pair)


def _fused(draw, args):
    act = draw(st.sampled_from(ACTS))
    if act:
        args["activation"] = act
    return args


# ---- one generator per op: (draw, shape, name, prev) -> (layer items, output shape) ----

def _window(draw, shape):
    """A convolution's filters, kernel, stride, dilation and padding that fit ``shape``: (args, H2, W2)."""
    c, h, w = shape
    kernel, k = _size(draw, 1, 3)
    stride, s = _size(draw, 1, 2)
    dilation, d = (1, (1, 1)) if draw(st.booleans()) else _size(draw, 1, 2)
    padding = draw(st.one_of(st.sampled_from(["same", "valid"]), st.just(None))) or _amounts(draw, 2)
    oh, ow = _fits(h, w, k, s, padding, d)
    assume(oh >= 1 and ow >= 1)
    args = {"filters": draw(st.integers(1, 6)), "kernel": kernel, "stride": stride, "padding": padding}
    if d != (1, 1):
        args["dilation"] = dilation
    return args, oh, ow


def _conv(draw, shape, name, prev):
    args, oh, ow = _window(draw, shape)
    if draw(st.booleans()):
        c = shape[0]
        groups = draw(st.sampled_from([g for g in range(1, c + 1) if c % g == 0]))
        args["filters"] = groups * draw(st.integers(1, 2))
        if groups != 1:
            args["groups"] = groups
    if draw(st.booleans()):
        args["bias"] = False
    return [{"conv2d": _fused(draw, args), "name": name}], (args["filters"], oh, ow)


def _separable(draw, shape, name, prev):
    args, oh, ow = _window(draw, shape)
    if draw(st.booleans()):
        args["depth_multiplier"] = draw(st.integers(2, 3))
    if draw(st.booleans()):
        args["bias"] = False
    return [{"separable_conv2d": _fused(draw, args), "name": name}], (args["filters"], oh, ow)


def _reshape(draw, shape, name, prev):
    """Another arrangement of the same values: a vector, or a map of permuted or merged sizes (one -1 at times)."""
    total = 1
    for v in shape:
        total *= v
    options = [(total,), (total, 1, 1), (1, 1, total)]
    if len(shape) == 3:
        c, h, w = shape
        options += [(h, c, w), (w, h, c), (c * h, w, 1)]
    out = list(draw(st.sampled_from(options)))
    written = list(out)
    if draw(st.booleans()):
        written[draw(st.integers(0, len(out) - 1))] = -1
    return [{"reshape": written, "name": name}], tuple(out)


def _pool(op):
    def layers(draw, shape, name, prev):
        c, h, w = shape
        kernel, k = _size(draw, 1, 3)
        args = {"kernel": kernel}
        s = k
        if draw(st.booleans()):
            stride, s = _size(draw, 1, 2)
            args["stride"] = stride
        mode = draw(st.sampled_from(["default", "same", "valid", "explicit", "four"]))
        pad = 0
        if mode in ("same", "valid"):
            args["padding"] = pad = mode
        elif mode == "explicit":
            pad = [draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2))]
            args["padding"] = pad
        elif mode == "four":
            pad = [draw(st.integers(0, half)) for half in (k[0] // 2, k[0] // 2, k[1] // 2, k[1] // 2)]
            args["padding"] = pad
        ceil = op == "maxpool2d" and mode != "same" and draw(st.booleans())
        if ceil:
            args["ceil"] = True
        oh, ow = _fits(h, w, k, s, pad, (1, 1), ceil)
        assume(oh >= 1 and ow >= 1)
        return [{op: args, "name": name}], (c, oh, ow)
    return layers


def _conv_transpose(draw, shape, name, prev):
    c, h, w = shape
    grow = max(h, w) <= GROW_UP_TO
    filters = draw(st.integers(1, 4))
    kernel, k = _size(draw, 1, 3)
    stride, s = _size(draw, 1, 2) if grow else (1, (1, 1))
    args = {"filters": filters, "kernel": kernel, "stride": stride}
    same = k[0] >= s[0] and k[1] >= s[1] and draw(st.booleans())
    padding = "same" if same else draw(st.one_of(st.just("valid"), st.just(None))) or _amounts(draw, 1)
    args["padding"] = padding
    extra = (0, 0)
    if not same and max(s) > 1 and draw(st.booleans()):
        extra = (draw(st.integers(0, s[0] - 1)), draw(st.integers(0, s[1] - 1)))
        args["output_padding"] = list(extra)
    ph, pw = _axes(padding)
    oh = transpose_output_size(h, k[0], s[0], ph, extra[0]).size
    ow = transpose_output_size(w, k[1], s[1], pw, extra[1]).size
    assume(oh >= 1 and ow >= 1)
    if draw(st.booleans()):
        args["bias"] = False
    return [{"conv2d_transpose": _fused(draw, args), "name": name}], (filters, oh, ow)


def _zeropad(draw, shape, name, prev):
    c, h, w = shape
    padding = _amounts(draw, 2) if max(h, w) <= GROW_UP_TO else 0
    args = {"padding": padding}
    if draw(st.booleans()):
        args["value"] = draw(st.sampled_from([-1.5, 0.25, -100]))
    top, bottom, left, right = _sides(padding)
    return [{"zeropad2d": args, "name": name}], (c, h + top + bottom, w + left + right)


def _crop(draw, shape, name, prev):
    c, h, w = shape
    cropping = _amounts(draw, 2)
    top, bottom, left, right = _sides(cropping)
    assume(h - top - bottom >= 1 and w - left - right >= 1)
    return [{"crop2d": cropping, "name": name}], (c, h - top - bottom, w - left - right)


def _upsample(draw, shape, name, prev):
    c, h, w = shape
    scale, (sh, sw) = _size(draw, 1, 2) if max(h, w) <= GROW_UP_TO else (1, (1, 1))
    mode = draw(st.sampled_from(["nearest", "bilinear"]))
    return [{"upsample2d": {"scale": scale, "mode": mode}, "name": name}], (c, h * sh, w * sw)


def _dense(draw, shape, name, prev):
    units = draw(st.integers(1, 8))
    return [{"dense": _fused(draw, {"units": units}), "name": name}], (units,)


def _same_shape(make_args):
    def layers(draw, shape, name, prev):
        op, args = make_args(draw)
        return [{op: args, "name": name}], shape
    return layers


def _activation(act):
    def args(draw):
        values = {key: draw(st.sampled_from(ACTIVATION_ARG_VALUES.get(key, [arg.default])))
                  for key, arg in ACTIVATIONS[act].args.items()}
        spelling = draw(st.sampled_from([act, *ACTIVATIONS[act].aliases]))  # swish is silu
        return spelling, values or None
    return _same_shape(args)


def _branch(op):
    """A second path from ``prev`` (a same-padded conv, or a dense layer for vectors), then ``op``
    joins it with ``prev``: equal shapes for add and multiply, any width for concat. On a map, add and
    multiply may instead take a [C] gate (global pool, dense, hard_sigmoid: squeeze-and-excite),
    on either side."""
    def layers(draw, shape, name, prev):
        if op != "concat" and len(shape) == 3 and draw(st.booleans()):
            gate = [{"global_avgpool2d": None, "name": f"{name}p", "in": prev},
                    {"dense": {"units": shape[0], "activation": "hard_sigmoid"}, "name": f"{name}b"}]
            ins = draw(st.sampled_from([[prev, f"{name}b"], [f"{name}b", prev]]))
            return gate + [{op: None, "in": ins, "name": name}], shape
        width = draw(st.integers(1, 4)) if op == "concat" else shape[0]
        if len(shape) == 3:
            branch = {"conv2d": {"filters": width, "kernel": 3, "padding": "same"}}
        else:
            branch = {"dense": width}
        out = (shape[0] + width,) + tuple(shape[1:]) if op == "concat" else shape
        return [{**branch, "name": f"{name}b", "in": prev}, {op: None, "in": [prev, f"{name}b"], "name": name}], out
    return layers


def _global_pool(op):
    """[C], or with ``keepdims`` the [C, 1, 1] map (squeeze-and-excite's, which a 1x1 conv2d reads)."""
    def layers(draw, shape, name, prev):
        if draw(st.booleans()):
            return [{op: {"keepdims": True}, "name": name}], (shape[0], 1, 1)
        return [{op: None, "name": name}], (shape[0],)
    return layers


def _batchnorm(draw):
    args = {"eps": draw(st.sampled_from([1e-5, 1e-3]))}
    args.update({key: False for key in ("scale", "center") if draw(st.booleans())})
    return "batchnorm", args


def _normalize(draw, shape, name, prev):
    """A number or one per channel, for mean and std each."""
    def numbers(low, high):
        one = st.floats(low, high, allow_nan=False, width=32)
        return draw(st.one_of(one, st.lists(one, min_size=shape[0], max_size=shape[0])))
    return [{"normalize": {"mean": numbers(-1.0, 1.0), "std": numbers(0.25, 2.0)}, "name": name}], shape


@dataclass(frozen=True)
class OpStrategy:
    """How random specs use an op: ``layers`` draws its items, ``ranks`` are the input ranks it
    takes (3: [C, H, W], 1: a vector), ``weight`` how often the body picks it."""

    layers: Callable
    ranks: tuple = (1, 3)
    weight: int = 1


STRATEGIES: dict[str, OpStrategy] = {
    "conv2d": OpStrategy(_conv, (3,), weight=4),
    "conv2d_transpose": OpStrategy(_conv_transpose, (3,)),
    "separable_conv2d": OpStrategy(_separable, (3,), weight=2),
    "maxpool2d": OpStrategy(_pool("maxpool2d"), (3,), weight=2),
    "avgpool2d": OpStrategy(_pool("avgpool2d"), (3,), weight=2),
    "zeropad2d": OpStrategy(_zeropad, (3,)),
    "crop2d": OpStrategy(_crop, (3,)),
    "upsample2d": OpStrategy(_upsample, (3,)),
    "global_avgpool2d": OpStrategy(_global_pool("global_avgpool2d"), (3,)),
    "global_maxpool2d": OpStrategy(_global_pool("global_maxpool2d"), (3,)),
    "reshape": OpStrategy(_reshape),
    "flatten": OpStrategy(lambda draw, shape, name, prev: ([{"flatten": None, "name": name}],
                                                           (shape[0] * shape[1] * shape[2],)), (3,)),
    "batchnorm": OpStrategy(_same_shape(_batchnorm), weight=2),
    "layernorm": OpStrategy(_same_shape(lambda draw: ("layernorm", {"eps": draw(st.sampled_from([1e-5, 1e-3]))}))),
    "normalize": OpStrategy(_normalize),
    "dropout": OpStrategy(_same_shape(lambda draw: ("dropout", draw(st.sampled_from([0.25, 0.5]))))),
    "dense": OpStrategy(_dense, (1,), weight=2),
    **{act: OpStrategy(_activation(act)) for act in ACTIVATIONS},
    "add": OpStrategy(_branch("add"), weight=2),
    "multiply": OpStrategy(_branch("multiply"), weight=2),
    "scale": OpStrategy(_same_shape(lambda draw: ("scale", draw(st.sampled_from([1.0, 0.5, 2.0]))))),
    "concat": OpStrategy(_branch("concat"), weight=2),
}


def op_layers(op: str, shape, name: str, prev: str):
    """One op's layer items at ``shape`` and the shape after them."""
    @st.composite
    def draw_layers(draw):
        return STRATEGIES[op].layers(draw, tuple(shape), name, prev)
    return draw_layers()


def _pick(draw, shape, ops=None):
    """An op that takes ``shape``, drawn by weight."""
    names = [op for op, s in STRATEGIES.items() if len(shape) in s.ranks and (ops is None or op in ops)]
    return draw(st.sampled_from([op for op in names for _ in range(STRATEGIES[op].weight)]))


@st.composite
def spec_dicts(draw, max_layers: int = 5, max_size: int = 12):
    """A dict spec that passes the checker: a few layers of any op (feature maps first), then a
    head of flatten or global pooling where still needed, dense layers, and perhaps one last op."""
    c, h, w = draw(st.integers(1, 4)), draw(st.integers(3, max_size)), draw(st.integers(3, max_size))
    layers, shape = [], (c, h, w)
    prev = "input"

    def append(op, name):
        nonlocal shape, prev
        items, shape = draw(op_layers(op, shape, name, prev))
        layers.extend(items)
        prev = name

    for i in range(draw(st.integers(1, max_layers))):
        append(_pick(draw, shape), f"l{i}")
    if len(shape) == 3:
        append(draw(st.sampled_from(["flatten", "global_avgpool2d"])), "head")
    if len(shape) == 3:  # a global pool that kept its [C, 1, 1]
        append("flatten", "head_flat")
    for i in range(draw(st.integers(0, 2))):
        append("dense", f"d{i}")
    if draw(st.booleans()):
        append(_pick(draw, shape, ops=[op for op in STRATEGIES if op != "dense"]), "last")
    return {"cnnspec": 1, "name": "random", "input": [c, h, w], "layers": layers}


def to_spec(d: dict) -> "cnnspec.Spec":
    """A checked Spec from a dict (JSON is YAML)."""
    return cnnspec.loads(json.dumps(d), file="<random>")
