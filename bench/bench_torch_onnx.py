"""Inference speed: an ONNX Runtime session against PyTorch eager on the same compiled model, measured in
one run (numbers depend on the machine and its load; the ratio is what to read), and ResNet-50's
export time.

1. images/s of ``torch`` eager (inference_mode) and of the exported ``model.onnx`` in an ONNX Runtime
   CPU session with the same thread count, for the Keras-MNIST CNN and ResNet-18, at batch 1 and 32;
2. seconds to compile ResNet-50 and to write its ONNX file (``TorchBackend.export_onnx``: the core writer).

Usage: python bench/bench_torch_onnx.py [--seconds S] [--threads N]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "backends"))

MODELS = [("keras-mnist-cnn", "specs/keras-mnist-cnn.yaml"), ("resnet18", "specs/resnet18.yaml")]
EXPORT_MODEL = ("resnet50", "specs/resnet50.yaml")
BATCHES = (1, 32)

# used only where the zoo spec is missing
FALLBACK = {
    "specs/keras-mnist-cnn.yaml": """cnnspec: 1
name: keras-mnist-cnn
input: [1, 28, 28]
layers:
  - conv2d: {filters: 32, kernel: 5, padding: same, activation: relu}
  - maxpool2d: 2
  - conv2d: {filters: 64, kernel: 5, padding: same, activation: relu}
  - maxpool2d: 2
  - flatten
  - dense: {units: 1024, activation: relu}
  - dropout: 0.5
  - dense: 10
  - softmax
""",
}


def load_graph(relative: str):
    import cnnspec

    path = ROOT / relative
    if path.exists():
        return cnnspec.load(path).graph
    if relative in FALLBACK:
        return cnnspec.loads(FALLBACK[relative], file=relative).graph
    raise SystemExit(f"{relative}: missing; the benchmark needs the zoo's spec")


def throughput(steps: dict, batch: int, seconds: float) -> dict:
    """images/s of each ``step()``: warm up, then alternate rounds of about ``seconds / 6`` each, so that
    a change in the machine's load hits both alike; the best round of each counts."""
    for step in steps.values():
        for _ in range(3):
            step()
    best = dict.fromkeys(steps, 0.0)
    for _ in range(3):
        for name, step in steps.items():
            n, start = 0, time.perf_counter()
            while True:
                step()
                n += 1
                elapsed = time.perf_counter() - start
                if elapsed >= seconds / 6:
                    break
            best[name] = max(best[name], batch * n / elapsed)
    return best


def bench_inference(seconds: float, threads: int):
    import numpy as np
    import onnxruntime as ort
    import torch

    from cnnspec_torch import TorchBackend

    backend = TorchBackend()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, relative in MODELS:
            graph = load_graph(relative)
            model = backend.compile(graph, seed=0)
            path = Path(tmp) / f"{name}.onnx"
            backend.export_onnx(model, graph, path)
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
            for batch in BATCHES:
                x = np.random.default_rng(0).random((batch, *graph.input_shape), dtype=np.float32)
                xt = torch.from_numpy(x)

                def torch_step():
                    with torch.inference_mode():
                        model(xt)

                def ort_step():
                    session.run(None, {"input": x})

                speeds = throughput({"torch": torch_step, "onnxruntime": ort_step}, batch, seconds)
                eager, runtime = speeds["torch"], speeds["onnxruntime"]
                with torch.inference_mode():
                    gap = float(np.abs(model(xt).numpy() - session.run(None, {"input": x})[0]).max())
                rows.append((name, batch, eager, runtime, runtime / eager, gap))
    return rows


def bench_export(repeats: int = 3):
    from cnnspec_torch import TorchBackend

    backend = TorchBackend()
    name, relative = EXPORT_MODEL
    graph = load_graph(relative)
    compile_s, export_s, size = [], [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            start = time.perf_counter()
            model = backend.compile(graph, seed=0)
            compile_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            backend.export_onnx(model, graph, Path(tmp) / "model.onnx")
            export_s.append(time.perf_counter() - start)
            size = (Path(tmp) / "model.onnx").stat().st_size
    return name, graph.params, statistics.median(compile_s), statistics.median(export_s), size


def main(argv=None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="measuring time per cell, both runtimes (default 6)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="threads for both runtimes (default: torch's)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    import onnxruntime as ort

    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, {args.threads} threads, CPU")
    rows = bench_inference(args.seconds, args.threads)
    print()
    print(f"{'model':<16} {'batch':>5} {'torch img/s':>12} {'onnxrt img/s':>13} {'ort/torch':>10} {'max |diff|':>11}")
    for name, batch, eager, runtime, ratio, gap in rows:
        print(f"{name:<16} {batch:>5} {eager:>12.1f} {runtime:>13.1f} {ratio:>9.2f}x {gap:>11.2e}")
    name, params, compile_s, export_s, size = bench_export()
    print()
    print(f"{name} ({params:,} params): compile {compile_s:.2f} s, export to ONNX {export_s:.2f} s "
          f"(median of 3), model.onnx {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
