"""``cnnspec train`` under torchrun: two processes on this machine (gloo, DistributedDataParallel)
reach a single process's accuracy within noise, and only rank 0 writes anything."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cnnspec.training import CHECKPOINT_FILE, OUTPUT_FILES

pytestmark = [pytest.mark.torch, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
SPEC = """cnnspec: 1
name: dist-digits
input: [1, 8, 8]
layers:
  - conv2d: {filters: 16, kernel: 3, padding: same, activation: relu}
  - maxpool2d: 2
  - flatten
  - dense: {units: 32, activation: relu}
  - dense: 10
"""
# Every file write in cnnspec goes through fsutil; the spy logs which rank asked for one.
SPY = textwrap.dedent("""
    import os, sys
    import cnnspec.files.atomic as fsutil

    def spy(name):
        real = getattr(fsutil, name)
        def wrapped(path, *args, **kwargs):
            with open(os.path.join(os.environ["SPY_DIR"], "writes-rank" + os.environ.get("RANK", "0")), "a") as fh:
                fh.write(f"{name} {path}\\n")
            return real(path, *args, **kwargs)
        setattr(fsutil, name, wrapped)

    for name in ("atomic_write_bytes", "atomic_write_text", "ensure_dir"):
        spy(name)
    from cnnspec.cli import main
    sys.exit(main(sys.argv[1:]))
""")
ARGS = ["--data", "digits", "--epochs", "3", "--batch-size", "32", "--lr", "0.003", "--seed", "1"]


def _run(cmd, tmp_path):
    env = {**os.environ, "SPY_DIR": str(tmp_path), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "backends")])}  # this checkout, backends too
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_two_processes_match_one_and_only_rank_0_writes(tmp_path):
    (tmp_path / "spec.yaml").write_text(SPEC)
    (tmp_path / "spy.py").write_text(SPY)
    _run([sys.executable, "spy.py", "train", "spec.yaml", *ARGS, "--quiet", "-o", "single"], tmp_path)
    (tmp_path / "writes-rank0").rename(tmp_path / "single-writes")
    proc = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                 "spy.py", "train", "spec.yaml", *ARGS, "-o", "dist"], tmp_path)

    single = json.loads((tmp_path / "single" / "metrics.json").read_text())
    dist = json.loads((tmp_path / "dist" / "metrics.json").read_text())
    assert dist["world_size"] == 2 and single["world_size"] == 1
    # one permutation, each global batch of 32 split 16 + 16, gradients averaged by DDP: the same
    # optimisation as one process up to dropout-free float summation order, so the results agree closely
    assert dist["train_images"] == single["train_images"]
    assert dist["history"][0]["train_loss"] == pytest.approx(single["history"][0]["train_loss"], rel=0.02)
    # compared epoch by epoch: the best epoch is a choice on validation scores, which a near-tie may flip
    for one, two in zip(single["history"], dist["history"]):
        assert abs(one["test_accuracy"] - two["test_accuracy"]) <= 0.02, (one, two)
        assert abs(one["val_accuracy"] - two["val_accuracy"]) <= 0.02, (one, two)
    assert dist["history"][-1]["test_accuracy"] > 0.85

    assert not (tmp_path / "writes-rank1").exists(), (tmp_path / "writes-rank1").read_text()
    written = (tmp_path / "writes-rank0").read_text()
    for name in OUTPUT_FILES:
        assert f"/{name}" in written and "/.dist.cnnspec-staging-" in written  # staged beside dist/, then swapped in
    assert sorted(p.name for p in (tmp_path / "dist").iterdir()) == sorted(OUTPUT_FILES + (CHECKPOINT_FILE,))
    assert proc.stderr.count("held-out images") == 1  # progress from rank 0 only
    assert "Grad strides" not in proc.stderr and "Traceback" not in proc.stderr
