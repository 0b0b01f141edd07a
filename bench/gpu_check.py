"""The CUDA paths, checked on a machine that has a GPU (CI has none; run it where one is lent).

1. ``cnnspec train --device cuda`` on digits, beside the same run on the CPU: accuracy of each and
   the images/s ratio, measured in one run;
2. the compiled ResNet-18 and MobileNetV2 on the GPU against the CPU, same weights (TF32 off, so
   the numbers are comparable; the difference with TF32 on is printed too);
3. ``cnnspec run --provider cuda``: runs where ONNX Runtime has a CUDA provider, else one clear
   line and exit 2.

Where CUDA is absent it checks that each path fails with one clear line, and exits 0.

    python bench/gpu_check.py [--out DIR] [--epochs N]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cli(*argv) -> tuple[int, str, str]:
    from cnnspec.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def train(device: str, out: Path, epochs: int) -> dict:
    start = time.perf_counter()
    rc, _, err = cli("train", ROOT / "specs/digits.yaml", "--backend", "torch", "--data", "digits", "--epochs", epochs,
                     "--device", device, "--quiet", "-o", out)
    if rc:
        return {"rc": rc, "error": err.strip()}
    metrics = json.loads((out / "metrics.json").read_text())
    return {"rc": 0, "wall": time.perf_counter() - start, "accuracy": metrics["test_accuracy"],
            "epoch": metrics["best_epoch"], "ips": metrics["images_per_second"]}


def gpu_parity(name: str) -> str:
    import numpy as np
    import torch

    import cnnspec

    model = cnnspec.load(ROOT / f"specs/{name}.yaml").to("torch", seed=0).eval()
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((4, 3, 224, 224)).astype(np.float32))
    with torch.inference_mode():
        ref = model(x).numpy()
        gpu = model.to("cuda")
        rows = []
        for tf32 in (False, True):
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cuda.matmul.allow_tf32 = tf32
            y = gpu(x.to("cuda")).cpu().numpy()
            rel = float(np.abs(y - ref).max() / (np.abs(ref).max() + 1e-12))
            rows.append(f"tf32 {'on ' if tf32 else 'off'}: max |gpu - cpu| / max |cpu| = {rel:.2e}")
        torch.backends.cudnn.allow_tf32 = True
        sync = torch.cuda.synchronize
        xb = torch.randn(32, 3, 224, 224, device="cuda")
        for _ in range(3):
            gpu(xb)
        sync()
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < 2.0:
            gpu(xb)
            n += 32
        sync()
        ips = n / (time.perf_counter() - start)
    model.to("cpu")
    return f"{name}: " + "; ".join(rows) + f"; eager batch 32 on the GPU: {ips:,.0f} images/s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="where the training runs write (default: a temporary folder)")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    import onnxruntime as ort
    import torch

    base = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="cnnspec-gpu-"))
    has_cuda = torch.cuda.is_available()
    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}); GPU: "
          f"{torch.cuda.get_device_name(0) if has_cuda else 'none'}; onnxruntime {ort.__version__} providers "
          f"{ort.get_available_providers()}", flush=True)
    problems = []

    gpu = train("cuda", base / "train_cuda", args.epochs)
    if has_cuda:
        cpu = train("cpu", base / "train_cpu", args.epochs)
        for label, r in (("cuda", gpu), ("cpu", cpu)):
            if r["rc"]:
                problems.append(f"train --device {label} failed: {r['error']}")
            else:
                print(f"train --device {label}: test accuracy {r['accuracy']:.4f} (epoch {r['epoch']}), "
                      f"{r['ips']:,.0f} images/s in the loop, {r['wall']:.1f} s in all", flush=True)
        if not gpu["rc"] and not cpu["rc"]:
            print(f"  cuda / cpu training images/s: {gpu['ips'] / cpu['ips']:.2f}")
            if gpu["accuracy"] < 0.97:
                problems.append(f"train --device cuda reached only {gpu['accuracy']:.4f}")
        for name in ("resnet18", "mobilenet-v2"):
            line = gpu_parity(name)
            print(line, flush=True)
            if float(line.split("= ")[1].split(";")[0]) > 1e-4:
                problems.append(f"{name}: the GPU's fp32 numbers differ from the CPU's: {line}")
    elif gpu["rc"] != 2 or len(gpu["error"].splitlines()) != 1:
        problems.append(f"train --device cuda without CUDA should be one line, exit 2: {gpu}")
    else:
        print(f"train --device cuda without CUDA: exit 2, '{gpu['error']}'")

    model = base / "train_cuda" / "model.onnx"
    if not model.exists():
        model = base / "built" / "model.onnx"
        cli("build", ROOT / "specs/digits.yaml", "--backend", "torch", "--quiet", "-o", model.parent)
    rc, out, err = cli("run", model, "--input", _digit(base), "--provider",
                       "cuda", "--json")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        if rc:
            problems.append(f"run --provider cuda failed although the provider exists: {err.strip()}")
        else:
            print(f"run --provider cuda: {json.loads(out)['results'][0]['top'][0]}")
    elif rc != 2 or len(err.strip().splitlines()) != 1:
        problems.append(f"run --provider cuda without the provider should be one line, exit 2: rc {rc}, {err!r}")
    else:
        print(f"run --provider cuda without a CUDA provider: exit 2, '{err.strip()}'")

    for p in problems:
        print(f"PROBLEM: {p}")
    print("gpu_check: " + ("ok" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


def _digit(base: Path) -> Path:
    import numpy as np

    path = base / "digit.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.zeros((1, 8, 8), np.float32))
    return path


if __name__ == "__main__":
    sys.exit(main())
