"""The framework-neutral weights layout (PyTorch's): which tensors a graph's weights hold, and the
one check every weights file and every backend's tensors pass before use."""
from __future__ import annotations

from ..errors import InputError
from ..graph.ir import Graph
from ..graph.ops import OPS


def expected_weights(graph: Graph) -> dict[str, tuple[int, ...]]:
    """Every key and shape a complete weights file for this graph holds, in graph order: each
    layer's parts as its op declares them (``OpDef.weights``)."""
    out: dict[str, tuple[int, ...]] = {}
    for node in graph.nodes:
        shapes = [graph.shape_of(i) for i in node.inputs]
        for part, shape in OPS[node.op].weight_shapes(node.attrs, shapes, node.shape).items():
            out[f"{node.name}.{part}"] = tuple(shape)
    return out


def check_tensors(tensors: dict, expected: dict, source: str, misfit: str) -> dict:
    """Every expected key present with its shape, nothing unexpected (PyTorch's
    ``num_batches_tracked`` counters aside), finite floating-point numbers: float32 arrays out, in
    the expected order. A misfit is one error: ``<source>: <misfit>: <what is wrong>``."""
    import numpy as np

    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected and not k.endswith("num_batches_tracked")]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensors (first: {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} tensors the spec has no place for (first: {', '.join(unexpected[:3])})")
    for key, shape in expected.items():
        if key in tensors and tuple(np.shape(tensors[key])) != tuple(shape):
            problems.append(f"'{key}' has shape {list(np.shape(tensors[key]))} but the spec needs {list(shape)}")
            break
    if problems:
        raise InputError(f"{source}: {misfit}: " + "; ".join(problems))
    out = {}
    for key in expected:
        t = np.asarray(tensors[key])
        if not np.issubdtype(t.dtype, np.floating):
            raise InputError(f"{source}: '{key}' holds {t.dtype}, not floating-point numbers")
        t = t.astype(np.float32)
        if not np.isfinite(t).all():
            raise InputError(f"{source}: '{key}' holds NaN or infinite values")
        out[key] = t
    return out
