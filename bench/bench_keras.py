"""Keras inference speed beside PyTorch's and ONNX Runtime's, on the same models, in one run
(numbers depend on the machine and its load; the ratios are what to read), and build/export times.

1. images/s of Keras ``Model.predict``, a compiled call (``KerasBackend.predict``: one traced
   ``model(x, training=False)``), PyTorch eager, and ONNX Runtime on each backend's ``model.onnx``,
   for the Keras-MNIST CNN and ResNet-18, at batch 1 and 32, all with the same weights;
2. seconds to compile each model in Keras and to export it with tf2onnx (no longer the product's path:
   ``bench_onnx_writer.py`` compares it with the core writer), ResNet-50 included.

Usage: python bench/bench_keras.py [--seconds S]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "backends"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_torch_onnx import load_graph, throughput  # noqa: E402

MODELS = [("keras-mnist-cnn", "specs/keras-mnist-cnn.yaml"), ("resnet18", "specs/resnet18.yaml")]
EXPORT_MODELS = MODELS + [("resnet50", "specs/resnet50.yaml")]
BATCHES = (1, 32)


def bench_inference(seconds: float):
    import numpy as np
    import onnxruntime as ort
    import torch
    from cnnspec_keras import KerasBackend
    from cnnspec_torch import TorchBackend

    keras_backend, torch_backend = KerasBackend(), TorchBackend()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, relative in MODELS:
            graph = load_graph(relative)
            keras_model = keras_backend.compile(graph, seed=0)
            weights = keras_backend.get_weights(keras_model, graph)
            torch_model = torch_backend.compile(graph, weights=weights)
            sessions = {}
            for label, backend, model in (("keras", keras_backend, keras_model), ("torch", torch_backend, torch_model)):
                path = Path(tmp) / f"{name}-{label}.onnx"
                backend.export_onnx(model, graph, path)
                sessions[label] = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            for batch in BATCHES:
                x = np.random.default_rng(0).random((batch, *graph.input_shape), dtype=np.float32)
                xt = torch.from_numpy(x)

                def torch_step():
                    with torch.inference_mode():
                        torch_model(xt)

                steps = {
                    "keras predict": lambda: keras_model.predict(x, batch_size=batch, verbose=0),
                    "keras compiled": lambda: keras_backend.predict(keras_model, x),
                    "torch eager": torch_step,
                    "ort (keras onnx)": lambda: sessions["keras"].run(None, {"input": x}),
                    "ort (torch onnx)": lambda: sessions["torch"].run(None, {"input": x}),
                }
                speeds = throughput(steps, batch, seconds)
                ref = torch_backend.predict(torch_model, x)
                gap = max(float(np.abs(keras_backend.predict(keras_model, x) - ref).max()),
                          float(np.abs(sessions["keras"].run(None, {"input": x})[0] - ref).max()))
                rows.append((name, batch, speeds, gap))
    return rows


def bench_build_export():
    from cnnspec_keras import KerasBackend

    backend = KerasBackend()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, relative in EXPORT_MODELS:
            graph = load_graph(relative)
            start = time.perf_counter()
            model = backend.compile(graph, seed=0)
            compiled = time.perf_counter() - start
            start = time.perf_counter()
            backend.export_onnx_native(model, graph, Path(tmp) / f"{name}.onnx")  # tf2onnx, the cross-check
            exported = time.perf_counter() - start
            size = (Path(tmp) / f"{name}.onnx").stat().st_size
            rows.append((name, graph.params, compiled, exported, size))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per runner and case (default 3)")
    args = parser.parse_args(argv)
    import keras
    import tensorflow as tf
    import torch

    print(f"keras {keras.__version__}, tensorflow {tf.__version__}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs; images/s, best of 3 alternating rounds")
    rows = bench_inference(args.seconds)
    names = list(rows[0][2])
    header = f"{'model':<16}{'batch':>6}" + "".join(f"{n:>18}" for n in names)
    header += f"{'compiled/predict':>18}{'ort(k)/compiled':>17}{'ort(k)/torch':>14}{'max |diff|':>12}"
    print(header)
    for name, batch, speeds, gap in rows:
        line = f"{name:<16}{batch:>6}" + "".join(f"{speeds[n]:>18,.1f}" for n in names)
        line += f"{speeds['keras compiled'] / speeds['keras predict']:>17.2f}x"
        line += f"{speeds['ort (keras onnx)'] / speeds['keras compiled']:>16.2f}x"
        line += f"{speeds['ort (keras onnx)'] / speeds['torch eager']:>13.2f}x"
        line += f"{gap:>12.1e}"
        print(line)
    print()
    print(f"{'model':<16}{'params':>14}{'keras compile s':>17}{'tf2onnx export s':>18}{'onnx MB':>10}")
    for name, params, compiled, exported, size in bench_build_export():
        print(f"{name:<16}{params:>14,}{compiled:>17.2f}{exported:>18.2f}{size / 1e6:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
