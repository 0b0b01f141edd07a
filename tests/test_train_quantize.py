"""``train --quantize int8`` (issue 10): model.int8.onnx beside model.onnx, published with the run's
other files, its report in metrics.json with figures that come from the two files; a refusal keeps
the fp32 run and says why even with --quiet; an old model.int8.onnx never stays beside a new run's
files; the settings are checked, recorded in train.yaml, and may change on --resume (they shape no
epoch), so a finished run can be quantised without training again."""
from __future__ import annotations

import json

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
pytest.importorskip("torch")
pytest.importorskip("sklearn")

from train_specs import TINY, write  # noqa: E402

from cnnspec.cli import main  # noqa: E402
from cnnspec.data.sources import load_digits_dataset  # noqa: E402
from cnnspec.errors import UsageError  # noqa: E402
from cnnspec.training import int8 as int8_step  # noqa: E402
from cnnspec.training.checkpoint import differences  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.xdist_group("torch")]
TRAIN = ["--data", "digits", "--epochs", "2", "--quiet"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The tiny spec trained 2 epochs with --quantize int8 (speed figures kept short)."""
    folder = tmp_path_factory.mktemp("q")
    spec = write(folder, TINY)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(int8_step, "SPEED_SECONDS", 0.1)
        assert main(["train", spec, *TRAIN, "--quantize", "int8", "--quantize-samples", "128",
                     "-o", str(folder / "run")]) == 0
    return folder / "run"


def scores(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]


def test_int8_model_is_published_with_the_run_and_its_report_comes_from_the_files(run):
    metrics = json.loads((run / "metrics.json").read_text())
    q = metrics["quantization"]
    assert q["written"] and q["output"] == str(run / "model.int8.onnx") and q["model"] == str(run / "model.onnx")
    digits = load_digits_dataset((1, 8, 8))
    a, b = scores(run / "model.onnx", digits.x_test), scores(run / "model.int8.onnx", digits.x_test)
    held = q["held_out"]
    assert held["images"] == metrics["test_images"] == len(digits.y_test)  # the test images train reports on
    assert held["fp32_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert held["int8_accuracy"] == pytest.approx(np.mean(b.argmax(1) == digits.y_test))
    assert held["agreement"] == pytest.approx(np.mean(a.argmax(1) == b.argmax(1)))
    assert held["drop_points"] <= 0.5 and held["agreement"] >= 0.99
    assert q["calibration_images"] == 128 and q["source"] == "digits"
    assert q["training_images"] == metrics["train_images"] + metrics["validation_images"]  # the training part
    assert set(q["speed"]) == {"1", "32"} and all(s["ratio"] > 0 for s in q["speed"].values())


def test_int8_file_is_checked_keeps_the_metadata_and_evaluates_like_the_report(run, capsys):
    model = onnx.load(str(run / "model.int8.onnx"))
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    fp32 = {p.key: p.value for p in onnx.load(str(run / "model.onnx")).metadata_props}
    assert all(meta[k] == v for k, v in fp32.items())
    record = json.loads(meta["cnnspec.quantization"])
    assert record["calibration"]["part"] == "training" and record["calibration"]["images"] == 128
    capsys.readouterr()
    assert main(["eval", str(run / "model.int8.onnx"), "--data", "digits", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    metrics = json.loads((run / "metrics.json").read_text())
    assert evaluated["accuracy"] == pytest.approx(metrics["quantization"]["held_out"]["int8_accuracy"])


def test_the_same_int8_model_as_cnnspec_quantize_on_the_same_source(run, tmp_path, capsys):
    """Same source, same fixed draw, same recipe: `cnnspec quantize` on the run's model.onnx writes
    the run's model.int8.onnx, byte for byte."""
    out = tmp_path / "again.int8.onnx"
    assert main(["quantize", str(run / "model.onnx"), "--calibrate", "digits", "--samples", "128",
                 "--speed-seconds", "0", "-o", str(out)]) == 0
    assert out.read_bytes() == (run / "model.int8.onnx").read_bytes()


def test_train_yaml_records_the_step_and_repeats_it(run):
    text = (run / "train.yaml").read_text()
    assert "quantize: int8\n" in text and "quantize_samples: 128\n" in text
    assert "quantize_max_drop: null  # default: 1 (points)" in text


def test_a_refused_int8_keeps_the_fp32_run_and_says_why_even_quietly(tmp_path, monkeypatch, capsys):
    """Calibrated on images dimmed to 5%, the int8 model saturates on the test images: refused."""
    real = int8_step.Int8Step.for_run.__func__

    def dimmed(cls, config, data):
        step = real(cls, config, data)
        return None if step is None else int8_step.Int8Step(step.training_images * 0.05, *[
            getattr(step, f) for f in ("test_images", "test_labels", "samples", "max_drop", "source")])

    monkeypatch.setattr(int8_step.Int8Step, "for_run", classmethod(dimmed))
    monkeypatch.setattr(int8_step, "SPEED_SECONDS", 0.0)
    out = tmp_path / "run"
    code = main(["train", write(tmp_path, TINY), *TRAIN, "--quantize", "int8", "-o", str(out)])
    captured = capsys.readouterr()
    assert code == 0 and (out / "model.onnx").exists() and not (out / "model.int8.onnx").exists()
    q = json.loads((out / "metrics.json").read_text())["quantization"]
    assert q == {"written": False, "refused": q["refused"]} and "more than --max-drop 1" in q["refused"]
    warnings = [line for line in captured.err.splitlines() if "model.int8.onnx not written" in line]
    assert len(warnings) == 1 and "--force" in warnings[0]
    assert "int8: not written" in captured.out


def test_an_old_int8_model_never_stays_beside_a_new_run(run, tmp_path):
    """Training again into a folder that holds an int8 model, without --quantize: it goes with the
    old set (it was quantised from weights that are no longer there)."""
    import shutil

    out = tmp_path / "again"
    shutil.copytree(run, out)
    (out / "notes.txt").write_text("mine")
    assert main(["train", write(tmp_path, TINY), *TRAIN, "--epochs", "1", "-o", str(out)]) == 0
    assert not (out / "model.int8.onnx").exists() and (out / "notes.txt").read_text() == "mine"
    assert "quantization" not in json.loads((out / "metrics.json").read_text())


def test_a_finished_run_is_quantised_on_resume_without_training_again(tmp_path, monkeypatch):
    monkeypatch.setattr(int8_step, "SPEED_SECONDS", 0.0)
    out = tmp_path / "run"
    assert main(["train", write(tmp_path, TINY), *TRAIN, "-o", str(out)]) == 0
    weights = (out / "weights.safetensors").read_bytes()
    assert main(["train", "--resume", str(out), "--quantize", "int8", "--quiet"]) == 0
    assert (out / "model.int8.onnx").exists() and (out / "weights.safetensors").read_bytes() == weights
    assert json.loads((out / "metrics.json").read_text())["quantization"]["written"]


def test_the_step_settings_may_change_on_resume_but_training_settings_may_not():
    saved = {"settings": {"lr": 0.001, "quantize": None, "quantize_samples": None}}
    assert differences(saved, {"settings": {"lr": 0.001, "quantize": "int8", "quantize_samples": 64}}) == []
    assert differences(saved, {"settings": {"lr": 0.01, "quantize": None, "quantize_samples": None}}) != []


@pytest.mark.parametrize("flags, message", [
    (["--quantize-samples", "64"], "--quantize-samples applies to --quantize int8 only"),
    (["--quantize-max-drop", "0.5"], "--quantize-max-drop applies to --quantize int8 only"),
    (["--quantize", "int8", "--quantize-samples", "0"], "--quantize-samples must be 1 or more, got 0"),
    (["--quantize", "int8", "--quantize-max-drop", "-1"], "--quantize-max-drop must be between 0 and 100"),
    (["--quantize", "int8", "--quantize-max-drop", "nan"], "--quantize-max-drop must be between 0 and 100"),
])
def test_step_settings_are_checked_before_training(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    code = main(["train", write(tmp_path, TINY), *TRAIN, *flags, "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0] and not out.exists()


def test_a_missing_quantizer_is_said_before_training(monkeypatch):
    import importlib.util

    from cnnspec.training import TrainConfig

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(UsageError, match="--quantize int8 needs onnxruntime"):
        int8_step.require_quantizer(TrainConfig(quantize="int8"))
    int8_step.require_quantizer(TrainConfig())  # without --quantize nothing is needed


@pytest.mark.slow
def test_the_demo_run_keeps_its_accuracy_in_int8(tmp_path, monkeypatch):
    """Issue 10's target, on `make demo`'s own command (scripts/demo.sh): at most 0.5 points of test
    accuracy lost in int8, at least 99% top-1 agreement with fp32."""
    from pathlib import Path

    monkeypatch.setattr(int8_step, "SPEED_SECONDS", 0.0)
    spec = Path(__file__).resolve().parent.parent / "specs" / "digits.yaml"
    out = tmp_path / "demo"
    assert main(["train", str(spec), "--backend", "torch", "--data", "digits", "--epochs", "10", "--seed", "0",
                 "--quantize", "int8", "-o", str(out), "--quiet"]) == 0
    held = json.loads((out / "metrics.json").read_text())["quantization"]["held_out"]
    assert held["fp32_accuracy"] > 0.97 and held["drop_points"] <= 0.5 and held["agreement"] >= 0.99


@pytest.mark.slow
@pytest.mark.keras
@pytest.mark.xdist_group("keras")
def test_keras_runs_quantise_the_same_way(tmp_path, monkeypatch):
    """model.onnx comes from the core writer whatever the backend, so a Keras run gets its int8
    model by the same step, and it keeps the Keras run's accuracy."""
    pytest.importorskip("keras")
    monkeypatch.setattr(int8_step, "SPEED_SECONDS", 0.0)
    out = tmp_path / "keras"
    assert main(["train", write(tmp_path, TINY), "--backend", "keras", *TRAIN, "--quantize", "int8",
                 "-o", str(out)]) == 0
    q = json.loads((out / "metrics.json").read_text())["quantization"]
    assert q["written"] and q["held_out"]["drop_points"] <= 1.0 and (out / "model.int8.onnx").exists()
