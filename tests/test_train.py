"""``cnnspec train``: the framework-free decisions (loss head, batches, sharding), then short real
trainings on digits with each backend: every output file, the ONNX model's labels and accuracy,
the softmax head, determinism, resume, and one clear line for every input that does not fit."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from train_specs import TINY_WITH_DROPOUT as TINY  # noqa: E402
from train_specs import write  # noqa: E402

import cnnspec
from cnnspec.cli import main
from cnnspec.data.sources import load_source
from cnnspec.errors import UsageError
from cnnspec.training import (CHECKPOINT_FILE, OUTPUT_FILES, TrainConfig, World, epoch_batches,
                              export_labels, training_head, world_from_env)

TIMING = ("seconds", "images_per_second", "train_seconds")


def without_timing(metrics: dict) -> dict:
    strip = lambda d: {k: v for k, v in d.items() if k not in TIMING}  # noqa: E731
    return {**strip(metrics), "history": [strip(h) for h in metrics["history"]]}


# ---------------------------------------------------------------- framework-free decisions

@pytest.mark.parametrize("tail, trained_output, trained_op, activation, note", [
    ("  - dense: 10\n", "dense_1", "dense", None, "outputs logits"),
    ("  - dense: 10\n  - softmax\n", "dense_1", "dense", None, "ends in softmax"),
    ("  - dense: {units: 10, activation: softmax}\n", "dense_1", "dense", None, "pre-softmax logits"),
    ("  - dense: {units: 10, activation: relu}\n", "dense_1", "dense", "relu", "ends in relu"),
    ("  - dense: 10\n  - sigmoid\n", "sigmoid_1", "sigmoid", None, "ends in sigmoid"),
    ("  - dense: 10\n  - hard_swish\n", "hard_swish_1", "hard_swish", None, "ends in hard_swish"),  # the registry's
    ("  - dense: {units: 10, activation: gelu}\n", "dense_1", "dense", "gelu", "ends in gelu"),
])
def test_training_head_trains_on_logits(tail, trained_output, trained_op, activation, note):
    graph = cnnspec.loads("cnnspec: 1\nname: h\ninput: [1, 8, 8]\nlayers:\n  - flatten\n" + tail).graph
    head = training_head(graph)
    assert head.train_graph.output.name == trained_output and head.train_graph.output.op == trained_op
    assert head.train_graph.output.attrs.get("activation") == activation
    assert note in head.note
    assert graph.output.op == ("softmax" if "softmax\n" in tail else graph.output.op)  # the spec is untouched


def test_softmax_reading_an_earlier_layer_keeps_only_its_ancestors():
    graph = cnnspec.loads("cnnspec: 1\nname: h\ninput: [1, 8, 8]\nlayers:\n  - flatten\n"
                          "  - {dense: 10, name: logits}\n  - {dense: 3, in: logits, name: side}\n"
                          "  - {softmax: null, in: logits}\n").graph
    head = training_head(graph)
    assert [n.name for n in head.train_graph.nodes] == ["flatten_1", "logits"]


@pytest.mark.parametrize("n, batch, world_size", [(10, 4, 1), (10, 4, 2), (1438, 32, 2), (9, 8, 3), (5, 64, 1)])
def test_epoch_batches_shard_one_permutation_across_ranks(n, batch, world_size):
    per_rank = [epoch_batches(n, batch, 7, 2, World(r, world_size)) for r in range(world_size)]
    assert len({len(b) for b in per_rank}) == 1  # every rank takes the same number of steps
    for step in zip(*per_rank):
        assert len({len(s) for s in step}) == 1  # of the same size (DDP averages equal shares)
        assert all(len(s) >= 1 for s in step)
    seen = np.concatenate([np.concatenate(b) for b in per_rank])
    assert set(seen) == set(range(n)) and len(seen) == n + (-n) % world_size
    if world_size == 1:
        assert all(len(b) >= 2 or len(per_rank[0]) == 1 for b in per_rank[0])
    assert all(np.array_equal(a, b) for a, b in zip(per_rank[0], epoch_batches(n, batch, 7, 2, World(0, world_size))))
    other = epoch_batches(n, batch, 7, 3, World(0, world_size))
    assert n < 6 or not all(np.array_equal(a, b) for a, b in zip(per_rank[0], other))


def test_world_from_env_and_batch_must_divide():
    assert world_from_env({}) == World(0, 1, 0)
    assert world_from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}) == World(3, 4, 1)
    with pytest.raises(UsageError, match="RANK 4 does not fit WORLD_SIZE 2"):
        world_from_env({"WORLD_SIZE": "2", "RANK": "4"})
    with pytest.raises(UsageError, match="multiple of the 3 processes"):
        TrainConfig(batch_size=32).validate(World(0, 3))


@pytest.mark.parametrize("changes, message", [
    ({"epochs": 0}, "--epochs"), ({"batch_size": 0}, "--batch-size"), ({"optimizer": "rmsprop"}, "--optimizer"),
    ({"lr": -1.0}, "--lr"), ({"device": "tpu"}, "--device"), ({"val_fraction": 0.9}, "--val-fraction"),
])
def test_config_refuses_nonsense(changes, message):
    with pytest.raises(UsageError, match=message):
        TrainConfig(**changes).validate(World())


def test_export_labels_prefer_the_spec_then_the_data():
    graph = cnnspec.load("specs/digits.yaml").graph
    data = load_source("digits", graph)
    assert export_labels(graph, data) == graph.classes
    bare = cnnspec.loads(TINY).graph
    assert export_labels(bare, data) == tuple(str(i) for i in range(10))


def test_training_reaches_a_backend_through_make_trainer(monkeypatch):
    """Backend.make_trainer's default calls ``<backend package>.training.make_trainer``; a backend
    without that module says it cannot train, in one line."""
    import sys
    import types

    import cnnspec.training
    from cnnspec.backend.interface import Backend, EpochStats
    from cnnspec.errors import BackendUnavailable

    assert cnnspec.training.EpochStats is EpochStats  # the old import still works

    class Plugin(Backend):
        __module__ = "cnnspec_fake_plugin.backend"
        name = "fake-plugin"
        compile = get_weights = set_weights = predict = export_onnx = build = None

    package = types.ModuleType("cnnspec_fake_plugin")
    package.__path__ = []  # a package with no submodules on disk
    monkeypatch.setitem(sys.modules, "cnnspec_fake_plugin", package)
    with pytest.raises(BackendUnavailable, match="backend 'fake-plugin' does not support training"):
        Plugin().make_trainer(None, None, TrainConfig(), World())

    made = []
    module = types.SimpleNamespace(make_trainer=lambda *args: made.append(args) or "trainer")
    monkeypatch.setitem(sys.modules, "cnnspec_fake_plugin.training", module)
    backend = Plugin()
    assert backend.make_trainer("graph", None, "config", "world") == "trainer"
    assert made == [(backend, "graph", None, "config", "world")]


# ---------------------------------------------------------------- the epoch loop, with a scripted fake backend

class FakeBackend:
    """Stands in for a framework: the orchestrator's decisions are tested without one."""

    name = "fake"

    def compile(self, graph, weights=None, seed=0):
        return {"graph": graph, "weights": weights}

    def get_weights(self, model, graph):
        return model["weights"]


class ScriptedTrainer:
    """Each script row: (train loss, validation accuracy[, test accuracy[, validation loss]]); the
    test accuracy defaults to the validation one, the validation loss to 1.0; the test loss is 1/epoch."""

    def __init__(self, graph, script):
        from cnnspec.weights.neutral import expected_weights

        self.shapes, self.script, self.epoch, self.closed = expected_weights(graph), list(script), 0, False
        self.seen, self.plans, self.evaluated = [], [], []

    def train_epoch(self, x, y, plan, bar):
        from cnnspec.training import EpochStats

        self.epoch += 1
        self.fit_x = x
        self.plans.append(plan)
        self.seen.append(np.concatenate(plan.batches))
        return EpochStats(self.script[self.epoch - 1][0], 0.5, sum(len(b) for b in plan.batches))

    def evaluate(self, x, y, indices):
        row = self.script[self.epoch - 1]
        val_acc = row[1]
        test_acc = row[2] if len(row) > 2 else val_acc
        val_loss = row[3] if len(row) > 3 else 1.0
        self.evaluated.append((x, y, indices))
        matrix = np.diag(np.full(10, self.epoch))
        if x is self.fit_x:  # the validation split lives in the training arrays
            self.val_indices = indices
            return val_loss, val_acc, matrix
        return 1.0 / self.epoch, test_acc, matrix

    def weights(self):
        return {k: np.full(shape, float(self.epoch), np.float32) for k, shape in self.shapes.items()}

    def state(self):
        return {"epoch": np.array(self.epoch)}, {"scripted": True}

    def load_state(self, tensors, meta):
        assert meta == {"scripted": True}
        self.epoch = int(tensors["epoch"])

    def close(self):
        self.closed = True


@pytest.fixture
def fake(monkeypatch):
    import cnnspec.backend.plugins

    made = []

    def make_trainer(backend, graph, weights, config, world):  # Backend.make_trainer's signature
        made.append(ScriptedTrainer(graph, fake.script))
        return made[-1]

    fake.made = made
    monkeypatch.setattr(cnnspec.backend.plugins, "load_backend", lambda name: FakeBackend())
    monkeypatch.setattr(FakeBackend, "make_trainer", make_trainer, raising=False)
    return fake


def test_best_epoch_by_validation_accuracy_is_what_gets_written(tmp_path, fake):
    from cnnspec.training import train
    from cnnspec.weights.safetensors_io import read_weights

    # the test set scores best at epochs 1 and 3, but never chooses; a validation tie keeps the earlier epoch
    fake.script = [(2.0, 0.50, 0.99), (1.0, 0.90, 0.70), (0.5, 0.80, 0.95), (0.4, 0.90, 0.98)]
    spec = write(tmp_path, TINY)
    result = train(spec, "fake", "digits", TrainConfig(epochs=4, quiet=True), tmp_path / "o")
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["best_epoch"] == 2 and metrics["test_accuracy"] == 0.7 and metrics["test_loss"] == 0.5
    assert metrics["val_accuracy"] == 0.9 and metrics["selected_by"] == "validation accuracy"
    assert [h["test_accuracy"] for h in metrics["history"]] == [0.99, 0.70, 0.95, 0.98]
    assert [h["train_loss"] for h in metrics["history"]] == [2.0, 1.0, 0.5, 0.4]
    weights = read_weights(tmp_path / "o" / "weights.safetensors", cnnspec.load(spec).graph)
    assert all((w == 2.0).all() for w in weights.values())  # epoch 2's weights, not the last epoch's
    onnx = pytest.importorskip("onnx")
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "o" / "model.onnx")).metadata_props}
    assert json.loads(meta["cnnspec.classes"]) == [str(i) for i in range(10)]  # the core writer, labels from the data
    assert result.written and fake.made[0].closed


def test_validation_images_come_from_training_and_are_never_trained_on(tmp_path, fake):
    from cnnspec.training import train

    fake.script = [(1.0, 0.5)] * 2
    metrics = train(write(tmp_path, TINY), "fake", "digits", TrainConfig(epochs=2, quiet=True), tmp_path / "o").metrics
    trainer = fake.made[0]
    val = set(trainer.val_indices.tolist())
    assert len(val) == metrics["validation_images"] == 143  # 10% of each class of the 1438 training images
    assert metrics["train_images"] == 1438 - 143 and metrics["test_images"] == 359
    for seen in trainer.seen:
        assert not val & set(seen.tolist()) and len(set(seen.tolist())) == 1438 - 143


def test_validation_loss_breaks_a_tie_and_no_validation_keeps_the_last_epoch(tmp_path, fake):
    from cnnspec.training import train

    fake.script = [(1.0, 0.9, 0.9, 0.4), (1.0, 0.9, 0.8, 0.3), (1.0, 0.8, 0.99, 0.1)]
    tie = train(write(tmp_path, TINY), "fake", "digits", TrainConfig(epochs=3, quiet=True), tmp_path / "a").metrics
    assert tie["best_epoch"] == 2 and tie["test_accuracy"] == 0.8
    last = train(write(tmp_path, TINY), "fake", "digits", TrainConfig(epochs=3, quiet=True, val_fraction=0),
                 tmp_path / "b").metrics
    assert last["best_epoch"] == 3 and last["selected_by"] == "last epoch" and last["validation_images"] == 0
    assert last["train_images"] == 1438 and "val_accuracy" not in last["history"][0]


def test_divergence_stops_with_a_clear_error_and_writes_nothing(tmp_path, fake):
    from cnnspec.training import train

    fake.script = [(2.0, 0.5), (float("nan"), 0.1)]
    with pytest.raises(UsageError, match="diverged in epoch 2.*lower --lr"):
        train(write(tmp_path, TINY), "fake", "digits", TrainConfig(epochs=3, quiet=True), tmp_path / "o")
    assert not (tmp_path / "o").exists() and fake.made[0].closed  # not even an empty folder


def test_only_rank_0_writes(tmp_path, fake):
    from cnnspec.training import train

    fake.script = [(1.0, 0.7)]
    result = train(write(tmp_path, TINY), "fake", "digits", TrainConfig(epochs=1, batch_size=32, quiet=True),
                   tmp_path / "o", env={"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"})
    assert result.outdir is None and result.written == [] and not (tmp_path / "o").exists()
    assert result.metrics["world_size"] == 2


# ---------------------------------------------------------------- errors through the CLI (no framework run)

@pytest.mark.parametrize("argv, message", [
    (["--data", "nowhere"], "no such data source"),
    (["--data", "digits", "--epochs", "0"], "--epochs must be at least 1"),
    (["--data", "digits", "--backend", "caffe"], "unknown backend 'caffe'"),
    (["--data", "digits", "--init", "missing.safetensors"], "no such weights file"),
    (["--data", "digits", "--resume", "missing.safetensors"], "no such run folder"),
    (["--data", "digits", "--schedule", "cosine", "--warmup", "10"], "--warmup must be"),
    (["--data", "digits", "--momentum", "0.5"], "--momentum applies to --optimizer sgd only"),
    (["--data", "digits", "--precision", "fp16"], "--precision fp16 runs on cuda only"),
    (["--data", "digits", "--augment", "crop,flop"], "unknown transform 'flop'"),
    (["--data", "digits", "--patience", "2", "--val-fraction", "0"], "--patience watches the validation"),
    (["--data", "digits", "--config", "missing.yaml"], "--config missing.yaml: no such file"),
])
def test_bad_invocations_are_one_line_exit_2(tmp_path, capsys, argv, message):
    spec = write(tmp_path, TINY)
    assert main(["train", spec, "-o", str(tmp_path / "out"), "--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_data_that_does_not_fit_the_spec_stops_before_training(tmp_path, capsys):
    spec = write(tmp_path, TINY.replace("[1, 8, 8]", "[3, 8, 8]").replace("dense: 10", "dense: 4"))
    assert main(["train", spec, "--data", "digits", "-o", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "digits: the images are [1, 8, 8] but the spec's input is [3, 8, 8]" in err
    assert not (tmp_path / "o" / "metrics.json").exists()


# ---------------------------------------------------------------- torch

def run_onnx(path, x):
    import onnxruntime as ort

    from cnnspec.onnxfile.boundary import metadata, read_model

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(["output"], {"input": x})[0]
    return out, metadata(read_model(path))


@pytest.mark.torch
class TestTorch:
    def test_digits_one_epoch_writes_everything(self, tmp_path, capsys):
        out = tmp_path / "run"
        assert main(["train", "specs/digits.yaml", "--backend", "torch", "--data", "digits", "--epochs", "1",
                     "-o", str(out)]) == 0
        captured = capsys.readouterr()
        assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES + (CHECKPOINT_FILE,))  # no temp files
        assert "training and 359 held-out images" in captured.err and "epoch 1/1" in captured.err
        assert "test_accuracy" in captured.out
        metrics = json.loads((out / "metrics.json").read_text())
        for key in ("test_accuracy", "test_loss", "best_epoch", "history", "images_per_second", "backend", "seed",
                    "data"):
            assert key in metrics
        assert metrics["backend"] == "torch" and metrics["data"] == "digits" and metrics["best_epoch"] == 1
        assert len(metrics["history"]) == 1 and metrics["test_accuracy"] > 0.8
        assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        data = load_source("digits", cnnspec.load("specs/digits.yaml").graph)
        scores, meta = run_onnx(out / "model.onnx", data.x_test)
        assert json.loads(meta["cnnspec.classes"]) == [str(i) for i in range(10)]
        assert meta["cnnspec.backend"] == "torch"
        onnx_accuracy = float((scores.argmax(1) == data.y_test).mean())
        assert abs(onnx_accuracy - metrics["test_accuracy"]) <= 1 / len(data.y_test)  # a near-tie may flip

    def test_softmax_headed_spec_trains_once_through_softmax(self, tmp_path, capsys):
        runs = {}
        for name, text in (("logits", TINY), ("softmax", TINY.replace("dense: 10", "dense: 10\n  - softmax")),
                           ("fused", TINY.replace("dense: 10", "dense: {units: 10, activation: softmax}"))):
            out = tmp_path / name
            assert main(["train", write(tmp_path, text, f"{name}.yaml"), "--data", "digits", "--epochs", "2",
                         "--lr", "0.01", "-o", str(out)]) == 0
            runs[name] = without_timing(json.loads((out / "metrics.json").read_text()))
            if name != "logits":
                assert "softmax applied once" in capsys.readouterr().err
        # the softmax-headed specs train exactly as the logits spec does: softmax once, inside the loss
        # (a double softmax squeezes the loss towards ln(10) = 2.30 and stalls)
        assert runs["softmax"]["history"] == runs["logits"]["history"] == runs["fused"]["history"]
        assert runs["softmax"]["history"][-1]["train_loss"] < 1.0
        data = load_source("digits", cnnspec.loads(TINY).graph)
        probs, meta = run_onnx(tmp_path / "softmax" / "model.onnx", data.x_test[:5])
        assert np.allclose(probs.sum(1), 1.0, atol=1e-5) and probs.min() >= 0  # the export keeps the softmax
        assert json.loads(meta["cnnspec.classes"]) == [str(i) for i in range(10)]  # labels from the data

    def test_same_seed_same_run_and_other_seed_differs(self, tmp_path):
        spec = write(tmp_path, TINY)
        runs = {}
        for name, seed in (("a", 3), ("b", 3), ("c", 4)):
            assert main(["train", spec, "--data", "digits", "--epochs", "2", "--seed", str(seed), "--quiet",
                         "-o", str(tmp_path / name)]) == 0
            runs[name] = without_timing(json.loads((tmp_path / name / "metrics.json").read_text()))
        assert runs["a"] == runs["b"]
        assert (tmp_path / "a" / "weights.safetensors").read_bytes() == (tmp_path / "b" / "weights.safetensors").read_bytes()
        assert runs["a"]["history"] != runs["c"]["history"]

    def test_init_starts_from_the_weights_and_bad_weights_are_refused(self, tmp_path, capsys):
        spec = write(tmp_path, TINY)
        assert main(["train", spec, "--data", "digits", "--epochs", "2", "--quiet", "-o", str(tmp_path / "a"),
                     "--optimizer", "sgd", "--lr", "0.05"]) == 0
        first = json.loads((tmp_path / "a" / "metrics.json").read_text())
        assert main(["train", spec, "--data", "digits", "--epochs", "1", "--quiet", "-o", str(tmp_path / "b"),
                     "--init", str(tmp_path / "a" / "weights.safetensors")]) == 0
        resumed = json.loads((tmp_path / "b" / "metrics.json").read_text())
        assert resumed["init"].endswith("weights.safetensors") and resumed["resumed_from"] is None
        assert resumed["history"][0]["train_loss"] < first["history"][0]["train_loss"] * 0.6
        other = write(tmp_path, TINY.replace("filters: 8", "filters: 6"), "other.yaml")
        capsys.readouterr()
        assert main(["train", other, "--data", "digits", "--quiet", "-o", str(tmp_path / "c"),
                     "--weights", str(tmp_path / "a" / "weights.safetensors")]) == 2
        assert "does not fit spec" in capsys.readouterr().err
        # --resume is for a run folder now: a weights file gets a one-line hint to use --init
        assert main(["train", spec, "--data", "digits", "--quiet", "--resume",
                     str(tmp_path / "a" / "weights.safetensors")]) == 2
        err = capsys.readouterr().err.strip()
        assert "use --init" in err and len(err.splitlines()) == 1

    def test_image_folder_labels_reach_the_onnx_metadata(self, tmp_path):
        from PIL import Image

        rng = np.random.default_rng(0)
        for name, level in (("coal", 40), ("gangue", 200)):
            (tmp_path / "pics" / name).mkdir(parents=True)
            for i in range(6):
                pixels = np.clip(rng.normal(level, 20, (10, 10)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels, "L").convert("RGB").save(tmp_path / "pics" / name / f"{i}.png")
        spec = write(tmp_path, "cnnspec: 1\nname: cg\ninput: [1, 8, 8]\nlayers:\n  - flatten\n  - dense: 2\n")
        out = tmp_path / "run"
        assert main(["train", spec, "--data", str(tmp_path / "pics"), "--epochs", "3", "--lr", "0.05",
                     "--batch-size", "4", "--quiet", "-o", str(out)]) == 0
        data = load_source(str(tmp_path / "pics"), cnnspec.load(spec).graph)
        scores, meta = run_onnx(out / "model.onnx", data.x_test)
        assert json.loads(meta["cnnspec.classes"]) == ["coal", "gangue"]
        assert (scores.argmax(1) == data.y_test).all()

    def test_cuda_absent_is_a_clear_error(self, tmp_path, capsys):
        import torch

        if torch.cuda.is_available():
            pytest.skip("a CUDA device is present")
        spec = write(tmp_path, TINY)
        assert main(["train", spec, "--data", "digits", "--device", "cuda", "--quiet", "-o", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert "--device cuda: no CUDA device" in err and "Traceback" not in err


# ---------------------------------------------------------------- keras

@pytest.mark.keras
@pytest.mark.xdist_group("keras")
class TestKeras:
    def test_digits_one_epoch_writes_everything(self, tmp_path):
        out = tmp_path / "run"
        assert main(["train", "specs/digits.yaml", "--backend", "keras", "--data", "digits", "--epochs", "2",
                     "--quiet", "-o", str(out)]) == 0
        assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES + (CHECKPOINT_FILE,))
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["backend"] == "keras" and len(metrics["history"]) == 2
        assert metrics["test_accuracy"] > 0.8 and math.isfinite(metrics["test_loss"])
        data = load_source("digits", cnnspec.load("specs/digits.yaml").graph)
        scores, meta = run_onnx(out / "model.onnx", data.x_test)
        assert meta["cnnspec.backend"] == "keras" and json.loads(meta["cnnspec.classes"])[3] == "3"
        assert abs(float((scores.argmax(1) == data.y_test).mean()) - metrics["test_accuracy"]) <= 1 / len(data.y_test)
        # the weights are neutral: every key and shape of the contract's layout, read back against the spec
        from cnnspec.weights.neutral import expected_weights
        from cnnspec.weights.safetensors_io import read_weights

        graph = cnnspec.load("specs/digits.yaml").graph
        weights = read_weights(out / "weights.safetensors", graph)
        assert {k: v.shape for k, v in weights.items()} == expected_weights(graph)

    def test_same_seed_same_run_and_softmax_head(self, tmp_path, capsys):
        spec = write(tmp_path, TINY.replace("dense: 10", "dense: 10\n  - softmax"))
        runs = []
        for name in ("a", "b"):
            assert main(["train", spec, "--backend", "keras", "--data", "digits", "--epochs", "2", "--seed", "5", "--lr", "0.01",
                         "-o", str(tmp_path / name)]) == 0
            runs.append(without_timing(json.loads((tmp_path / name / "metrics.json").read_text())))
        assert runs[0] == runs[1]
        assert "ends in softmax" in capsys.readouterr().err
        assert runs[0]["history"][-1]["train_loss"] < 1.0

    def test_keras_refuses_torchrun(self, tmp_path):
        from cnnspec.training import train

        with pytest.raises(UsageError, match="runs with --backend torch"):
            train(write(tmp_path, TINY), "keras", "digits", TrainConfig(), tmp_path / "o",
                  env={"WORLD_SIZE": "2", "RANK": "1"})
