"""int8 against ONNX Runtime fp32 on ResNet-18, per quantisation recipe, and the session settings
behind ORT fp32 against PyTorch eager; every ratio measured within one run (alternating rounds,
median of per-round ratios), printed beside the CPU's int8 instruction set.

1. recipes: every entry of ``cnnspec.quantize.recipes.RECIPES`` (QDQ and QOperator, symmetric
   activations, reduced range, per-tensor, uint8 weights) and dynamic quantisation, each calibrated
   on the same images; for each, how many convs ONNX Runtime runs in int8 after its fusions, the
   largest logit difference from fp32, and int8/fp32 at batch 1 and 32; then the recipe cnnspec
   chooses on this CPU, and why.
2. sessions: fp32 and int8 under cnnspec's settings against each setting undone
   (threads, spinning, memory arena, optimisation level).
3. ORT fp32 against PyTorch eager at batch 1 (needs the torch backend), each run a
   fresh process: the spread between runs with both thread pools waiting actively (PyTorch's OpenMP
   default, ORT's spinning) and with cnnspec's defaults, where both wait passively (the torch
   backend sets OMP_WAIT_POLICY=PASSIVE before torch loads; cnnspec's ORT settings turn spinning off).

ResNet-18's weights are the onnx backend's seeded initialisation (speed does not depend on them);
calibration images are uniform noise or the digits resized to 224x224 RGB (``--calibration digits``).

Usage: python bench/bench_quantize.py [--seconds S] [--recipes a,b] [--skip-recipes] [--skip-sessions]
                                      [--skip-torch] [--calibration random|digits]
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "backends"))

SPEC = "specs/resnet18.yaml"
BATCHES = (1, 32)
# seconds between turns: a session with ONNX Runtime's default spinning keeps spinning after run()
# returns and slowed the next model by up to 1.44x (cnnspec.runner.speed.compare's docstring)
SETTLE = 0.05


def build_resnet18(folder: Path) -> Path:
    from cnnspec.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["build", str(ROOT / SPEC), "--backend", "onnx", "--seed", "0", "-o", str(folder), "--quiet"]) == 0
    return folder / "model.onnx"


def calibration_images(kind: str, n: int):
    import numpy as np

    if kind == "random":
        return np.random.default_rng(1).random((n, 3, 224, 224), dtype=np.float32)
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits().images[:n] / 16.0
    out = [np.asarray(Image.fromarray((d * 255).astype(np.uint8)).convert("RGB").resize((224, 224),
                                                                                          Image.Resampling.BILINEAR),
                      np.float32).transpose(2, 0, 1) / 255.0 for d in digits]
    return np.stack(out).astype(np.float32)


def session(model, threads: int | None, spinning: bool = False, arena: bool = True, level=None):
    """A CPU session with cnnspec's settings, one of them changed; ``threads=None``: ONNX Runtime's
    own defaults throughout (what a plain ``InferenceSession(path)`` gets)."""
    import onnxruntime as ort

    from cnnspec.runner.options import session_options

    blob = model if isinstance(model, (bytes, str)) else model.SerializeToString()
    if threads is None:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        return ort.InferenceSession(blob, sess_options=options, providers=["CPUExecutionProvider"])
    options = session_options(threads, spinning=spinning)
    options.enable_cpu_mem_arena = arena
    if level is not None:
        options.graph_optimization_level = level
    return ort.InferenceSession(blob, sess_options=options, providers=["CPUExecutionProvider"])


def fused_ops(model, folder: Path) -> Counter:
    """The op types ONNX Runtime runs after its graph optimisations (what a recipe really became)."""
    import onnx
    import onnxruntime as ort

    path = folder / "optimized.onnx"
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.optimized_model_filepath = str(path)
    ort.InferenceSession(model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"])
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def quantize_all(fp32_path: Path, names, images, folder: Path) -> dict:
    """{name: quantised ModelProto} for every recipe named, and 'dynamic'."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from cnnspec.quantize.calibration import make_reader
    from cnnspec.quantize.fold import fold_batchnorms
    from cnnspec.quantize.quantizer import _quiet_onnxruntime, quantize_static_model
    from cnnspec.quantize.recipes import RECIPES

    fp32 = onnx.load(str(fp32_path))
    out = {}
    for name in names:
        start = time.perf_counter()
        if name == "dynamic":
            folded, _ = fold_batchnorms(fp32)
            onnx.save(folded, str(folder / "folded.onnx"))
            with _quiet_onnxruntime():
                quantize_dynamic(str(folder / "folded.onnx"), str(folder / "dynamic.onnx"),
                                 weight_type=QuantType.QUInt8)
            out[name] = onnx.load(str(folder / "dynamic.onnx"))
        else:
            out[name], _ = quantize_static_model(fp32, make_reader(images, "input"), RECIPES[name])
        print(f"  quantised {name} in {time.perf_counter() - start:.1f} s", flush=True)
    return out


def bench_recipes(args, fp32_path: Path, folder: Path, isa: str) -> None:
    """Every recipe under cnnspec's session settings, and the plain recipe (qdq) and fp32 under ONNX
    Runtime's defaults, all timed in the same rounds."""
    import numpy as np

    from cnnspec.quantize.recipes import DEFAULT_RECIPE, RECIPES, choose_recipe
    from cnnspec.runner.speed import compare, session_step, tile_batch

    names = [n for n in (args.recipes.split(",") if args.recipes else [*RECIPES, "dynamic"]) if n]
    if DEFAULT_RECIPE not in names:
        names.insert(0, DEFAULT_RECIPE)
    images = calibration_images(args.calibration, args.samples)
    print(f"\n1. recipes: calibrated on {len(images)} {args.calibration} images; sessions with cnnspec's settings "
          f"({args.threads} threads, spinning off) unless marked 'ORT defaults'", flush=True)
    models = quantize_all(fp32_path, names, images, folder)
    plain = f"{DEFAULT_RECIPE} (ORT defaults)"
    sessions = {"fp32": session(str(fp32_path), args.threads), "fp32 (ORT defaults)": session(str(fp32_path), None),
                plain: session(models[DEFAULT_RECIPE], None)}
    sessions.update({name: session(m, args.threads) for name, m in models.items()})
    probe = tile_batch(images, 16)
    ref = sessions["fp32"].run(None, {"input": probe})[0]
    rows = {}
    for name in sessions:
        rows[name] = {"int8 convs": "-", "diff": 0.0}
        if name in models:
            ops = fused_ops(models[name], folder)
            convs = sum(ops[k] for k in ("QLinearConv", "ConvInteger"))
            rows[name] = {"int8 convs": f"{convs}/{convs + ops['Conv']}",
                          "diff": float(np.abs(sessions[name].run(None, {"input": probe})[0] - ref).max())}
    rows[plain] = dict(rows[DEFAULT_RECIPE])
    for batch in BATCHES:
        x = tile_batch(images, batch)
        c = compare({n: session_step(s, x) for n, s in sessions.items()}, batch,
                    seconds=args.seconds * len(sessions) * (1 if batch == 1 else 2), rounds=args.rounds,
                    settle=SETTLE)
        for name in sessions:
            rows[name][batch] = (c.ratio(name, "fp32"), c.ratio(name, "fp32 (ORT defaults)"), c.ratio(name, plain),
                                 c.timings[name].images_per_second)
    print(f"\n  {'':<22} {'int8':>6} {'max':>9}  {'--- batch 1: speed relative to ---':^36}  "
          f"{'--- batch 32: speed relative to ---':^36}")
    print(f"  {'model':<22} {'convs':>6} {'|diff|':>9}  {'fp32':>7} {'fp32 ORT':>9} {'plain ORT':>10} {'img/s':>7}  "
          f"{'fp32':>7} {'fp32 ORT':>9} {'plain ORT':>10} {'img/s':>7}   on {isa}")
    for name, row in rows.items():
        cells = "  ".join(f"{row[b][0]:6.2f}x {row[b][1]:8.2f}x {row[b][2]:9.2f}x {row[b][3]:7.1f}" for b in BATCHES)
        print(f"  {name:<22} {row['int8 convs']:>6} {row['diff']:>9.3g}  {cells}")
    print(f"  (logits of this seeded ResNet-18 reach {float(np.abs(ref).max()):.3g}; 'fp32 ORT' and 'plain ORT': "
          f"fp32 and the plain qdq recipe in a session with ONNX Runtime's default settings)")
    chosen, why = choose_recipe(isa)
    print(f"\n  chosen on {isa}: {chosen.name} ({chosen.describe()}) with cnnspec's session settings: {why}")
    for b in BATCHES:
        if chosen.name in rows:
            r = rows[chosen.name][b]
            print(f"  batch {b}: chosen int8 {r[0]:.2f}x fp32 (same settings), {r[1]:.2f}x fp32 at ORT defaults, "
                  f"{r[2]:.2f}x the plain recipe at ORT defaults, on {isa}")


SESSION_VARIANTS = {
    # name: (what is changed from cnnspec's settings, keyword arguments to session())
    "cnnspec": ("threads = usable cores, spinning off, arena on, ORT_ENABLE_ALL", {}),
    "spinning on": ("ONNX Runtime's default spinning", {"spinning": True}),
    "1 thread": ("one intra-op thread", {"threads": 1}),
    "arena off": ("no CPU memory arena", {"arena": False}),
    "extended": ("optimisation level EXTENDED (no NCHWc layout)", {"level": "extended"}),
}


def bench_sessions(args, fp32_path: Path, int8_model, isa: str) -> None:
    import onnxruntime as ort

    from cnnspec.runner.speed import compare, session_step, tile_batch

    print(f"\n2. session settings ({args.threads} threads unless said): images/s relative to cnnspec's settings",
          flush=True)
    levels = {"extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED}
    sessions = {}
    for variant, (_, kw) in SESSION_VARIANTS.items():
        kw = {"threads": args.threads, **kw}
        if "level" in kw:
            kw["level"] = levels[kw["level"]]
        sessions[f"fp32 {variant}"] = session(str(fp32_path), **kw)
        sessions[f"int8 {variant}"] = session(int8_model, **kw)
    images = calibration_images("random", 32)
    for batch in BATCHES:
        x = tile_batch(images, batch)
        c = compare({n: session_step(s, x) for n, s in sessions.items()}, batch,
                    seconds=args.seconds * len(sessions) * (1 if batch == 1 else 2), rounds=args.rounds,
                    settle=SETTLE)
        for variant, (what, _) in SESSION_VARIANTS.items():
            print(f"  b{batch:<3} {variant:<12} fp32 {c.ratio(f'fp32 {variant}', 'fp32 cnnspec'):5.2f}x  "
                  f"int8 {c.ratio(f'int8 {variant}', 'int8 cnnspec'):5.2f}x  int8/fp32 "
                  f"{c.ratio(f'int8 {variant}', f'fp32 {variant}'):5.2f}x on {isa}  ({what})", flush=True)


TORCH_SETUPS = {
    # name: (torch imported before cnnspec_torch, ORT spinning, threads (None: --threads), what it is)
    "as before": (True, True, None, "PyTorch's OpenMP threads wait actively (torch loaded before cnnspec_torch "
                                    "could set OMP_WAIT_POLICY), ORT threads spin"),
    "cnnspec": (False, False, None, "cnnspec's defaults: cnnspec_torch sets OMP_WAIT_POLICY=PASSIVE, ORT "
                                    "spinning off"),
    "1 thread": (False, False, 1, "one thread each: no barrier for a descheduled sibling to hold up"),
}


def bench_torch(args, fp32_path: Path) -> None:
    """Each run a fresh process (as two runs of a benchmark are), so the spread between runs shows."""
    import subprocess

    print(f"\n3. ORT fp32 / PyTorch eager, ResNet-18 batch 1, {args.threads} threads each, {args.repeats} fresh "
          f"processes per setup, {args.rounds} alternating rounds each", flush=True)
    ratios = {name: [] for name in TORCH_SETUPS}
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}  # each setup decides
    for run in range(args.repeats):
        for name, (torch_first, spinning, threads, _) in TORCH_SETUPS.items():
            cmd = [sys.executable, __file__, "--torch-child", str(fp32_path), "--threads", str(threads or args.threads),
                   "--seconds", str(args.seconds), "--rounds", str(args.rounds)] + (["--spinning"] if spinning else [])
            cmd += ["--torch-first"] if torch_first else []
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            ratio, low, high, torch_ms, ort_ms = (float(v) for v in out.split())
            ratios[name].append(ratio)
            print(f"  run {run + 1} {name:<10} ORT/torch {ratio:.2f}x (rounds {low:.2f}-{high:.2f}x; medians torch "
                  f"{torch_ms:.0f} ms, ORT {ort_ms:.0f} ms)", flush=True)
    for name, (*_, what) in TORCH_SETUPS.items():
        r = ratios[name]
        print(f"  {name:<10} ORT/torch {min(r):.2f}x to {max(r):.2f}x over {len(r)} runs "
              f"(median {statistics.median(r):.2f}x; lowest {'>=' if min(r) >= 1.4 else '<'} 1.4x): {what}")


def torch_child(args) -> None:
    """One run: PyTorch eager and ORT fp32 alternating; prints ratio, lowest and highest round, medians."""
    if args.torch_first:
        import torch  # noqa: F401 - libgomp loads before cnnspec_torch could choose its wait policy
    import cnnspec_torch  # noqa: F401 - sets OMP_WAIT_POLICY=PASSIVE unless torch or the user decided
    import numpy as np
    import torch

    import cnnspec
    from cnnspec.runner.speed import compare, session_step

    fp32_path = Path(args.torch_child)
    torch.set_num_threads(args.threads)
    model = cnnspec.load(ROOT / SPEC).to("torch", weights=fp32_path.parent / "weights.safetensors").eval()
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    xt = torch.from_numpy(x)

    def eager():
        with torch.inference_mode():
            model(xt)

    ort_session = session(str(fp32_path), args.threads, spinning=args.spinning)
    c = compare({"torch": eager, "ort": session_step(ort_session, x)}, 1, seconds=args.seconds * 2,
                rounds=args.rounds, settle=SETTLE)
    rounds = [t / o for o, t in zip(c.timings["ort"].round_medians, c.timings["torch"].round_medians)]
    print(c.ratio("ort", "torch"), min(rounds), max(rounds), c.timings["torch"].percentile(50) * 1e3,
          c.timings["ort"].percentile(50) * 1e3)


def main(argv=None) -> int:
    import onnxruntime as ort

    from cnnspec.runner.cpuinfo import int8_isa
    from cnnspec.runner.options import default_threads

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per model and batch size (default 3)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per comparison (default 5)")
    parser.add_argument("--threads", type=int, default=default_threads(), help="intra-op threads (default: usable cores)")
    parser.add_argument("--recipes", default="", help="comma-separated recipes (default: all, and 'dynamic')")
    parser.add_argument("--calibration", choices=("random", "digits"), default="random")
    parser.add_argument("--samples", type=int, default=32, help="calibration images (default 32)")
    parser.add_argument("--skip-sessions", action="store_true", help="skip part 2")
    parser.add_argument("--skip-torch", action="store_true", help="skip part 3 (skipped too without torch)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the torch comparison (default 3)")
    parser.add_argument("--skip-recipes", action="store_true", help="skip part 1")
    parser.add_argument("--torch-child", metavar="MODEL", help=argparse.SUPPRESS)
    parser.add_argument("--spinning", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--torch-first", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.torch_child:
        torch_child(args)
        return 0
    isa = int8_isa()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"onnxruntime {ort.__version__}, CPU int8 instruction set {isa}, {os.cpu_count()} CPUs, "
          f"{args.threads} threads, load average {load:.1f} (ratios are within one run; figures are not)", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-quantize-") as tmp:
        folder = Path(tmp)
        fp32_path = build_resnet18(folder / "resnet18")
        if not args.skip_recipes:
            bench_recipes(args, fp32_path, folder, isa)
        if not args.skip_sessions:
            import onnx

            from cnnspec.quantize.calibration import make_reader
            from cnnspec.quantize.quantizer import quantize_static_model
            from cnnspec.quantize.recipes import choose_recipe

            int8, _ = quantize_static_model(onnx.load(str(fp32_path)),
                                            make_reader(calibration_images("random", args.samples), "input"),
                                            choose_recipe(isa)[0])
            bench_sessions(args, fp32_path, int8, isa)
        if not args.skip_torch and importlib.util.find_spec("torch") is not None:
            bench_torch(args, fp32_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
