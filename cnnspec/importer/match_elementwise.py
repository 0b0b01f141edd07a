"""Element-wise patterns: the activations and their decompositions (silu, hard-swish, the erf GELU,
mish), Add and Mul of layers, and Add/Sub/Mul/Div by a constant per channel (a bias, a layer scale,
a normalize)."""
from __future__ import annotations

import math

from .matcher import (FUSABLE, Matcher, _chain, _channel_constant, _clean, _const_is, _np, _numbers, _other,
                      _scalar)
from .reader import ONode, refuse


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
    if node.index in m.channels_last and rank == 4:
        axis = {3: 1, -1: 1}.get(axis, 0)   # channels-last's last axis is the channels
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


def _tanh_gelu(m: Matcher, node: ONode) -> bool:
    """x * 0.5 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))), from x^3 as Mul(Mul(x, x), x) (cnnspec's
    writer) or Pow(x, 3), the 0.5 and the x in either order: a gelu with ``approximate: tanh``."""
    if node.op == "Pow":
        x, nodes = m.value(node.inputs[0]), [node]
        if not _const_is(m, node, 3.0):
            return False
        cube = node
    else:
        x = m.value(node.inputs[0])
        if len(node.inputs) != 2 or m.value(node.inputs[1]) != x:
            return False
        cube = m.sole_consumer(node.outputs[0], "Mul")
        if cube is None or m.value(_other(cube, node.outputs[0]) or "") != x:
            return False
        nodes = [node, cube]
    steps = _chain(m, cube, [("Mul", lambda n: _const_is(m, n, 0.044715)),
                             ("Add", lambda n: x in (m.value(i) for i in n.inputs)),
                             ("Mul", lambda n: _const_is(m, n, math.sqrt(2.0 / math.pi))),
                             ("Tanh", None), ("Add", lambda n: _const_is(m, n, 1.0))])
    if steps is None:
        return False
    first = m.sole_consumer(steps[-1].outputs[0], "Mul")
    second = m.sole_consumer(first.outputs[0], "Mul") if first is not None else None
    if second is None:
        return False
    halves = [n for n in (first, second) if _const_is(m, n, 0.5)]
    by_x = [n for n in (first, second) if x in (m.value(i) for i in n.inputs)]
    if len(halves) != 1 or len(by_x) != 1 or halves[0] is by_x[0]:
        return False
    m.emit("gelu", {"approximate": "tanh"}, [m.data_input(node)], second.outputs[0], node,
           nodes=(*nodes, *steps, first, second))
    return True


def match_pow(m: Matcher, node: ONode) -> None:
    if not _tanh_gelu(m, node):
        raise refuse(m.source, node, "is not part of a pattern the language has",
                     "the tanh GELU (x^3 -> * 0.044715 -> + x -> * sqrt(2/pi) -> Tanh -> + 1 -> * x -> * 0.5) or "
                     "the layernorm decomposition")


def _binary(op: str):
    def match(m: Matcher, node: ONode) -> None:
        if op == "multiply" and _tanh_gelu(m, node):
            return
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
    before = m.made.get(x)
    if before is not None and before.op in FUSABLE and "bias" not in before.weights \
            and m.sole_consumer(x) is node and not before.args.get("activation"):
        n = before.weights["weight"].shape[1 if before.op == "conv2d_transpose" else 0]
        before.weights["bias"] = _np().broadcast_to(_np().asarray(c, dtype="float32"), (n,)).copy()
        before.args.pop("bias", None)
        before.output = node.outputs[0]
        m.made[before.output] = before
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
           name if name in m.source.constants and "." in name and len(m.consumers.get(name, ())) == 1 else None)


CONSTANT_BINARY = {"Add": _const_add, "Sub": _const_sub, "Mul": _const_mul,
                   "Div": lambda m, node, k: match_div(m, node)}


def match_mul(m: Matcher, node: ONode) -> None:
    _binary("multiply")(m, node)


def _refuse_sub(m: Matcher, node: ONode) -> None:
    raise refuse(m.source, node, "subtracts one layer's output from another's",
                 "Sub of a constant per channel (normalize); Add and Mul of layers")
