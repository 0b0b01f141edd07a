"""What a finished run writes (rank 0 only), published together or not at all: weights.safetensors,
model.onnx, metrics.json, curves.png, history.csv, confusion.png and train.yaml, and with
``--quantize int8`` model.int8.onnx. (The checkpoint beside them is written after every epoch, by
the loop.)"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path

from ..backend.interface import Progress
from ..files.atomic import atomic_write_bytes, atomic_write_text
from ..files.publish import staged_output
from ..graph.ir import Graph
from .int8 import INT8_FILE, Int8Step
from .plots import plot_confusion, plot_curves

OUTPUT_FILES = ("weights.safetensors", "model.onnx", "metrics.json", "curves.png", "history.csv",
                "confusion.png", "train.yaml")
# written only by --quantize int8 (and not when refused); an old one never stays beside a new run's files
OPTIONAL_FILES = (INT8_FILE,)
# history.csv's columns, in order; a run without a validation split has no val_ columns
HISTORY_COLUMNS = ("epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_miou", "test_loss",
                   "test_accuracy", "test_miou", "seconds", "images_per_second")


def export_labels(graph: Graph, data) -> tuple[str, ...]:
    """The spec's classes where it names them; else the data's labels, padded to the output size."""
    if graph.classes:
        return tuple(graph.classes)
    units = graph.output_shape[0]
    return tuple(data.labels) + tuple(str(i) for i in range(len(data.labels), units))


def history_csv(history: list[dict]) -> str:
    """One row per epoch, the columns of HISTORY_COLUMNS the run has."""
    columns = [c for c in HISTORY_COLUMNS if history and c in history[0]]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return buf.getvalue()


def write_outputs(out: Path, backend, graph: Graph, data, weights: dict, metrics: dict, seed: int,
                  say: Progress, settings_yaml: str, int8: Int8Step | None = None, full: Graph | None = None) -> list[Path]:
    """Every output file, staged and then published together; with ``int8``, model.int8.onnx too,
    quantised from the staged model.onnx, and its report in ``metrics["quantization"]``. ``full``:
    the spec's whole graph where ``graph`` is the part that trains one of several outputs; the
    files hold all of it (the labels go with the first output, as the spec's ``classes`` do)."""
    from ..weights.neutral import expected_weights
    from ..weights.safetensors_io import write_weights

    export_graph = replace(graph, classes=export_labels(graph, data))
    if full is not None and full is not graph:
        first = full.output_names[0] == graph.output.name
        export_graph = replace(full, classes=export_graph.classes if first else full.classes)
        graph = full
    missing = [k for k in expected_weights(graph) if k not in weights]
    if missing:  # layers outside the trained path (dead branches) keep their seeded initial values
        seeded = backend.get_weights(backend.compile(export_graph, weights=None, seed=seed), export_graph)
        weights = {**seeded, **weights}
    writers = {
        "weights.safetensors": lambda path: write_weights(path, weights, graph),
        "model.onnx": lambda path: _write_onnx(backend, export_graph, weights, path),
        "metrics.json": lambda path: atomic_write_text(path, json.dumps(metrics, indent=2, ensure_ascii=False) + "\n"),
        "curves.png": lambda path: atomic_write_bytes(path, plot_curves(metrics)),
        "history.csv": lambda path: atomic_write_text(path, history_csv(metrics["history"])),
        "confusion.png": lambda path: atomic_write_bytes(path, plot_confusion(metrics)),
        "train.yaml": lambda path: atomic_write_text(path, settings_yaml),
    }
    with staged_output(out, withdrawn=OPTIONAL_FILES) as stage:  # the files appear together, or none do
        for name in OUTPUT_FILES:  # model.onnx comes before metrics.json, which reports its int8 copy
            writers[name](stage / name)
            if name == "model.onnx" and int8 is not None:
                metrics["quantization"] = int8.run(stage / name, out, say)
        names = [n for n in OUTPUT_FILES + OPTIONAL_FILES if (stage / n).is_file()]
    paths = [out / name for name in names]
    say(f"wrote {', '.join(p.name for p in paths)} to {out}")
    return paths


def _write_onnx(backend, graph: Graph, weights: dict, path: Path) -> None:
    """model.onnx of the trained weights, through the core's framework-free writer (as ``build``)."""
    from ..onnxfile.writer import write_onnx

    write_onnx(graph, weights, path, backend=backend.name)
