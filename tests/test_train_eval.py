"""``cnnspec eval MODEL.onnx --data SOURCE``: a trained model scores on the held-out split exactly what
its training run reported; softmax-headed and quantised models too; every misfit is one line."""
from __future__ import annotations

import json

import numpy as np
import pytest
from train_specs import TINY  # noqa: E402

from cnnspec.cli import main

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two short runs: one spec outputs logits, the other ends in softmax."""
    root = tmp_path_factory.mktemp("eval")
    runs = {}
    for name, text in (("logits", TINY), ("softmax", TINY + "  - softmax\n")):
        (root / f"{name}.yaml").write_text(text)
        assert main(["train", str(root / f"{name}.yaml"), "--data", "digits", "--epochs", "2", "--lr", "0.01",
                     "--quiet", "-o", str(root / name)]) == 0
        runs[name] = root / name
    return runs


@pytest.mark.parametrize("name", ["logits", "softmax"])
def test_eval_reports_what_training_reported(trained, capsys, name):
    run = trained[name]
    capsys.readouterr()
    assert main(["eval", str(run / "model.onnx"), "--data", "digits", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    metrics = json.loads((run / "metrics.json").read_text())
    assert result["images"] == metrics["test_images"] == 359 and result["split"] == "held-out"
    assert abs(result["accuracy"] - metrics["test_accuracy"]) <= 1 / 359  # a near-tie may flip
    assert result["loss"] == pytest.approx(metrics["test_loss"], rel=1e-3)
    assert result["outputs"] == ("probabilities" if name == "softmax" else "logits")
    m = np.array(result["confusion_matrix"])
    assert np.abs(m - np.array(metrics["confusion_matrix"])).sum() <= 2
    assert [c["label"] for c in result["per_class"]] == [str(i) for i in range(10)]
    assert [c["support"] for c in result["per_class"]] == m.sum(axis=1).tolist()


def test_eval_text_has_the_table_and_the_matrix(trained, capsys):
    assert main(["eval", str(trained["logits"] / "model.onnx"), "--data", "digits"]) == 0
    out = capsys.readouterr().out
    assert "held-out split: 359 images: accuracy" in out
    assert "precision  recall" in out and "confusion matrix (rows true, columns predicted):" in out


def test_eval_scores_a_quantised_model(trained, tmp_path, capsys):
    quantization = pytest.importorskip("onnxruntime.quantization")
    import logging

    logging.getLogger().setLevel(logging.ERROR)  # the quantiser's advice to pre-process
    quantization.quantize_dynamic(str(trained["logits"] / "model.onnx"), str(tmp_path / "q.onnx"),
                                  weight_type=quantization.QuantType.QInt8)
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "q.onnx"), "--data", "digits", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    fp32 = json.loads((trained["logits"] / "metrics.json").read_text())["test_accuracy"]
    assert abs(result["accuracy"] - fp32) < 0.03 and result["outputs"] == "logits"


@pytest.mark.parametrize("make, argv_tail, message", [
    (None, ["--data", "digits"], "nowhere.onnx"),
    ("rgb", ["--data", "digits"], "digits: the images are [1, 8, 8] but the spec's input is [3, 8, 8]"),
    ("logits", ["--data", "nowhere"], "no such data source"),
    ("logits", ["--data", "digits", "--batch-size", "0"], "--batch-size must be 1 or more"),
])
def test_eval_misfits_are_one_line_exit_2(trained, tmp_path, capsys, make, argv_tail, message):
    if make == "rgb":
        (tmp_path / "rgb.yaml").write_text(TINY.replace("[1, 8, 8]", "[3, 8, 8]"))
        assert main(["build", str(tmp_path / "rgb.yaml"), "--backend", "torch", "-o", str(tmp_path / "b")]) == 0
        model = tmp_path / "b" / "model.onnx"
    else:
        model = trained[make] / "model.onnx" if make else tmp_path / "nowhere.onnx"
    capsys.readouterr()
    assert main(["eval", str(model), *argv_tail]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
