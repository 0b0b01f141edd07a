"""Checks, before any framework allocates anything, that what a command will hold fits where it
must go: a spec's weights, its activations, the arrays ``run`` and ``train`` read.

A spec is a few lines of YAML, but ``dense: 1000000`` behind a large map is tens of gigabytes of
weights, and an input of [3, 40000, 40000] is 19 GB of activations for 122 parameters:
allocating them would take minutes or bring the machine down (no swap, the OOM killer), and a
self-contained ONNX file cannot hold more than protobuf's 2 GiB. Each is one clear line with the
figure instead, said at once.
"""
from __future__ import annotations

import os

from ..errors import UsageError
from .ir import Graph
from .report import human_bytes

BYTES_PER_PARAM = 4  # float32
ONNX_LIMIT = 2 ** 31 - 1  # protobuf's hard limit on one serialised message
ONNX_HEADROOM = 64 * 2 ** 20  # graph structure, names and metadata beside the weights
MEMORY_SHARE = 0.5  # of physical memory the weights may take: frameworks hold a copy or two more


def weight_bytes(graph: Graph) -> int:
    return graph.params * BYTES_PER_PARAM


def physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not on this platform: no check
        return None


def require_memory(graph: Graph, memory: int | None = None, batch: int = 1) -> None:
    """Refuse a spec whose float32 weights, or whose activations for ``batch`` samples, would take
    more than half this machine's memory (``build``, ``train``, ``Spec.to``)."""
    memory = physical_memory() if memory is None else memory
    need = weight_bytes(graph)
    if memory and need > MEMORY_SHARE * memory:
        raise UsageError(f"spec '{graph.name}' has {graph.params:,} parameters ({human_bytes(need)} as float32), "
                         f"more than half of this machine's {human_bytes(memory)} of memory; "
                         f"it cannot be compiled here")
    samples = "one sample" if batch == 1 else f"a batch of {batch} samples"
    require_fits(graph.activation_bytes * batch, f"spec '{graph.name}': the float32 activations of {samples} "
                 f"(input {list(graph.input_shape)}, {graph.activation_bytes:,} bytes a sample)", memory)


def require_fits(need: int, what: str, memory: int | None = None, error=UsageError) -> None:
    """Refuse ``what`` where its ``need`` bytes exceed the share of this machine's memory a
    command may take: one line, with the figure, before anything is allocated."""
    memory = physical_memory() if memory is None else memory
    if memory and need > MEMORY_SHARE * memory:
        raise error(f"{what} need {human_bytes(need)}, more than half of this machine's "
                    f"{human_bytes(memory)} of memory; refused before allocating")


def require_onnx_size(graph: Graph) -> None:
    """Refuse, before compiling, a spec whose weights cannot fit in one self-contained ONNX file."""
    need = weight_bytes(graph)
    if need + ONNX_HEADROOM > ONNX_LIMIT:
        raise UsageError(f"spec '{graph.name}' has {graph.params:,} parameters ({human_bytes(need)} as float32); "
                         f"a self-contained ONNX file holds at most 2 GiB, so it cannot be exported")
