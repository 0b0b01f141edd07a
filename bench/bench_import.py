"""`cnnspec import`: the time to import ResNet-50's ONNX (cnnspec's own file, 25.6 M weights; folded
into blocks and flat), and whether the import stays linear in the node count: a chain of residual
units (conv, relu, conv, add: 4 ONNX nodes each, names `units.K.*`, so block folding runs too) at
500, 1,000 and 2,000 nodes, printed as the ratios of the times (2.0 is linear). Medians of
several in-process runs, in one run of this script.

    .venv/bin/python bench/bench_import.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "backends"))

import cnnspec  # noqa: E402
from cnnspec.importer.model import import_onnx  # noqa: E402
from cnnspec.onnxfile.writer import model_bytes  # noqa: E402
from cnnspec_onnx.init import initial_weights  # noqa: E402


def onnx_file(graph, folder: Path, name: str) -> Path:
    path = folder / f"{name}.onnx"
    path.write_bytes(model_bytes(graph, initial_weights(graph, 0)))
    return path


def chain(nodes: int):
    """Residual units of 4 ONNX nodes each (Conv, Relu, Conv, Add) on a small map."""
    layers = []
    for k in range(nodes // 4):
        layers += [{"conv2d": {"filters": 8, "kernel": 3, "padding": 1}, "name": f"units.{k}.conv1"},
                   {"relu": None, "name": f"units.{k}.relu"},
                   {"conv2d": {"filters": 8, "kernel": 3, "padding": 1}, "name": f"units.{k}.conv2"},
                   {"add": None, "name": f"units.{k}.add",
                    "in": [f"units.{k}.conv2", f"units.{k - 1}.add" if k else "stem"]}]
    doc = {"cnnspec": 1, "name": f"chain{nodes}", "input": [3, 16, 16],
           "layers": [{"conv2d": {"filters": 8, "kernel": 1}, "name": "stem"}] + layers}
    return cnnspec.loads(json.dumps(doc)).graph


def median_time(path: Path, repeat: int, flat: bool = False) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        import_onnx(path, flat=flat)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        resnet = onnx_file(cnnspec.load(ROOT / "specs" / "resnet50.yaml").graph, folder, "resnet50")
        import_onnx(resnet)  # warm: the onnx package's imports
        folded, flat = median_time(resnet, args.repeat), median_time(resnet, args.repeat, flat=True)
        print(f"ResNet-50 ({resnet.stat().st_size / 1e6:.0f} MB ONNX): import {folded:.2f} s with blocks, "
              f"{flat:.2f} s flat (median of {args.repeat})")
        sizes = (500, 1000, 2000)
        times = {n: median_time(onnx_file(chain(n), folder, f"chain{n}"), args.repeat) for n in sizes}
        for n in sizes:
            print(f"{n:>5} nodes: {times[n] * 1000:.0f} ms ({times[n] / n * 1e6:.0f} us per node)")
        print(f"ratios: 1,000/500 nodes = {times[1000] / times[500]:.2f}, "
              f"2,000/1,000 nodes = {times[2000] / times[1000]:.2f} (2.00 is linear)")


if __name__ == "__main__":
    main()
