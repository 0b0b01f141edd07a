"""The memory ONNX Runtime will need to run a model at a batch size, from the model file alone, so
``run``, ``eval`` and ``bench`` can refuse a batch size that cannot fit before they allocate it.

The estimate walks the graph in order and frees each value after its last reader, as ONNX Runtime's
memory planner does: the largest sum of values alive at once, per sample, from the shapes the file
records (cnnspec's writer records every value's shape; a value without one counts as nothing, so a
foreign file may be underestimated, never refused wrongly).
"""
from __future__ import annotations

import math

from ..errors import UsageError
from ..graph.resources import MEMORY_SHARE, human_bytes, physical_memory, require_fits

FLOAT32 = 4


def per_sample_shapes(model) -> dict[str, int]:
    """{value: elements per sample} for every value whose shape is recorded ([batch, ...])."""
    out = {}
    for v in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        dims = v.type.tensor_type.shape.dim
        if len(dims) >= 1 and all(d.HasField("dim_value") and d.dim_value > 0 for d in dims[1:]):
            out[v.name] = math.prod(d.dim_value for d in dims[1:])
    return out


def peak_elements(model) -> int:
    """Elements per sample alive at once at the worst step of one forward pass."""
    sizes = per_sample_shapes(model)
    weights = {t.name for t in model.graph.initializer}
    nodes = list(model.graph.node)
    last_use = {}
    for k, node in enumerate(nodes):
        for name in node.input:
            last_use[name] = k
    for v in model.graph.output:
        last_use[v.name] = len(nodes)
    live = sum(sizes.get(v.name, 0) for v in model.graph.input if v.name not in weights)
    peak = live
    for k, node in enumerate(nodes):
        new = sum(sizes.get(o, 0) for o in node.output)
        peak = max(peak, live + new)
        live += new
        for name in set(node.input):
            if last_use.get(name) == k and name not in weights:
                live -= sizes.get(name, 0)
    return peak


def every_value_elements(model) -> int:
    """Elements per sample of every value at once: what a run that keeps every intermediate value
    alive holds (onnxruntime's calibrator, which reads each one at the graph's end)."""
    return sum(per_sample_shapes(model).values())


def batch_within(per_sample_bytes: int, budget: int, largest: int) -> int:
    """The largest batch up to ``largest`` whose ``per_sample_bytes`` fit ``budget`` (at least 1)."""
    return max(1, min(largest, budget // max(1, per_sample_bytes)))


def require_batch_fits(model, model_path: str, batch: int, memory: int | None = None) -> None:
    """Refuse, in one line with the figures, a batch whose activations would take more than the
    share of memory a command may use."""
    per_sample = FLOAT32 * peak_elements(model)
    memory = physical_memory() if memory is None else memory
    try:
        require_fits(per_sample * batch, f"{model_path}: its activations at batch {batch} would", memory,
                     error=UsageError)
    except UsageError as exc:
        fits = int(memory * MEMORY_SHARE // per_sample) if memory else 0
        raise UsageError(f"{exc}; a batch of {max(1, fits)} fits ({human_bytes(per_sample)} a sample): "
                         f"use a batch size of {max(1, fits)}") from None
