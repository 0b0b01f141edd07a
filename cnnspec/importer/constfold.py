"""Constant folding: what an exporter left computable becomes a number before patterns are matched.

A node whose inputs are all known (initializers, ``Constant`` nodes, earlier folded values, or the
static shape ONNX inferred at batch 1 for ``Shape``) is evaluated here with numpy, one table entry
per ONNX op; the rest stay nodes. Shape subgraphs (``Shape -> Gather -> Unsqueeze -> Concat``),
Reshape targets, transposed or reshaped weights (tf2onnx, our own writer's ``Unsqueeze`` of a layer
scale) all fold so. A result is capped in size: a hostile ``ConstantOfShape`` allocates nothing.
"""
from __future__ import annotations

from typing import Callable

from ..errors import InputError
from .reader import ONode, Source

MAX_FOLDED = 1 << 26  # elements of one folded value


def _np():
    import numpy as np
    return np


def _axes(node: ONode, values, k: int):
    """Axes from input ``k`` (opset >= 13) or the ``axes`` attribute."""
    if len(values) > k and values[k] is not None:
        return [int(a) for a in _np().asarray(values[k]).reshape(-1)]
    axes = node.attr("axes")
    return None if axes is None else [int(a) for a in axes]


def _constant(node: ONode, values, source):
    np = _np()
    for key, dtype in (("value", None), ("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in node.attrs:
            v = node.attrs[key]
            return np.asarray(v) if dtype is None else np.asarray(v, dtype=dtype)
    raise InputError(f"{source.path}: {node.label} holds no value this importer reads")


def _shape(node: ONode, values, source):
    np = _np()
    shape = source.shape(node.inputs[0])
    if shape is None:
        return None
    start, end = node.attr("start", 0), node.attr("end", None)
    return np.asarray(shape[start:end], dtype=np.int64)


def _unsqueeze(node, values, source):
    np = _np()
    x = np.asarray(values[0])
    rank = x.ndim + len(_axes(node, values, 1))
    out = x
    for a in sorted(a % rank for a in _axes(node, values, 1)):
        out = np.expand_dims(out, a)
    return out


def _squeeze(node, values, source):
    np = _np()
    axes = _axes(node, values, 1)
    x = np.asarray(values[0])
    return np.squeeze(x) if axes is None else np.squeeze(x, axis=tuple(a % x.ndim for a in axes))


def _reshape(node, values, source):
    np = _np()
    x = np.asarray(values[0])
    target = [int(t) for t in np.asarray(values[1]).reshape(-1)]
    if not node.attr("allowzero", 0):
        target = [x.shape[k] if t == 0 else t for k, t in enumerate(target)]
    return x.reshape(target)


def _slice(node, values, source):
    np = _np()
    x = np.asarray(values[0])
    starts, ends = np.asarray(values[1]).reshape(-1), np.asarray(values[2]).reshape(-1)
    axes = np.asarray(values[3]).reshape(-1) if len(values) > 3 and values[3] is not None else range(len(starts))
    steps = np.asarray(values[4]).reshape(-1) if len(values) > 4 and values[4] is not None else [1] * len(starts)
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        index[int(a) % x.ndim] = slice(int(s), int(e), int(st))
    return x[tuple(index)]


def _binary(fn):
    def run(node, values, source):
        np = _np()
        a, b = np.asarray(values[0]), np.asarray(values[1])
        out = fn(a, b)
        return out.astype(np.result_type(a, b)) if a.dtype == b.dtype else out
    return run


def _div(a, b):
    np = _np()
    if np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer):
        return np.trunc(a / b).astype(a.dtype)
    return a / b


def _cast(node, values, source):
    from onnx import helper

    return _np().asarray(values[0]).astype(helper.tensor_dtype_to_np_dtype(node.attr("to")))


def _gather(node, values, source):
    np = _np()
    return np.take(np.asarray(values[0]), np.asarray(values[1]).astype(np.int64), axis=node.attr("axis", 0))


def _concat(node, values, source):
    np = _np()
    return np.concatenate([np.asarray(v) for v in values], axis=node.attr("axis", 0))


def _constant_of_shape(node, values, source):
    np = _np()
    shape = [int(s) for s in np.asarray(values[0]).reshape(-1)]
    count = int(np.prod(shape)) if shape else 1
    if any(s < 0 for s in shape) or count > MAX_FOLDED:
        raise InputError(f"{source.path}: {node.label} would make a tensor of shape {shape}; refused")
    value = node.attr("value")
    fill = np.asarray(value).reshape(-1)[0] if value is not None else np.float32(0)
    return np.full(shape, fill, dtype=np.asarray(fill).dtype)


def _range(node, values, source):
    np = _np()
    start, limit, delta = (np.asarray(v).reshape(()) for v in values)
    if delta == 0 or abs((limit - start) / delta) > MAX_FOLDED:
        raise InputError(f"{source.path}: {node.label} makes too many values; refused")
    return np.arange(start, limit, delta, dtype=start.dtype)


def _expand(node, values, source):
    np = _np()
    x = np.asarray(values[0])
    shape = [int(s) for s in np.asarray(values[1]).reshape(-1)]
    if int(np.prod(np.broadcast_shapes(x.shape, tuple(shape)))) > MAX_FOLDED:
        raise InputError(f"{source.path}: {node.label} expands to {shape}; refused")
    return x * np.ones(shape, dtype=x.dtype)


def _transpose(node, values, source):
    np = _np()
    perm = node.attr("perm")
    return np.transpose(np.asarray(values[0]), None if perm is None else list(perm))


def _unary(fn):
    return lambda node, values, source: fn(_np().asarray(values[0]))


def _reduce(fn):
    def run(node, values, source):
        np = _np()
        x = np.asarray(values[0])
        axes = _axes(node, values, 1)
        return fn(x, axis=None if axes is None else tuple(axes), keepdims=bool(node.attr("keepdims", 1)))
    return run


def _flatten(node, values, source):
    x = _np().asarray(values[0])
    axis = node.attr("axis", 1) % max(x.ndim, 1)
    return x.reshape(int(_np().prod(x.shape[:axis])), -1)


def _lazy(name: str):
    return lambda *args: getattr(_np(), name)(*args)


FOLDERS: dict[str, Callable] = {
    "Constant": _constant,
    "Identity": lambda node, values, source: values[0],
    "Dropout": lambda node, values, source: values[0],
    "Shape": _shape,
    "Size": lambda node, values, source: _np().asarray(_np().asarray(values[0]).size, dtype="int64"),
    "Gather": _gather,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Reshape": _reshape,
    "Flatten": _flatten,
    "Slice": _slice,
    "Concat": _concat,
    "Cast": _cast,
    "Transpose": _transpose,
    "ConstantOfShape": _constant_of_shape,
    "Range": _range,
    "Expand": _expand,
    "Add": _binary(lambda a, b: a + b),
    "Sub": _binary(lambda a, b: a - b),
    "Mul": _binary(lambda a, b: a * b),
    "Div": _binary(_div),
    "Pow": _binary(lambda a, b: a ** b),
    "Min": _binary(_lazy("minimum")),
    "Max": _binary(_lazy("maximum")),
    "Equal": _binary(lambda a, b: a == b),
    "Where": lambda node, values, source: _np().where(*(_np().asarray(v) for v in values)),
    "Neg": _unary(lambda x: -x),
    "Sqrt": _unary(_lazy("sqrt")),
    "Floor": _unary(_lazy("floor")),
    "Ceil": _unary(_lazy("ceil")),
    "Abs": _unary(_lazy("abs")),
    "ReduceProd": _reduce(_lazy("prod")),
}
NEEDS_NO_VALUES = {"Shape", "Size"}  # these read a value's inferred shape, not the value


def fold_constants(source: Source) -> None:
    """Evaluate every node whose inputs are known, in order; what is left are the model's real
    nodes, and ``source.constants`` gains every folded value."""
    kept = []
    constants = source.constants
    for node in source.nodes:
        fold = FOLDERS.get(node.op)
        if fold is None or len(node.outputs) != 1 and node.op != "Dropout":
            kept.append(node)
            continue
        if node.op in NEEDS_NO_VALUES:
            if node.op == "Size" and source.shape(node.inputs[0]) is not None:
                values = [_np().zeros(source.shape(node.inputs[0]), dtype="int8")]
            else:
                values = [None]
        elif all(not i or i in constants for i in node.inputs):
            values = [constants[i] if i else None for i in node.inputs]
        else:
            kept.append(node)
            continue
        if node.op in NEEDS_NO_VALUES and node.op == "Size" and values == [None]:
            kept.append(node)
            continue
        try:
            result = fold(node, values, source)
        except InputError:
            raise
        except (ValueError, TypeError, IndexError, KeyError, ZeroDivisionError, OverflowError, MemoryError) as exc:
            raise InputError(f"{source.path}: {node.label} cannot be computed from its constant inputs "
                             f"({type(exc).__name__}: {str(exc)[:120]})") from None
        if result is None:
            kept.append(node)
            continue
        result = _np().asarray(result)
        if result.size > MAX_FOLDED:
            raise InputError(f"{source.path}: {node.label} makes {result.size} values; refused")
        constants[node.outputs[0]] = result
        source.shapes[node.outputs[0]] = tuple(result.shape)
    source.nodes = kept
