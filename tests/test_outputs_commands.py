"""Several outputs in the commands: ``check`` marks them (table, ``--json``, ``draw``), ``run`` prints
and saves each (``<stem>.<output>.npy``), ``train``/``eval``/``quantize`` judge the one ``--output``
names and say so; a ``--output`` that looks like a path (the old meaning of ``train --output DIR``)
or names no output is one usage line, exit 2."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cnnspec.cli import main

pytestmark = pytest.mark.torch

SPEC = """\
cnnspec: 1
name: digits-two
input: [1, 8, 8]
outputs: [logits, aux]
layers:
  - {conv2d: {filters: 8, kernel: 3, padding: same, activation: relu}, name: stem}
  - {flatten: null, name: flat}
  - {dense: 10, name: logits}
  - {global_avgpool2d: null, in: stem}
  - {conv2d: {filters: 2, kernel: 1}, in: stem, name: aux_map}
  - {dense: 10, in: global_avgpool2d_1, name: aux}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    (root / "two.yaml").write_text(SPEC)
    assert main(["build", str(root / "two.yaml"), "--backend", "torch", "-o", str(root / "b")]) == 0
    return root


def test_check_marks_the_outputs_in_table_json_and_drawing(built, capsys):
    assert main(["check", str(built / "two.yaml")]) == 0
    out = capsys.readouterr().out
    assert "logits (output 1)" in out and "aux (output 2)" in out
    assert "Outputs: logits [10], aux [10]" in out
    assert main(["check", "--json", str(built / "two.yaml")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["outputs"] == [{"name": "logits", "shape": [10]}, {"name": "aux", "shape": [10]}]
    assert doc["output_shape"] == [10]
    assert main(["draw", str(built / "two.yaml"), "-o", str(built / "two.dot")]) == 0
    dot = (built / "two.dot").read_text()
    assert "[10] -> output 1" in dot and "[10] -> output 2" in dot


def test_run_prints_and_saves_every_output(built, capsys):
    x = np.random.default_rng(0).random((2, 1, 8, 8)).astype(np.float32)
    np.save(built / "x.npy", x)
    assert main(["run", str(built / "b" / "model.onnx"), "--input", str(built / "x.npy"), "--top", "1",
                 "--save", str(built / "saved"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [o["name"] for o in result["outputs"]] == ["logits", "aux"]
    assert sorted(p.name for p in (built / "saved").iterdir()) == ["x.aux.npy", "x.logits.npy"]
    assert np.load(built / "saved" / "x.aux.npy").shape == (2, 10)
    assert main(["run", str(built / "b" / "model.onnx"), "--input", str(built / "x.npy"), "--top", "1"]) == 0
    text = capsys.readouterr().out
    assert "outputs logits [10], aux [10]" in text and "output aux [10]:" in text


def test_eval_and_quantize_judge_the_named_output_and_say_so(built, capsys):
    model = str(built / "b" / "model.onnx")
    assert main(["eval", model, "--data", "digits", "--output", "aux", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["output"] == "aux" and doc["model_outputs"] == ["logits", "aux"]
    assert main(["eval", model, "--data", "digits"]) == 0
    assert "judged output 'logits' (of logits, aux" in capsys.readouterr().out
    assert main(["quantize", model, "--calibrate", "digits", "--output", "aux", "--speed-seconds", "0", "--force",
                 "--samples", "32", "-o", str(built / "q.onnx")]) == 0
    assert "judged output  'aux' (of logits, aux" in capsys.readouterr().out
    assert (built / "q.onnx").is_file()


@pytest.mark.parametrize("argv, message", [
    (["train", "{spec}", "--data", "digits", "--output", "runs/x"],
     "--output runs/x: --output names one of the outputs of spec 'digits-two' (logits, aux), and this looks like a "
     "path; to say where to write, use -o/--out DIR"),
    (["train", "{spec}", "--data", "digits", "--output", "auxx"],
     "--output auxx: spec 'digits-two' has no output 'auxx' (its outputs: logits, aux); did you mean 'aux'?"),
    (["train", "{spec}", "--data", "digits", "--output", "myrun"],  # the old meaning of --output, a bare folder
     "--output myrun: spec 'digits-two' has no output 'myrun' (its outputs: logits, aux); to say where to write, "
     "use -o/--out DIR"),
    (["eval", "{model}", "--data", "digits", "--output", "logit"],
     "has no output 'logit' (its outputs: logits, aux); did you mean 'logits'?"),
    (["quantize", "{model}", "--calibrate", "digits", "--output", "int8.onnx"],
     "and this looks like a path; to say where to write, use -o/--out OUT.onnx"),
])
def test_a_wrong_output_is_one_usage_line(built, capsys, argv, message):
    argv = [a.format(spec=built / "two.yaml", model=built / "b" / "model.onnx") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_train_trains_the_named_output_and_exports_them_all(built, capsys):
    out = built / "run"
    assert main(["train", str(built / "two.yaml"), "--data", "digits", "--epochs", "2", "--lr", "0.01",
                 "--output", "aux", "--quiet", "--out", str(out)]) == 0
    trained = capsys.readouterr().out.splitlines()[0]
    assert "of output 'aux'" in trained
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["output"] == "aux"
    assert "output_name: aux" in (out / "train.yaml").read_text()
    import onnx

    assert [o.name for o in onnx.load(str(out / "model.onnx")).graph.output] == ["logits", "aux"]
    assert main(["eval", str(out / "model.onnx"), "--data", "digits", "--output", "aux", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert f"test_accuracy {doc['accuracy']:.4f}" in trained  # eval judges what train reported
