"""Training speed of ``cnnspec train`` (printed in one run; numbers depend on the machine's load).

1. images/s of cnnspec's torch training loop against a hand-written PyTorch loop on the same
   compiled model, same batches, same optimizer (the ratio should be about 1), plain and with a
   cosine schedule with warm-up and augmentation (crop, flip, jitter) on, the hand-written loop
   setting the same per-step LR and calling the same numpy transforms;
2. bf16 autocast against fp32 images/s of cnnspec's torch loop on this CPU;
3. time to 97% held-out accuracy on scikit-learn's digits with specs/digits.yaml, both backends,
   as a user runs it: the whole ``cnnspec train`` command, imports and export included.

Usage: python bench/bench_train.py [--epochs N] [--rounds R] [--skip-keras] [--skip-bf16]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "digits.yaml"
TARGET = 0.97


def hand_written_epoch(model, x, y, batches, optimizer, lrs=None, augment=None):
    """What a person writes: index a batch (augment it), set the LR, forward, cross-entropy,
    backward, step, .item()."""
    import torch
    import torch.nn.functional as F

    model.train()
    total, correct = 0.0, 0
    for step, idx in enumerate(batches):
        index = torch.from_numpy(idx)
        xb = x[index] if augment is None else torch.from_numpy(augment(step, x.numpy()[idx]))
        yb = y[index]
        if lrs is not None:
            for group in optimizer.param_groups:
                group["lr"] = lrs[step]
        optimizer.zero_grad()
        out = model(xb)
        loss = F.cross_entropy(out, yb)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
        correct += (out.argmax(1) == yb).sum().item()
    return total, correct


def throughput(rounds: int, epochs: int, extras: bool = False) -> tuple[float, float]:
    """Median images/s over ``rounds`` alternating runs of each loop, ``epochs`` epochs each.
    ``extras``: a cosine schedule with one warm-up epoch and crop, flip and jitter augmentation."""
    from functools import partial

    import torch
    from cnnspec_torch.training import make_trainer

    import cnnspec
    from cnnspec.backend.plugins import load_backend
    from cnnspec.data.sources import load_source
    from cnnspec.training import (Augmenter, EpochBar, EpochPlan, TrainConfig, World, epoch_batches,
                                  schedule_for, training_head)

    graph = training_head(cnnspec.load(SPEC).graph).train_graph
    data = load_source("digits", graph)
    backend = load_backend("torch")
    config = (TrainConfig(epochs=epochs, batch_size=32, seed=0, quiet=True, schedule="cosine", warmup=1,
                          augment=("crop", "flip", "jitter")) if extras
              else TrainConfig(epochs=epochs, batch_size=32, seed=0, quiet=True))
    all_batches = [epoch_batches(len(data.y_train), 32, 0, e) for e in range(1, epochs + 1)]
    schedule = schedule_for(config, len(all_batches[0]))
    augmenter = Augmenter(config.augment, 0) if config.augment else None
    plans = [EpochPlan(e, b, schedule.epoch_lrs(e), partial(augmenter.batch, e) if augmenter else None)
             for e, b in enumerate(all_batches, 1)]
    images = sum(len(i) for b in all_batches for i in b)
    no_bar = EpochBar(0, "", False)

    def run_ours():
        trainer = make_trainer(backend, graph, None, config, World())
        trainer.train_epoch(data.x_train, data.y_train, plans[0], no_bar)  # warm-up, untimed
        start = time.perf_counter()
        for plan in plans:
            trainer.train_epoch(data.x_train, data.y_train, plan, no_bar)
        return images / (time.perf_counter() - start)

    def run_hand():
        model = backend.compile(graph, seed=0).requires_grad_(True)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
        torch.manual_seed(0)
        hand_written_epoch(model, x, y, all_batches[0], optimizer)  # warm-up, untimed
        start = time.perf_counter()
        for plan in plans:
            hand_written_epoch(model, x, y, plan.batches, optimizer, plan.lrs if extras else None, plan.augment)
        return images / (time.perf_counter() - start)

    ours, hand = [], []
    for r in range(rounds):  # alternate the order, so neither loop always runs on a warmer machine
        for fn, out in ((run_ours, ours), (run_hand, hand))[:: 1 if r % 2 == 0 else -1]:
            out.append(fn())
    return statistics.median(ours), statistics.median(hand)


def precision_throughput(rounds: int, epochs: int) -> dict:
    """Median images/s of cnnspec's torch loop per --precision on the CPU (fp32, bf16), alternating."""
    from cnnspec_torch.training import make_trainer

    import cnnspec
    from cnnspec.backend.plugins import load_backend
    from cnnspec.data.sources import load_source
    from cnnspec.training import EpochBar, EpochPlan, TrainConfig, World, epoch_batches, training_head

    graph = training_head(cnnspec.load(SPEC).graph).train_graph
    data = load_source("digits", graph)
    backend = load_backend("torch")
    plans = [EpochPlan(e, epoch_batches(len(data.y_train), 32, 0, e), (1e-3,) * 1000) for e in range(1, epochs + 1)]
    images = sum(len(i) for p in plans for i in p.batches)
    no_bar = EpochBar(0, "", False)
    speeds = {"fp32": [], "bf16": []}
    for r in range(rounds):
        for precision in list(speeds)[:: 1 if r % 2 == 0 else -1]:
            trainer = make_trainer(backend, graph, None, TrainConfig(precision=precision), World())
            trainer.train_epoch(data.x_train, data.y_train, plans[0], no_bar)  # warm-up, untimed
            start = time.perf_counter()
            for plan in plans:
                trainer.train_epoch(data.x_train, data.y_train, plan, no_bar)
            speeds[precision].append(images / (time.perf_counter() - start))
            trainer.close()
    return {k: statistics.median(v) for k, v in speeds.items()}


def time_to_target(backend: str, epochs: int) -> dict:
    """Run the CLI as a user would; wall-clock of the whole command, and when 97% was first reached."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "cnnspec", "train", str(SPEC), "--backend", backend, "--data", "digits",
               "--epochs", str(epochs), "--quiet", "-o", tmp]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        wall = time.perf_counter() - start
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
        metrics = json.loads(Path(tmp, "metrics.json").read_text())
    reached, elapsed = None, 0.0
    for row in metrics["history"]:
        elapsed += row["seconds"]
        if row["test_accuracy"] >= TARGET:
            reached = (row["epoch"], elapsed)
            break
    return {"wall": wall, "accuracy": metrics["test_accuracy"], "best_epoch": metrics["best_epoch"],
            "reached": reached, "ips": metrics["images_per_second"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-keras", action="store_true")
    parser.add_argument("--skip-bf16", action="store_true")
    args = parser.parse_args()

    import torch

    print(f"cnnspec train bench: torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    for extras, label in ((False, "constant LR, no augmentation"),
                          (True, "cosine schedule + warm-up, augment crop,flip,jitter")):
        ours, hand = throughput(args.rounds, 3, extras)
        print(f"\n[throughput] digits spec, batch 32, Adam, {label}, 3 epochs x {args.rounds} rounds (median), "
              f"{torch.get_num_threads()} torch thread(s) for both")
        print(f"  cnnspec torch loop   {ours:10.0f} images/s")
        print(f"  hand-written loop    {hand:10.0f} images/s")
        print(f"  ratio cnnspec/hand   {ours / hand:10.2f}  (target >= 0.95: {'met' if ours / hand >= 0.95 else 'MISSED'})")

    if not args.skip_bf16:
        speeds = precision_throughput(max(1, args.rounds // 2), 1)
        print(f"\n[precision] cnnspec torch loop on this CPU, digits spec, batch 32, 1 epoch x "
              f"{max(1, args.rounds // 2)} rounds (median)")
        for precision, ips in speeds.items():
            print(f"  {precision}   {ips:10.0f} images/s")
        print(f"  ratio bf16/fp32 {speeds['bf16'] / speeds['fp32']:8.2f}  (a CPU without native bf16 "
              f"instructions emulates it)")

    print(f"\n[time to {TARGET:.0%}] specs/digits.yaml on digits, {args.epochs} epochs, whole command")
    for backend in ("torch",) + (() if args.skip_keras else ("keras",)):
        r = time_to_target(backend, args.epochs)
        reached = (f"epoch {r['reached'][0]}, {r['reached'][1]:.1f}s of training" if r["reached"]
                   else f"not reached in {args.epochs} epochs")
        print(f"  {backend:6s} best {r['accuracy']:.4f} (epoch {r['best_epoch']}); {TARGET:.0%} at {reached}; "
              f"whole command {r['wall']:.1f}s; {r['ips']:.0f} images/s; "
              f"target <120s: {'met' if r['reached'] and r['wall'] < 120 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
