"""The CUDA paths, checked on a machine that has a GPU (CI has none; run it where one is lent).

1. ``cnnspec train --device cuda`` on digits, beside the same run on the CPU: accuracy of each and
   the images/s ratio, measured in one run;
2. the compiled ResNet-18 and MobileNetV2 on the GPU against the CPU, same weights (TF32 off, so
   the numbers are comparable; the difference with TF32 on is printed too);
3. ``cnnspec run --provider cuda``: runs where ONNX Runtime has a CUDA provider, else one clear
   line and exit 2;
4. (issue 10) ``cnnspec bench --provider cuda`` on ResNet-18 fp32, and the digits model's int8 file
   (``cnnspec quantize``) under ``run --provider cuda``: timed and run where the provider exists
   (ONNX Runtime's CUDA provider runs few int8 ops: the figure says what an int8 file costs there),
   else the same one line and exit 2.

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

    deployment_on_cuda(base, model, ort, problems)

    for p in problems:
        print(f"PROBLEM: {p}")
    print("gpu_check: " + ("ok" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


def deployment_on_cuda(base: Path, digits_model: Path, ort, problems: list) -> None:
    """bench --provider cuda on ResNet-18, and an int8 file run on CUDA (or one line, exit 2)."""
    has_provider = "CUDAExecutionProvider" in ort.get_available_providers()
    resnet = base / "resnet18"
    cli("build", ROOT / "specs/resnet18.yaml", "--backend", "onnx", "--quiet", "-o", resnet)
    rc, out, err = cli("bench", resnet / "model.onnx", "--provider", "cuda", "--batch", "1,32", "--seconds", "2",
                       "--json")
    if has_provider and rc == 0:
        for row in json.loads(out)["results"]:
            print(f"bench --provider cuda resnet18 batch {row['batch']}: {row['model']['images_per_second']:.0f} img/s, "
                  f"p50 {row['model']['p50_ms']:.2f} ms (host copies included)")
    elif has_provider:
        problems.append(f"bench --provider cuda failed although the provider exists: {err.strip()}")
    elif rc != 2 or len(err.strip().splitlines()) != 1:
        problems.append(f"bench --provider cuda without the provider should be one line, exit 2: rc {rc}, {err!r}")
    int8 = base / "digits.int8.onnx"
    rc, _, err = cli("quantize", digits_model, "--calibrate", "digits", "--speed-seconds", "0", "--force", "-o", int8)
    if rc:
        problems.append(f"quantize failed: {err.strip()}")
        return
    rc, out, err = cli("run", int8, "--input", _digit(base), "--provider", "cuda", "--json")
    if has_provider and rc == 0:
        print(f"run --provider cuda on the int8 file: {json.loads(out)['results'][0]['top'][0]}")
    elif has_provider:
        problems.append(f"run --provider cuda on the int8 file failed: {err.strip()}")
    elif rc != 2 or len(err.strip().splitlines()) != 1:
        problems.append(f"int8 run --provider cuda without the provider should be one line, exit 2: {err!r}")


def _digit(base: Path) -> Path:
    import numpy as np

    path = base / "digit.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.zeros((1, 8, 8), np.float32))
    return path


if __name__ == "__main__":
    sys.exit(main())
