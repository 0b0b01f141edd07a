"""``cnnspec train``'s options (issue 11): the learning rate of every step against the formula and
against PyTorch's own schedulers, the optimizers and label smoothing in both backends, defaults that
train exactly as before, patience, and the outputs (history.csv, per-class scores, the confusion
matrix, train.yaml read back by --config)."""
from __future__ import annotations

import csv
import json
import math
import os

import numpy as np
import pytest
from train_specs import TINY_WITH_DROPOUT as TINY  # noqa: E402
from train_specs import write  # noqa: E402

import cnnspec
from cnnspec.cli import main
from cnnspec.errors import UsageError
from cnnspec.training import (EpochBar, EpochPlan, Schedule, TrainConfig, World, confusion, epoch_batches,
                              patience_stop, per_class, read_config, schedule_for, to_yaml)
from cnnspec.training.settings import config_from

# ---------------------------------------------------------------- the schedule, framework-free

def formula(kind, lr, s, T, W, spe, every=1, gamma=0.1):
    """The README's formulas, written out again independently of cnnspec.training.schedule."""
    if kind != "onecycle" and s < W:
        return lr * (s + 1) / W
    if kind == "constant":
        return lr
    if kind == "step":
        return lr * gamma ** (s // (spe * every))
    if kind == "cosine":
        return lr * 0.5 * (1 + math.cos(math.pi * (s - W) / (T - W)))
    peak = (W or round(0.3 * T)) - 1
    lo, hi, end = lr / 25, lr, lr / 25 / 1e4
    if s <= peak:
        return hi + (lo - hi) * (1 + math.cos(math.pi * s / peak)) / 2
    return end + (hi - end) * (1 + math.cos(math.pi * (s - peak) / (T - 1 - peak))) / 2


@pytest.mark.parametrize("kind, warmup, every, gamma", [
    ("constant", 0, 1, 0.1), ("constant", 2, 1, 0.1), ("step", 0, 2, 0.5), ("step", 1, 3, 0.1),
    ("cosine", 0, 1, 0.1), ("cosine", 1.5, 1, 0.1), ("onecycle", 0, 1, 0.1), ("onecycle", 2, 1, 0.1),
])
def test_every_step_lr_is_the_formula(kind, warmup, every, gamma):
    config = TrainConfig(epochs=6, lr=0.05, schedule=kind, warmup=warmup,
                         step_size=every if kind == "step" else None, gamma=gamma if kind == "step" else None)
    config.validate(World())
    spe = 7
    schedule = schedule_for(config, spe)
    T, W = 6 * spe, round(warmup * spe)
    lrs = [lr for epoch in range(1, 7) for lr in schedule.epoch_lrs(epoch)]
    assert len(lrs) == T
    assert lrs == pytest.approx([formula(kind, 0.05, s, T, W, spe, every, gamma) for s in range(T)], rel=1e-12)
    if W and kind != "onecycle":
        assert lrs[W - 1] == 0.05 and lrs[0] == pytest.approx(0.05 / W)  # warm-up ends at the peak
    assert max(lrs) <= 0.05 + 1e-15


def test_schedules_equal_pytorchs_own():
    torch = pytest.importorskip("torch")
    T, spe = 60, 6
    cases = [("cosine", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=T)),
             ("step", lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3 * spe, gamma=0.1)),
             ("onecycle", lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=T,
                                                                         cycle_momentum=False))]
    for kind, make in cases:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        theirs = make(opt)
        ours = Schedule(kind, 0.1, 10, spe, drop_every=3)
        for s in range(T):
            assert ours.lr_at(s) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9, abs=1e-15), (kind, s)
            opt.step()
            theirs.step()


@pytest.mark.parametrize("changes, message", [
    ({"schedule": "linear"}, "--schedule"), ({"warmup": 10}, "--warmup"), ({"warmup": -1}, "--warmup"),
    ({"step_size": 2}, "--step-size applies to --schedule step"), ({"gamma": 0.5}, "--gamma applies"),
    ({"schedule": "step", "gamma": 0}, "--gamma must be"), ({"weight_decay": -0.1}, "--weight-decay"),
    ({"momentum": 0.5}, "--momentum applies to --optimizer sgd only"), ({"nesterov": True}, "--nesterov applies"),
    ({"optimizer": "sgd", "momentum": 0, "nesterov": True}, "--nesterov needs a momentum"),
    ({"label_smoothing": 1.0}, "--label-smoothing"), ({"patience": 0}, "--patience must be"),
    ({"precision": "fp8"}, "--precision must be"), ({"precision": "fp16"}, "runs on cuda only"),
    ({"augment": ("crop", "spin")}, "unknown transform 'spin'"), ({"augment": ("flip", "flip")}, "twice"),
])
def test_config_refuses_each_bad_option(changes, message):
    with pytest.raises(UsageError, match=message):
        TrainConfig(**changes).validate(World())


def test_option_defaults_are_todays():
    c = TrainConfig()
    assert (c.optimizer, c.learning_rate, c.decay, c.schedule, c.warmup, c.label_smoothing, c.precision,
            c.augment, c.patience) == ("adam", 1e-3, 0.0, "constant", 0.0, 0.0, "fp32", (), None)
    assert TrainConfig(optimizer="sgd").sgd_momentum == 0.9 and TrainConfig(optimizer="adamw").decay == 0.01
    assert schedule_for(c, 5).epoch_lrs(3) == (1e-3,) * 5  # exactly the constant, every step


# ---------------------------------------------------------------- patience and scores, framework-free

def rows(*val_accs):
    return [{"epoch": i + 1, "val_accuracy": a} for i, a in enumerate(val_accs)]


def test_patience_counts_epochs_since_the_best_validation_accuracy():
    assert patience_stop(rows(0.5, 0.8, 0.7), 2) is None
    reason = patience_stop(rows(0.5, 0.8, 0.7, 0.8), 2)  # equal is not better
    assert reason.startswith("stopped early after epoch 4") and "best 0.8000 at epoch 2" in reason
    assert patience_stop(rows(0.5, 0.8, 0.9), 1) is None
    assert patience_stop(rows(0.9, 0.1), None) is None
    assert "has not improved for 1 epoch (--patience 1;" in patience_stop(rows(0.9, 0.1), 1)  # not '1 epochs'
    assert "has not improved for 2 epochs (" in reason


def test_per_class_scores_from_a_confusion_matrix():
    m = confusion([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 1, 1], 4)
    assert m.tolist() == [[2, 1, 0, 0], [0, 2, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    scores = per_class(m, ["a", "b", "c", "d"])
    assert scores[0] == {"class": 0, "label": "a", "precision": 1.0, "recall": pytest.approx(2 / 3, abs=1e-6),
                         "f1": 0.8, "support": 3}
    assert scores[1]["precision"] == 0.5 and scores[1]["recall"] == 1.0
    assert scores[2] == {"class": 2, "label": "c", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    sklearn = pytest.importorskip("sklearn.metrics")
    p, r, f, s = sklearn.precision_recall_fscore_support([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 1, 1], labels=[0, 1, 2],
                                                         zero_division=0)
    assert [x["f1"] for x in scores[:3]] == pytest.approx(list(f), abs=1e-6)


def test_train_yaml_round_trips_every_setting(tmp_path):
    config = TrainConfig(epochs=7, optimizer="sgd", momentum=0.8, nesterov=True, schedule="step", step_size=2,
                         gamma=0.5, warmup=1, weight_decay=5e-4, label_smoothing=0.1, patience=3,
                         augment=("crop", "erase"), lr=1e-05, seed=4)
    text = to_yaml({"spec": "a b.yaml", "backend": "keras", "data": "digits", "output": "runs/x", "init": None}, config,
                   folder=tmp_path)  # where the file goes: its paths are written relative to it
    (tmp_path / "train.yaml").write_text(text)
    values = read_config(tmp_path / "train.yaml")
    assert config_from(values) == config
    # paths are read relative to the file's own folder (issue 22: --config works from any directory)
    # the same files, wherever the file is read from
    assert values["spec"] == os.path.abspath("a b.yaml") and values["backend"] == "keras" and values["init"] is None
    assert values["data"] == "digits" and values["output"] == os.path.abspath("runs/x")
    plain = to_yaml({"spec": "s.yaml", "backend": "torch", "data": "digits"}, TrainConfig())
    assert "lr: null  # adam's default: 0.001" in plain  # defaults that follow the optimizer stay null


@pytest.mark.parametrize("text, message", [
    ("epochs: 3\nlearning_rate: 0.1\n", "unknown setting 'learning_rate'"),
    ("epoch: 3\n", "did you mean 'epochs'"),
    ("epochs: three\n", "'epochs' must be a whole number"),
    ("nesterov: 1\n", "'nesterov' must be true or false"),
    ("- epochs\n", "must be a mapping"),
    ("epochs: [\n", "not valid YAML"),
])
def test_bad_config_files_are_one_line(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(UsageError, match=message):
        read_config(tmp_path / "bad.yaml")


# ---------------------------------------------------------------- patience through the loop (a scripted backend)

from test_train import fake  # noqa: E402,F401  the scripted backend fixture, shared


def test_patience_stops_at_the_right_epoch_and_says_why(tmp_path, fake, capsys):
    fake.script = [(1.0, 0.5), (0.9, 0.8), (0.8, 0.7), (0.7, 0.8), (0.6, 0.95), (0.5, 0.99)]
    assert main(["train", write(tmp_path, TINY), "--backend", "fake", "--data", "digits", "--epochs", "6",
                 "--patience", "2", "-o", str(tmp_path / "o")]) == 0
    out, err = capsys.readouterr()
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 4 and metrics["stopped_early"] and metrics["best_epoch"] == 2
    assert metrics["stop_reason"].startswith("stopped early after epoch 4: validation accuracy has not improved "
                                             "for 2 epochs")
    assert "stopped early after epoch 4" in out and "stopped early after epoch 4" in err
    assert len(fake.made[0].plans) == 4
    assert [r["epoch"] for r in csv.DictReader(open(tmp_path / "o" / "history.csv"))] == ["1", "2", "3", "4"]


def test_every_epoch_plan_carries_the_schedule(tmp_path, fake):
    from cnnspec.training import train

    fake.script = [(1.0, 0.5)] * 4
    config = TrainConfig(epochs=4, lr=0.02, schedule="cosine", warmup=1, quiet=True)
    metrics = train(write(tmp_path, TINY), "fake", "digits", config, tmp_path / "o").metrics
    plans = fake.made[0].plans
    schedule = schedule_for(config, len(plans[0].batches))
    assert [p.lrs for p in plans] == [schedule.epoch_lrs(e) for e in range(1, 5)]
    assert [h["lr"] for h in metrics["history"]] == [p.lrs[0] for p in plans]
    assert all(p.augment is None for p in plans)  # nothing augmented unless asked


# ---------------------------------------------------------------- torch

def reference_torch_run(spec, epochs, seed):
    """The loop `cnnspec train` ran before issue 11 (Adam 1e-3, constant, no smoothing), written out
    by hand: the default flags must train exactly this, bit for bit."""
    import torch
    import torch.nn.functional as F

    from cnnspec.backend.plugins import load_backend
    from cnnspec.data.sources import load_source

    graph = cnnspec.load(spec).graph
    data = load_source("digits", graph)
    backend = load_backend("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = backend.compile(graph, seed=seed).requires_grad_(True).train()
        torch.manual_seed(seed * 1000)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
        for epoch in range(1, epochs + 1):
            for idx in epoch_batches(len(data.y_train), 32, seed, epoch):
                index = torch.from_numpy(idx)
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x[index]), y[index]).backward()
                opt.step()
        return backend.get_weights(model, graph)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.torch
class TestTorchOptions:
    def test_default_flags_train_exactly_as_before(self, tmp_path):
        from cnnspec.weights.safetensors_io import read_weights

        spec = write(tmp_path, TINY)
        argv = ["train", spec, "--data", "digits", "--epochs", "2", "--seed", "3", "--val-fraction", "0", "--quiet"]
        assert main(argv + ["-o", str(tmp_path / "a")]) == 0
        assert main(argv + ["-o", str(tmp_path / "b"), "--schedule", "constant", "--warmup", "0", "--weight-decay",
                            "0", "--label-smoothing", "0", "--precision", "fp32", "--augment", "none",
                            "--optimizer", "adam"]) == 0
        a, b = ((tmp_path / n / "weights.safetensors").read_bytes() for n in "ab")
        assert a == b
        ours = read_weights(tmp_path / "a" / "weights.safetensors", cnnspec.load(spec).graph)
        theirs = reference_torch_run(spec, 2, 3)
        assert all(np.array_equal(ours[k], theirs[k]) for k in theirs)

    def test_the_trainer_steps_with_the_plans_lr_and_the_asked_optimizer(self):
        import torch
        from cnnspec_torch.training import make_trainer

        from cnnspec.backend.plugins import load_backend
        from cnnspec.data.sources import load_source

        graph = cnnspec.loads(TINY).graph
        data = load_source("digits", graph)
        backend = load_backend("torch")
        config = TrainConfig(epochs=3, optimizer="sgd", momentum=0.8, nesterov=True, weight_decay=1e-3,
                             schedule="onecycle", lr=0.05)
        trainer = make_trainer(backend, graph, None, config, World())
        try:
            opt = trainer.optimizer
            assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.8
            assert opt.defaults["nesterov"] and opt.defaults["weight_decay"] == 1e-3
            seen = []
            real_step = opt.step
            opt.step = lambda *a, **k: (seen.append(opt.param_groups[0]["lr"]), real_step(*a, **k))[1]
            batches = epoch_batches(len(data.y_train), 32, 0, 2)[:5]
            lrs = schedule_for(config, len(epoch_batches(len(data.y_train), 32, 0, 1))).epoch_lrs(2)[:5]
            trainer.train_epoch(data.x_train, data.y_train, EpochPlan(2, batches, lrs), EpochBar(0, "", False))
            assert seen == list(lrs) and len(set(lrs)) == 5
        finally:
            trainer.close()
        for name, cls, decay in (("adamw", torch.optim.AdamW, 0.01), ("adam", torch.optim.Adam, 0.0)):
            t = make_trainer(backend, graph, None, TrainConfig(optimizer=name), World())
            assert type(t.optimizer) is cls and t.optimizer.defaults["weight_decay"] == decay
            t.close()

    def test_outputs_history_per_class_confusion_and_config_round_trip(self, tmp_path, capsys):
        spec = write(tmp_path, TINY)
        out = tmp_path / "a"
        assert main(["train", spec, "--data", "digits", "--epochs", "3", "--schedule", "cosine", "--warmup", "1",
                     "--label-smoothing", "0.1", "--optimizer", "adamw", "--lr", "0.005", "--quiet",
                     "-o", str(out)]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        history = list(csv.DictReader(open(out / "history.csv")))
        assert [int(r["epoch"]) for r in history] == [1, 2, 3]
        assert [float(r["test_accuracy"]) for r in history] == [h["test_accuracy"] for h in metrics["history"]]
        assert float(history[0]["lr"]) < 0.005 / 10 and float(history[1]["lr"]) == 0.005  # warm-up, then the peak
        m = np.array(metrics["confusion_matrix"])
        assert m.shape == (10, 10) and m.sum() == metrics["test_images"]
        assert m.trace() / m.sum() == pytest.approx(metrics["test_accuracy"])
        assert [c["support"] for c in metrics["per_class"]] == m.sum(axis=1).tolist()
        assert [c["label"] for c in metrics["per_class"]] == [str(i) for i in range(10)]
        # the exported model's own predictions give the same matrix (within a near-tie or two)
        from test_train import run_onnx

        from cnnspec.data.sources import load_source

        data = load_source("digits", cnnspec.load(spec).graph)
        scores, _ = run_onnx(out / "model.onnx", data.x_test)
        assert np.abs(confusion(data.y_test, scores.argmax(1), 10) - m).sum() <= 2
        assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        # train.yaml repeats the run exactly; a flag given beside --config wins
        assert main(["train", "--config", str(out / "train.yaml"), "-o", str(tmp_path / "b"), "--quiet"]) == 0
        assert (out / "weights.safetensors").read_bytes() == (tmp_path / "b" / "weights.safetensors").read_bytes()
        assert main(["train", "--config", str(out / "train.yaml"), "-o", str(tmp_path / "c"), "--epochs", "2",
                     "--quiet"]) == 0
        again = json.loads((tmp_path / "c" / "metrics.json").read_text())
        assert again["epochs"] == 2 and again["schedule"] == "cosine" and again["optimizer"] == "adamw"
        assert "epochs: 2" in (tmp_path / "c" / "train.yaml").read_text()

    def test_options_change_the_run(self, tmp_path):
        spec = write(tmp_path, TINY)
        base = ["train", spec, "--data", "digits", "--epochs", "1", "--quiet", "--val-fraction", "0"]
        variants = {"plain": [], "smooth": ["--label-smoothing", "0.2"], "decay": ["--weight-decay", "0.05"],
                    "onecycle": ["--schedule", "onecycle"], "nesterov": ["--optimizer", "sgd", "--nesterov"]}
        blobs = {}
        for name, extra in variants.items():
            assert main(base + extra + ["-o", str(tmp_path / name)]) == 0
            blobs[name] = (tmp_path / name / "weights.safetensors").read_bytes()
        assert len(set(blobs.values())) == len(blobs)


# ---------------------------------------------------------------- keras

@pytest.mark.keras
@pytest.mark.xdist_group("keras")
class TestKerasOptions:
    def test_keras_steps_with_the_plans_lr_and_smooths_as_torch_does(self):
        import keras
        from cnnspec_keras.training import make_trainer

        from cnnspec.backend.plugins import load_backend
        from cnnspec.data.sources import load_source

        graph = cnnspec.loads(TINY).graph
        data = load_source("digits", graph)
        config = TrainConfig(optimizer="sgd", nesterov=True, momentum=0.7, label_smoothing=0.15)
        trainer = make_trainer(load_backend("keras"), graph, None, config, World())
        assert isinstance(trainer.optimizer, keras.optimizers.SGD) and trainer.optimizer.nesterov
        assert trainer.optimizer.momentum == 0.7
        batches = epoch_batches(len(data.y_train), 32, 0, 1)[:3]
        for lr in (0.01, 0.003, 0.0007):  # one step each: the optimizer holds that step's lr
            trainer.train_epoch(data.x_train, data.y_train, EpochPlan(1, batches[:1], (lr,)), EpochBar(0, "", False))
            assert float(trainer.optimizer.learning_rate) == pytest.approx(lr, rel=1e-6)
        assert int(trainer.optimizer.iterations) == 3
        rng = np.random.default_rng(0)
        logits, labels = rng.normal(size=(6, 10)).astype(np.float32), rng.integers(0, 10, 6)
        ours = float(trainer._loss_sum(labels, logits)) / 6
        torch = pytest.importorskip("torch")
        theirs = float(torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels),
                                                         label_smoothing=0.15))
        assert ours == pytest.approx(theirs, rel=1e-5)
        adamw = make_trainer(load_backend("keras"), graph, None, TrainConfig(optimizer="adamw"), World())
        assert isinstance(adamw.optimizer, keras.optimizers.AdamW) and adamw.optimizer.weight_decay == 0.01

    def test_keras_schedule_and_outputs(self, tmp_path):
        spec = write(tmp_path, TINY)
        out = tmp_path / "k"
        assert main(["train", spec, "--backend", "keras", "--data", "digits", "--epochs", "2", "--schedule", "step",
                     "--step-size", "1", "--gamma", "0.5", "--weight-decay", "1e-4", "--lr", "0.01", "--quiet",
                     "-o", str(out)]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert [h["lr"] for h in metrics["history"]] == [0.01, 0.005]
        assert np.array(metrics["confusion_matrix"]).sum() == metrics["test_images"]
        assert len(metrics["per_class"]) == 10 and metrics["test_accuracy"] > 0.5
        assert "schedule: step" in (out / "train.yaml").read_text()
