"""Checkpoints and ``--resume`` (issue 11): a run killed with SIGKILL in the middle of an epoch and
resumed ends with the weights, byte for byte, of the run that was never interrupted (torch, keras,
and torch under torchrun); a resume that would change the run is refused in one line naming what
differs; the checkpoint is safetensors with JSON, never a pickle."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cnnspec.cli import main
from cnnspec.training import CHECKPOINT_FILE, TrainConfig, read_checkpoint

ROOT = Path(__file__).resolve().parent.parent
SPEC = """cnnspec: 1
name: resume-digits
input: [1, 8, 8]
layers:
  - conv2d: {filters: 8, kernel: 3, padding: same, activation: relu}
  - batchnorm
  - maxpool2d: 2
  - flatten
  - dropout: 0.2
  - dense: 10
"""
# A real SIGKILL, at a chosen batch of a chosen epoch: the progress bar is advanced once per batch.
KILLER = textwrap.dedent("""
    import os, signal, sys
    import cnnspec.training.loop as loop

    class KillingBar(loop.EpochBar):
        def __init__(self, total, desc, enabled):
            super().__init__(total, desc, enabled)
            self.armed = desc.startswith(os.environ["KILL_EPOCH"]) and os.environ.get("RANK", "0") == "0"
            self.steps = 0

        def update(self, loss, accuracy):
            self.steps += 1
            if self.armed and self.steps == 5:
                os.kill(os.getpid(), signal.SIGKILL)
            super().update(loss, accuracy)

    loop.EpochBar = KillingBar
    from cnnspec.cli import main
    sys.exit(main(sys.argv[1:]))
""")
# every feature that carries state from epoch to epoch: momentum, a schedule, augmentation, dropout, batchnorm
ARGS = ["--data", "digits", "--epochs", "4", "--optimizer", "sgd", "--lr", "0.05", "--schedule", "cosine",
        "--warmup", "1", "--augment", "crop,erase", "--label-smoothing", "0.1", "--seed", "2", "--quiet"]


def _env(tmp_path):
    return {**os.environ, "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "backends")])}


def _run(tmp_path, argv, kill_epoch=None, torchrun=False):
    (tmp_path / "killer.py").write_text(KILLER)
    launcher = [sys.executable] + (["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
                                   if torchrun else [])
    cmd = launcher + (["killer.py"] if kill_epoch else ["-m", "cnnspec.cli"]) + argv
    env = {**_env(tmp_path), "KILL_EPOCH": f"epoch {kill_epoch}/" if kill_epoch else "never"}
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def _kill_and_resume(tmp_path, backend, torchrun=False, args=ARGS, spec=SPEC):
    (tmp_path / "spec.yaml").write_text(spec)
    argv = ["train", "spec.yaml", "--backend", backend, *args]
    whole = _run(tmp_path, argv + ["-o", "whole"], torchrun=torchrun)
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = _run(tmp_path, argv + ["-o", "cut"], kill_epoch=3, torchrun=torchrun)
    assert killed.returncode != 0  # SIGKILL: -9 here, or torchrun's failure
    saved = read_checkpoint(tmp_path / "cut")
    assert saved.epoch == 2 and not (tmp_path / "cut" / "weights.safetensors").exists()
    resumed = _run(tmp_path, ["train", "--resume", "cut"], torchrun=torchrun)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = (tmp_path / "whole" / "weights.safetensors").read_bytes()
    b = (tmp_path / "cut" / "weights.safetensors").read_bytes()
    assert a == b
    strip = lambda m: [{k: v for k, v in h.items() if k not in ("seconds", "images_per_second")}  # noqa: E731
                       for h in m["history"]]
    one, two = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("whole", "cut"))
    assert strip(one) == strip(two) and two["resumed_from"] == "cut"
    return tmp_path


@pytest.mark.torch
def test_torch_killed_in_epoch_3_resumes_to_the_same_bytes(tmp_path):
    _kill_and_resume(tmp_path, "torch")
    # the checkpoint is safetensors + JSON: its header parses as JSON, and no pickle opcode starts it
    blob = (tmp_path / "cut" / CHECKPOINT_FILE).read_bytes()
    header = json.loads(blob[8:8 + int.from_bytes(blob[:8], "little")])
    meta = json.loads(header["__metadata__"]["cnnspec.checkpoint"])
    assert meta["epoch"] == 4 and meta["record"]["settings"]["schedule"] == "cosine"
    assert any(k.startswith("trainer/optim.") for k in header) and "trainer/rng.cpu" in header
    assert any(k.startswith("best/") for k in header)


@pytest.mark.keras
@pytest.mark.slow
@pytest.mark.xdist_group("keras")
def test_keras_killed_in_epoch_3_resumes_to_the_same_bytes(tmp_path):
    _kill_and_resume(tmp_path, "keras")


@pytest.mark.torch
@pytest.mark.slow
def test_torchrun_killed_in_epoch_3_resumes_to_the_same_bytes(tmp_path):
    _kill_and_resume(tmp_path, "torch", torchrun=True)
    saved = read_checkpoint(tmp_path / "cut")
    assert saved.trainer_tensors["rng.cpu"].shape[0] == 2  # every rank's dropout generator


# ---------------------------------------------------------------- refusals and hints (in-process)

@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    (root / "spec.yaml").write_text(SPEC)
    assert main(["train", str(root / "spec.yaml"), "--data", "digits", "--epochs", "2", "--quiet",
                 "-o", str(root / "run")]) == 0
    return root


@pytest.mark.torch
@pytest.mark.parametrize("extra, message", [
    (["--epochs", "1"], "the run has already trained 2 epochs"),  # more epochs carry on: tests/test_newcomer.py
    (["--optimizer", "sgd"], "--optimizer (adam in the checkpoint, sgd now)"),
    (["--augment", "flip"], "--augment ([] in the checkpoint, ['flip'] now)"),
    (["--backend", "keras"], "backend (torch in the checkpoint, keras now)"),
    (["SPEC2"], "the spec's contents (digest"),
    (["--data", "NPZ"], "the data (digest"),
    (["-o", "elsewhere"], "a resumed run writes into its own folder"),
])
def test_a_resume_that_changes_the_run_is_refused_in_one_line(finished, capsys, extra, message):
    import cnnspec
    from cnnspec.data.sources import load_source

    if "SPEC2" in extra:
        (finished / "spec2.yaml").write_text(SPEC.replace("filters: 8", "filters: 6"))
        extra = [str(finished / "spec2.yaml")]
    if "NPZ" in extra:
        d = load_source("digits", cnnspec.loads(SPEC).graph)
        np.savez(finished / "d.npz", x_train=d.x_train, y_train=d.y_train, x_test=d.x_test[:-1], y_test=d.y_test[:-1])
        extra = ["--data", str(finished / "d.npz")]
    capsys.readouterr()
    assert main(["train", "--resume", str(finished / "run"), "--quiet", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert json.loads((finished / "run" / "metrics.json").read_text())["epochs"] == 2  # untouched


@pytest.mark.torch
def test_resume_with_the_same_explicit_defaults_and_of_a_finished_run(finished, capsys):
    """Explicit defaults equal omitted ones; a finished run resumes to the same outputs, training nothing."""
    before = (finished / "run" / "weights.safetensors").read_bytes()
    assert main(["train", "--resume", str(finished / "run"), "--lr", "0.001", "--weight-decay", "0",
                 "--schedule", "constant"]) == 0
    assert (finished / "run" / "weights.safetensors").read_bytes() == before
    assert "epoch 1/2" not in capsys.readouterr().err


@pytest.mark.parametrize("target, message", [
    ("weights", "use --init"), ("nowhere", "no such run folder"), ("empty", f"no {CHECKPOINT_FILE} there"),
])
def test_resume_hints(tmp_path, capsys, target, message):
    from safetensors.numpy import save_file

    save_file({"a": np.zeros(2, np.float32)}, str(tmp_path / "weights.safetensors"))
    (tmp_path / "empty").mkdir()
    path = {"weights": tmp_path / "weights.safetensors", "nowhere": tmp_path / "nope", "empty": tmp_path / "empty"}
    assert main(["train", "--resume", str(path[target]), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_a_run_stopped_by_patience_resumes_without_training_more(tmp_path, monkeypatch):
    from test_train import FakeBackend, ScriptedTrainer

    import cnnspec.backend.plugins
    from cnnspec.training import train

    made = []
    monkeypatch.setattr(cnnspec.backend.plugins, "load_backend", lambda name: FakeBackend())
    monkeypatch.setattr(FakeBackend, "make_trainer", lambda b, g, w, c, world: made.append(
        ScriptedTrainer(g, [(1.0, 0.9), (1.0, 0.5), (1.0, 0.5), (1.0, 0.99)])) or made[-1], raising=False)
    (tmp_path / "spec.yaml").write_text(SPEC)
    config = TrainConfig(epochs=4, patience=2, quiet=True)
    first = train(str(tmp_path / "spec.yaml"), "fake", "digits", config, tmp_path / "o").metrics
    assert first["epochs_run"] == 3 and first["stopped_early"]
    again = train(str(tmp_path / "spec.yaml"), "fake", "digits", config, resume=tmp_path / "o").metrics
    assert made[1].plans == [] and again["epochs_run"] == 3 and again["stop_reason"] == first["stop_reason"]
    assert made[1].epoch == 3  # the trainer's state came back from the checkpoint
