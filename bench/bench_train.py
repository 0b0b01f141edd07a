"""Training speed of ``cnnspec train`` (printed in one run; numbers depend on the machine's load).

1. images/s of cnnspec's torch training loop against a hand-written PyTorch loop on the same
   compiled model, same batches, same optimizer (the ratio should be about 1);
2. time to 97% held-out accuracy on scikit-learn's digits with specs/digits.yaml, both backends,
   as a user runs it: the whole ``cnnspec train`` command, imports and export included.

Usage: python bench/bench_train.py [--epochs N] [--rounds R] [--skip-keras]
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


def hand_written_epoch(model, x, y, batches, optimizer):
    """What a person writes: index a batch, forward, cross-entropy, backward, step, .item()."""
    import torch
    import torch.nn.functional as F

    model.train()
    total, correct = 0.0, 0
    for idx in batches:
        index = torch.from_numpy(idx)
        xb, yb = x[index], y[index]
        optimizer.zero_grad()
        out = model(xb)
        loss = F.cross_entropy(out, yb)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
        correct += (out.argmax(1) == yb).sum().item()
    return total, correct


def throughput(rounds: int, epochs: int) -> tuple[float, float]:
    """Median images/s over ``rounds`` alternating runs of each loop, ``epochs`` epochs each."""
    import torch

    import cnnspec
    from cnnspec.data import load_source
    from cnnspec.plugins import load_backend
    from cnnspec.training import EpochBar, TrainConfig, World, epoch_batches, training_head
    from cnnspec_torch.training import make_trainer

    graph = training_head(cnnspec.load(SPEC).graph).train_graph
    data = load_source("digits", graph)
    backend = load_backend("torch")
    config = TrainConfig(epochs=epochs, batch_size=32, seed=0, quiet=True)
    all_batches = [epoch_batches(len(data.y_train), 32, 0, e) for e in range(1, epochs + 1)]
    images = sum(len(i) for b in all_batches for i in b)
    no_bar = EpochBar(0, "", False)

    def run_ours():
        trainer = make_trainer(backend, graph, None, config, World())
        trainer.train_epoch(data.x_train, data.y_train, all_batches[0], no_bar)  # warm-up, untimed
        start = time.perf_counter()
        for batches in all_batches:
            trainer.train_epoch(data.x_train, data.y_train, batches, no_bar)
        return images / (time.perf_counter() - start)

    def run_hand():
        model = backend.compile(graph, seed=0).requires_grad_(True)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
        torch.manual_seed(0)
        hand_written_epoch(model, x, y, all_batches[0], optimizer)  # warm-up, untimed
        start = time.perf_counter()
        for batches in all_batches:
            hand_written_epoch(model, x, y, batches, optimizer)
        return images / (time.perf_counter() - start)

    ours, hand = [], []
    for r in range(rounds):  # alternate the order, so neither loop always runs on a warmer machine
        for fn, out in ((run_ours, ours), (run_hand, hand))[:: 1 if r % 2 == 0 else -1]:
            out.append(fn())
    return statistics.median(ours), statistics.median(hand)


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
    args = parser.parse_args()

    import torch

    print(f"cnnspec train bench: torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    ours, hand = throughput(args.rounds, 3)
    print(f"\n[throughput] digits spec, batch 32, Adam, 3 epochs x {args.rounds} rounds (median), "
          f"{torch.get_num_threads()} torch thread(s) for both")
    print(f"  cnnspec torch loop   {ours:10.0f} images/s")
    print(f"  hand-written loop    {hand:10.0f} images/s")
    print(f"  ratio cnnspec/hand   {ours / hand:10.2f}")

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
