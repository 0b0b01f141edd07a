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


def check_tensors(tensors: dict, expected: dict, source: str, misfit: str, graph: Graph | None = None) -> dict:
    """Every expected key present with its shape, nothing unexpected (PyTorch's
    ``num_batches_tracked`` counters aside), finite floating-point numbers: float32 arrays out, in
    the expected order. A misfit is one error from :func:`~cnnspec.weights.match.require_fit`:
    ``<source>: <misfit>: <counts>`` and a line per tensor; ``graph`` lets it name a spec argument
    that explains an unexpected tensor."""
    import numpy as np

    from .match import require_fit

    require_fit({k: np.shape(v) for k, v in tensors.items()}, expected, source, misfit, graph)
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
