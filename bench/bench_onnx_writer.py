"""The core ONNX writer against the framework exporters it replaced, and build time against spec size.

1. ResNet-50's ``model.onnx`` from the same neutral weights: the core writer (``cnnspec.onnxfile.writer``,
   the onnx package alone), PyTorch's TorchScript exporter, and Keras + tf2onnx; seconds each (best
   of ``--repeat``) and the ratios, measured in one run.
2. ``cnnspec build --backend torch`` and ``--backend onnx`` (in process) on plain chains of 500,
   1,000 and 2,000 layers: seconds, and seconds per layer relative to the smallest (1.0 = linear).

Usage: python bench/bench_onnx_writer.py [--repeat N] [--skip-keras]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "backends"))
SIZES = (500, 1000, 2000)


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def chain_spec(layers: int) -> str:
    """A plain chain: conv 1x1 / batchnorm / relu triples on a small map (what deep nets repeat)."""
    lines = ["cnnspec: 1", f"name: chain-{layers}", "input: [8, 8, 8]", "layers:"]
    ops = ["  - conv2d: {filters: 8, kernel: 1, bias: false}", "  - batchnorm", "  - relu"]
    lines += [ops[i % 3] for i in range(layers)]
    return "\n".join(lines) + "\n"


def export_times(repeat: int, skip_keras: bool) -> None:
    from cnnspec_torch import TorchBackend

    import cnnspec
    from cnnspec.onnxfile.writer import write_onnx

    graph = cnnspec.load(ROOT / "specs/resnet50.yaml").graph
    torch_backend = TorchBackend()
    module = torch_backend.compile(graph, seed=0)
    weights = torch_backend.get_weights(module, graph)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        rows["core writer"] = best_of(repeat, lambda: write_onnx(graph, weights, out / "core.onnx"))
        rows["torch export (TorchScript)"] = best_of(
            repeat, lambda: torch_backend.export_onnx_native(module, graph, out / "torch.onnx"))
        if not skip_keras:
            from cnnspec_keras import KerasBackend

            keras_backend = KerasBackend()
            keras_model = keras_backend.compile(graph, weights=weights)
            rows["keras + tf2onnx"] = best_of(
                repeat, lambda: keras_backend.export_onnx_native(keras_model, graph, out / "keras.onnx"))
    writer = rows["core writer"]
    print(f"ResNet-50 model.onnx from neutral weights ({graph.params:,} params), best of {repeat}:")
    for name, seconds in rows.items():
        print(f"  {name:<28} {seconds:6.2f} s   {seconds / writer:5.1f}x the writer")


def build_times(repeat: int) -> None:
    import cnnspec
    from cnnspec.backend.plugins import load_backend

    print("cnnspec build on plain chains (in process; seconds, and per layer relative to the smallest):")
    for backend_name in ("torch", "onnx"):
        backend = load_backend(backend_name)
        base = None
        for size in SIZES:
            graph = cnnspec.loads(chain_spec(size), file=f"chain-{size}.yaml").graph
            with tempfile.TemporaryDirectory() as tmp:
                seconds = best_of(repeat, lambda: backend.build(graph, Path(tmp) / "out", seed=0))
            per_layer = seconds / size
            base = base or per_layer
            print(f"  {backend_name:<6} {size:>5} layers  {seconds:6.2f} s   per layer x{per_layer / base:4.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-keras", action="store_true", help="no Keras/tf2onnx row (TensorFlow is slow to load)")
    args = parser.parse_args()
    build_times(args.repeat)
    export_times(args.repeat, args.skip_keras)
    return 0


if __name__ == "__main__":
    sys.exit(main())
