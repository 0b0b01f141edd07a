"""Patterns that move or resize values: pools and global pools (and ReduceMean/ReduceMax over height
and width), Flatten/Reshape/Squeeze/Unsqueeze, the aliases, Concat, Resize, Pad, Slice."""
from __future__ import annotations

from .match_weighted import _layernorm_decomposed
from .matcher import Matcher, _auto_pads, _clean, _need_map_input, _np, _scalar, compact_pair, compact_sides
from .reader import ONode, refuse


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
    args, pads = _pool_args(m, node)
    if node.attr("ceil_mode", 0):
        args["ceil"] = True
    elif any(2 * p > k for p, k in zip(pads, [k for k in node.attr("kernel_shape") for _ in (0, 1)])):
        args = _ceil_form(m, node, args, pads)
    if len(node.outputs) > 1 and node.outputs[1]:
        raise refuse(m.source, node, "also outputs indices", "MaxPool with one output")
    m.emit("maxpool2d", args, [x], node.outputs[0], node)


def _ceil_form(m: Matcher, node: ONode, args: dict, pads) -> dict:
    """A floor-mode MaxPool whose bottom or right padding is more than half its window is a ceil-mode
    pool written out (cnnspec lowers ``ceil: true`` so, ONNX's shape inference lacking PyTorch's
    last-window rule): the top and left padding with ``ceil: true``, where that gives these pads."""
    from ..graph.ops import OPS, ShapeProblem, infer_pool

    top, _bottom, left, _right = pads
    shape = m.sample(node.inputs[0])
    candidate = {k: v for k, v in args.items() if k != "padding"}
    candidate.update(padding=compact_pair((top, left)), ceil=True)
    try:
        inferred = infer_pool(OPS["maxpool2d"].normalize(candidate), [shape])
    except ShapeProblem:
        inferred = None
    if inferred is None or tuple(inferred.pads) != tuple(pads):
        raise refuse(m.source, node, f"pads {list(pads)}, more than half its window on a side",
                     "MaxPool padding at most half the kernel, or ceil_mode")
    if not any((top, left)):
        candidate.pop("padding")
    return candidate


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
                     "a flatten of a [C, H, W] map to [C*H*W] (Flatten, or Reshape to [batch, -1]), or a "
                     "Reshape to a constant [batch, N] or [batch, C, H, W] (reshape)")


ALIASES = ("Identity", "Dropout", "Cast")


def _feeds_dense(m: Matcher, value: str) -> bool:
    """Every reader of ``value`` (through Identity, Dropout, Cast) is a Gemm or MatMul: the flatten
    before a dense layer, whatever op the exporter spelt it with."""
    users = m.consumers.get(value, [])
    return bool(users) and value not in m.outputs and all(
        u.op in ("Gemm", "MatMul") or u.op in ALIASES and _feeds_dense(m, u.outputs[0]) for u in users)


def match_reshape_op(m: Matcher, node: ONode) -> bool:
    """A Reshape to a constant target the language's ``reshape`` spells (the batch kept, at most one -1,
    a vector or a [C, H, W] map), cnnspec's writer's ``Reshape(x, [0, *shape])``; a flatten before a
    dense, an unchanged shape and a vector viewed as [C, 1, 1] are left to :func:`match_reshape`."""
    target = m.const(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] else None
    x = m.value(node.inputs[0])
    before, after = m.sample(x), m.sample(node.outputs[0])
    if target is None or before is None or after is None or before == after or len(after) not in (1, 3) \
            or (m.source.shape(node.outputs[0]) or (0,))[0] != 1:
        return False
    target = [int(v) for v in _np().asarray(target).reshape(-1)]
    if node.attr("allowzero", 0) and 0 in target or len(target) != len(after) + 1 or target.count(-1) > 1 or target[0] not in (0, 1, -1) \
            or any(t not in (s, -1) for t, s in zip(target[1:], after)):
        return False
    if len(before) == 3 and len(after) == 1 and _feeds_dense(m, node.outputs[0]) \
            or len(before) == 1 and after == (before[0], 1, 1):
        return False
    m.emit("reshape", {"shape": [int(s) for s in after]}, [m.data_input(node)], node.outputs[0], node)
    return True


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
