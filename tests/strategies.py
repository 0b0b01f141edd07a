"""Hypothesis strategies: random *valid* specs, built so that every size stays >= 1.

Sizes are tracked with the core's own output-size function only to keep the draw valid; the
tests then compare frameworks against the checker, so a wrong formula would still be caught by
the framework layers disagreeing with it.
"""
from __future__ import annotations

import json

from hypothesis import assume
from hypothesis import strategies as st

import cnnspec
from cnnspec.shapes import output_size

ACTS = [None, "relu", "relu6", "sigmoid", "tanh", "leaky_relu", "softmax"]


def _fits(h, w, kernel, stride, padding, dilation):
    kh, kw = kernel
    sh, sw = stride
    ph, pw = (padding, padding) if isinstance(padding, str) else padding
    oh = output_size(h, kh, sh, ph, dilation[0]).size
    ow = output_size(w, kw, sw, pw, dilation[1]).size
    return oh, ow


def _size(draw, lo, hi):
    if draw(st.booleans()):
        v = draw(st.integers(lo, hi))
        return v, (v, v)
    pair = [draw(st.integers(lo, hi)), draw(st.integers(lo, hi))]
    return pair, tuple(pair)


@st.composite
def _conv(draw, c, h, w, name):
    filters = draw(st.integers(1, 6))
    kernel, k = _size(draw, 1, 3)
    stride, s = _size(draw, 1, 2)
    dilation, d = (1, (1, 1)) if draw(st.booleans()) else _size(draw, 1, 2)
    padding = draw(st.one_of(st.sampled_from(["same", "valid"]), st.integers(0, 2),
                             st.lists(st.integers(0, 2), min_size=2, max_size=2)))
    pad = padding if isinstance(padding, str) else ((padding, padding) if isinstance(padding, int) else tuple(padding))
    oh, ow = _fits(h, w, k, s, pad, d)
    assume(oh >= 1 and ow >= 1)
    groups = 1
    if draw(st.booleans()):
        options = [g for g in range(1, c + 1) if c % g == 0]
        groups = draw(st.sampled_from(options))
        filters = groups * draw(st.integers(1, 2))
    args = {"filters": filters, "kernel": kernel, "stride": stride, "padding": padding}
    if d != (1, 1):
        args["dilation"] = dilation
    if groups != 1:
        args["groups"] = groups
    if draw(st.booleans()):
        args["bias"] = False
    act = draw(st.sampled_from(ACTS))
    if act:
        args["activation"] = act
    return {"conv2d": args, "name": name}, (filters, oh, ow)


@st.composite
def _pool(draw, c, h, w, name):
    op = draw(st.sampled_from(["maxpool2d", "avgpool2d"]))
    kernel, k = _size(draw, 1, 3)
    args = {"kernel": kernel}
    s = k
    if draw(st.booleans()):
        stride, s = _size(draw, 1, 2)
        args["stride"] = stride
    mode = draw(st.sampled_from(["default", "same", "valid", "explicit"]))
    pad = (0, 0)
    if mode in ("same", "valid"):
        args["padding"] = pad = mode
    elif mode == "explicit":
        pad = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
        args["padding"] = list(pad)
    oh, ow = _fits(h, w, k, s, pad, (1, 1))
    assume(oh >= 1 and ow >= 1)
    return {op: args, "name": name}, (c, oh, ow)


@st.composite
def spec_dicts(draw, max_layers: int = 5, max_size: int = 12):
    """A dict spec that passes the checker: a few feature-map layers (with optional residual or
    concat branches), then a head of flatten or global pooling, dense layers and activations."""
    c, h, w = draw(st.integers(1, 4)), draw(st.integers(3, max_size)), draw(st.integers(3, max_size))
    layers, shape = [], (c, h, w)
    prev = "input"
    for i in range(draw(st.integers(1, max_layers))):
        kind = draw(st.sampled_from(["conv", "conv", "pool", "bn", "act", "leaky", "dropout", "add", "concat"]))
        name = f"l{i}"
        if kind == "conv":
            layer, shape = draw(_conv(*shape, name))
        elif kind == "pool":
            layer, shape = draw(_pool(*shape, name))
        elif kind == "bn":
            layer = {"batchnorm": {"eps": draw(st.sampled_from([1e-5, 1e-3]))}, "name": name}
        elif kind == "act":
            layer = {draw(st.sampled_from(["relu", "relu6", "sigmoid", "tanh", "softmax"])): None, "name": name}
        elif kind == "leaky":
            layer = {"leaky_relu": draw(st.sampled_from([0.01, 0.2])), "name": name}
        elif kind == "dropout":
            layer = {"dropout": 0.25, "name": name}
        else:
            # a branch from `prev`: a same-padded conv, then add (same channels) or concat
            filters = shape[0] if kind == "add" else draw(st.integers(1, 4))
            layers.append({"conv2d": {"filters": filters, "kernel": 3, "padding": "same"}, "name": f"{name}b",
                           "in": prev})
            layer = {kind: None, "in": [prev, f"{name}b"], "name": name}
            if kind == "concat":
                shape = (shape[0] + filters,) + shape[1:]
        layers.append(layer)
        prev = name
    head = draw(st.sampled_from(["flatten", "gap"]))
    layers.append("flatten" if head == "flatten" else "global_avgpool2d")
    for _ in range(draw(st.integers(0, 2))):
        dense = {"units": draw(st.integers(1, 8))}
        act = draw(st.sampled_from(ACTS))
        if act:
            dense["activation"] = act
        layers.append({"dense": dense})
    if draw(st.booleans()):
        layers.append(draw(st.sampled_from(["softmax", "relu", "sigmoid", {"batchnorm": None}, {"dropout": 0.5}])))
    return {"cnnspec": 1, "name": "random", "input": [c, h, w], "layers": layers}


def to_spec(d: dict) -> "cnnspec.Spec":
    """A checked Spec from a dict (JSON is YAML)."""
    return cnnspec.loads(json.dumps(d), file="<random>")
