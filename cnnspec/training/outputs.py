"""What a finished run writes (rank 0 only): weights.safetensors, model.onnx, metrics.json and
curves.png, published together or not at all."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ..backend_api import Progress
from ..fsutil import atomic_write_bytes, atomic_write_text, staged_output
from ..ir import Graph
from .plots import plot_curves

OUTPUT_FILES = ("weights.safetensors", "model.onnx", "metrics.json", "curves.png")


def export_labels(graph: Graph, data) -> tuple[str, ...]:
    """The spec's classes where it names them; else the data's labels, padded to the output size."""
    if graph.classes:
        return tuple(graph.classes)
    units = graph.output_shape[0]
    return tuple(data.labels) + tuple(str(i) for i in range(len(data.labels), units))


def write_outputs(out: Path, backend, graph: Graph, data, weights: dict, metrics: dict, seed: int,
                  say: Progress) -> list[Path]:
    """weights.safetensors, model.onnx (labels in its metadata), metrics.json and curves.png, published together."""
    from ..weights import expected_weights, write_weights

    export_graph = replace(graph, classes=export_labels(graph, data))
    missing = [k for k in expected_weights(graph) if k not in weights]
    if missing:  # layers outside the trained path (dead branches) keep their seeded initial values
        seeded = backend.get_weights(backend.compile(export_graph, weights=None, seed=seed), export_graph)
        weights = {**seeded, **weights}
    with staged_output(out) as stage:  # the four files appear together, or none do
        staged = [stage / name for name in OUTPUT_FILES]
        write_weights(staged[0], weights, graph)
        _write_onnx(backend, export_graph, weights, seed, staged[1])
        atomic_write_text(staged[2], json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
        atomic_write_bytes(staged[3], plot_curves(metrics))
    paths = [out / name for name in OUTPUT_FILES]
    say(f"wrote {', '.join(p.name for p in paths)} to {out}")
    return paths


def _write_onnx(backend, graph: Graph, weights: dict, seed: int, path: Path) -> None:
    """model.onnx of the trained weights, through the core's framework-free writer (as ``build``)."""
    from ..onnx_writer import write_onnx

    write_onnx(graph, weights, path, backend=backend.name)
