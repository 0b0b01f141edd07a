"""What a new user trips on (issue 22): one section per point, each tried as a user would."""
from __future__ import annotations

from pathlib import Path

import pytest

from cnnspec.api import check_path

ROOT = Path(__file__).resolve().parents[1]

HEAD = "cnnspec: 1\nname: t\ninput: [1, 28, 28]\nlayers:\n"


def _messages(tmp_path, text: str, name: str = "spec") -> list[str]:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    _, diagnostics = check_path(path)
    return [d.render().split(f"{path}:", 1)[1] for d in diagnostics]


# ---------------------------------------------------------------- 1. every unknown argument, each located

UNKNOWN_ARGUMENTS = [
    # (id, spec body after HEAD, every error expected "L:C: message", in order)
    ("filter-and-strid", "  - conv2d: {filter: 32, kernel: 3, strid: 1}\n",
     ["5:14: error: conv2d_1 has no argument 'filter'; did you mean 'filters'?",
      "5:37: error: conv2d_1 has no argument 'strid'; did you mean 'stride'?"]),
    ("kernal-and-strid", "  - conv2d: {filters: 32, kernal: 3, strid: 1}\n",
     ["5:27: error: conv2d_1 has no argument 'kernal'; did you mean 'kernel'?",
      "5:38: error: conv2d_1 has no argument 'strid'; did you mean 'stride'?"]),
    ("three-in-block-style", "  - conv2d:\n      filtres: 8\n      kernal: 3\n      paddin: same\n",
     ["6:7: error: conv2d_1 has no argument 'filtres'; did you mean 'filters'?",
      "7:7: error: conv2d_1 has no argument 'kernal'; did you mean 'kernel'?",
      "8:7: error: conv2d_1 has no argument 'paddin'; did you mean 'padding'?"]),
    ("two-layers", "  - conv2d: {filters: 4, kernel: 3, strid: 1, dilaton: 1}\n  - dense: {unit: 3, activaton: relu}\n",
     ["5:37: error: conv2d_1 has no argument 'strid'; did you mean 'stride'?",
      "5:47: error: conv2d_1 has no argument 'dilaton'; did you mean 'dilation'?",
      "6:13: error: dense_1 has no argument 'unit'; did you mean 'units'?",
      "6:22: error: dense_1 has no argument 'activaton'; did you mean 'activation'?"]),
    ("top-level-keys", "cnnspec: 1\nname: t\ninput: [1, 2, 2]\nlayer: [relu]\nclases: [a]\nlayers: [relu]\n",
     ["4:1: error: unknown key 'layer'; did you mean 'layers'?",
      "5:1: error: unknown key 'clases'; did you mean 'classes'?"]),
    ("repeat-keys", "  - {relu: null, repeat: {time: 2, strat: 0}}\n",
     ["5:27: error: 'repeat' takes 'times' and 'start', not 'time'; did you mean 'times'?",
      "5:36: error: 'repeat' takes 'times' and 'start', not 'strat'; did you mean 'start'?"]),
]


@pytest.mark.parametrize("case,body,expected", UNKNOWN_ARGUMENTS, ids=[c[0] for c in UNKNOWN_ARGUMENTS])
def test_every_unknown_argument_has_its_own_line(tmp_path, case, body, expected):
    text = body if body.startswith("cnnspec") else HEAD + body
    assert _messages(tmp_path, text, case) == expected


# ---------------------------------------------------------------- 2. train --config RUN/train.yaml from anywhere

@pytest.mark.slow
def test_train_config_works_from_another_directory(tmp_path, monkeypatch, capsys):
    """A run started in one folder, repeated with --config from another: train.yaml's paths are
    relative to train.yaml itself."""
    import shutil

    from cnnspec.cli import main
    from cnnspec.training.settings import read_config

    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "my").mkdir(parents=True)
    elsewhere.mkdir()
    shutil.copy(ROOT / "specs" / "digits.yaml", project / "my" / "shapes.yaml")
    monkeypatch.chdir(project)
    assert main(["train", "my/shapes.yaml", "--data", "digits", "--epochs", "1", "--val-fraction", "0",
                 "-o", "runs/a", "--quiet"]) == 0
    import json

    assert json.loads((project / "runs" / "a" / "metrics.json").read_text())["stop_reason"] == "ran its 1 epoch"
    text = (project / "runs" / "a" / "train.yaml").read_text()
    assert "spec: ../../my/shapes.yaml\n" in text and "output: .\n" in text and "data: digits\n" in text
    monkeypatch.chdir(elsewhere)
    assert read_config(project / "runs" / "a" / "train.yaml")["spec"] == str(project / "my" / "shapes.yaml")
    capsys.readouterr()
    assert main(["train", "--config", str(project / "runs" / "a" / "train.yaml"), "-o", "b", "--quiet"]) == 0
    assert "test_accuracy" in capsys.readouterr().out
    assert (elsewhere / "b" / "model.onnx").is_file()
    assert f"spec: {Path('..', '..', 'project', 'my', 'shapes.yaml').as_posix()}\n" in (elsewhere / "b" / "train.yaml").read_text()
    # and from a relative --config path
    monkeypatch.chdir(project / "runs")
    assert main(["train", "--config", "a/train.yaml", "-o", "c", "--quiet"]) == 0


# ---------------------------------------------------------------- 4, 5. indentation slips: the likely fix, located

INDENTATION = [
    # (id, spec body after HEAD, the first error "L:C: message")
    ("arguments-beside-the-op", "  - conv2d:\n    filters: 8\n    kernel: 3\n",
     "6:5: error: 'filters' and 'kernel' are arguments of conv2d but sit beside it; indent them under 'conv2d:' "
     "(two more spaces than 'conv2d')"),
    ("one-argument-beside-the-op", "  - dense:\n    units: 8\n",
     "6:5: error: 'units' is an argument of dense but sits beside it; indent it under 'dense:' "
     "(two more spaces than 'dense')"),
    ("two-ops-stay-two-ops", "  - conv2d: {filters: 3, kernel: 3}\n    relu: {}\n",
     "6:5: error: layer has several ops ('conv2d', 'relu'); put each op in its own list item"),
    ("item-too-shallow", "  - conv2d: {filters: 8, kernel: 3}\n - flatten\n",
     "6:2: error: YAML syntax error: a list item at the wrong depth: its '-' is at column 2, the item above at "
     "column 3; line them up (the same number of spaces)"),
    ("item-too-deep", "  - conv2d: {filters: 8, kernel: 3}\n    - flatten\n",
     "6:5: error: YAML syntax error: a list item at the wrong depth: its '-' is at column 5, the item above at "
     "column 3; line them up (the same number of spaces)"),
    ("no-space-after-colon", "  - conv2d:\n      filters:8\n      kernel: 3\n",
     "7:13: error: YAML syntax error: missing space after ':' in 'filters:8' (line 6): write 'filters: 8'"),
    ("no-space-after-colon-top", "  - relu\nclasses:[a]\n",
     "7:1: error: YAML syntax error: missing space after ':' in 'classes:[a]' (line 6): write 'classes: [a]'"),
    ("no-space-after-dash", "  -flatten\n  - dense: 3\n",
     "6:10: error: YAML syntax error: missing space after '-' in '-flatten' (line 5): a list item is '- flatten'"),
    ("tab", "  - conv2d:\n\tfilters: 8\n",
     "6:1: error: YAML syntax error: a tab here; YAML indents with spaces only: replace the tab with spaces"),
    ("key-ends-the-list", "  - flatten\n  dense: 3\n",
     "6:3: error: YAML syntax error: 'dense' is at the depth of the list above it, so it ends the list: start it "
     "with '- ' for a new list item, or indent it under its item"),
    ("key-too-shallow", "  - dense:\n      units: 3\n     activation: relu\n",
     "7:6: error: YAML syntax error: 'activation' is at the wrong depth: indent it exactly as the other keys of "
     "its mapping (the same number of spaces)"),
    ("key-too-deep", "  - dense:\n      units: 3\n        activation: relu\n",
     "7:19: error: YAML syntax error: 'activation' is indented deeper than 'units' above it, which already has a "
     "value: line them up (the same number of spaces)"),
]


@pytest.mark.parametrize("case,body,expected", INDENTATION, ids=[c[0] for c in INDENTATION])
def test_indentation_slips_say_the_likely_fix(tmp_path, case, body, expected):
    messages = _messages(tmp_path, HEAD + body, case)
    assert messages[0] == expected
    assert "<block" not in messages[0] and "not allowed here" not in messages[0]


# ---------------------------------------------------------------- 6. channels-last input: a warning

CHANNELS_LAST = [
    # (input, the warning expected or None)
    ([64, 64, 3], "3:8: warning: input [64, 64, 3] reads as 64 channels of 64x3 pixels; cnnspec is channels-first "
                  "[channels, height, width]: for a colour image write [3, 64, 64]"),
    ([28, 28, 1], "3:8: warning: input [28, 28, 1] reads as 28 channels of 28x1 pixels; cnnspec is channels-first "
                  "[channels, height, width]: for a grey image write [1, 28, 28]"),
    ([224, 160, 3], "3:8: warning: input [224, 160, 3] reads as 224 channels of 160x3 pixels; cnnspec is "
                    "channels-first [channels, height, width]: for a colour image write [3, 224, 160]"),
    ([3, 64, 64], None),
    ([1, 28, 28], None),
    ([4, 8, 3], None),      # first not larger than 4: a small multi-channel input, fine
    ([64, 8, 8], None),     # last is neither 1 nor 3
    ([16, 5, 2], None),
]


@pytest.mark.parametrize("shape,expected", CHANNELS_LAST, ids=[str(c[0]) for c in CHANNELS_LAST])
def test_channels_last_input_warns(tmp_path, capsys, shape, expected):
    import json

    from cnnspec.cli import main

    path = tmp_path / "net.yaml"
    path.write_text(f"cnnspec: 1\nname: t\ninput: {shape}\nlayers:\n  - flatten\n  - dense: 2\n")
    assert main(["check", str(path)]) == 0  # a warning never changes the exit code
    err = capsys.readouterr().err
    assert (f"{path}:{expected}\n" in err) if expected else "warning" not in err
    assert main(["check", "--json", str(path)]) == 0
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    assert len(warnings) == (1 if expected else 0)


# ---------------------------------------------------------------- 7. Ctrl-C: its own line, and the way on

TINY = """cnnspec: 1
name: tiny-digits
input: [1, 8, 8]
layers:
  - conv2d: {filters: 4, kernel: 3, padding: same, activation: relu}
  - flatten
  - dense: 10
"""


@pytest.mark.slow
@pytest.mark.torch
def test_ctrl_c_during_training_says_how_to_carry_on(tmp_path):
    """A real SIGINT to a training process, once its first checkpoint exists: the message stands on its
    own line (not inside the progress bar) and names the command that carries on."""
    import os
    import re
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "spec.yaml").write_text(TINY)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "backends")])}
    with open(tmp_path / "err.txt", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "cnnspec.cli", "train", "spec.yaml", "--data", "digits",
                                 "--epochs", "500", "-o", "run"], cwd=tmp_path, env=env, stderr=err,
                                stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while not (tmp_path / "run" / "checkpoint.safetensors").exists() and proc.poll() is None:
                assert time.monotonic() < deadline, "no checkpoint after 120 s"
                time.sleep(0.05)
            time.sleep(0.3)  # into a later epoch
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=60) == 130
        finally:
            if proc.poll() is None:
                proc.kill()
    lines = (tmp_path / "err.txt").read_text().split("\n")
    last = [line for line in lines if line.strip()][-1]
    found = re.fullmatch(r"cnnspec: interrupted in epoch (\d+) of 500; (epoch 1 is saved|epochs 1-(\d+) are saved): "
                         r"carry on with `cnnspec train --resume run`", last)
    assert found, lines[-3:]
    saved = int(found.group(3) or 1)
    assert int(found.group(1)) == saved + 1 and "Traceback" not in "\n".join(lines)
    from cnnspec.training import read_checkpoint

    assert read_checkpoint(tmp_path / "run").epoch == saved


def _train(*argv) -> int:
    from cnnspec.cli import main

    return main(["train", *argv, "--quiet"])


@pytest.mark.slow
@pytest.mark.torch
def test_resume_with_more_epochs_carries_on_exactly(tmp_path, capsys):
    """constant schedule: 1 epoch, then --resume --epochs 2, gives the weights of 2 epochs straight."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(TINY)
    common = ["--data", "digits", "--batch-size", "64", "--seed", "3"]
    assert _train(str(spec), *common, "--epochs", "2", "-o", str(tmp_path / "straight")) == 0
    assert _train(str(spec), *common, "--epochs", "1", "-o", str(tmp_path / "longer")) == 0
    assert _train("--resume", str(tmp_path / "longer"), "--epochs", "2") == 0
    straight, longer = ((tmp_path / d / "weights.safetensors").read_bytes() for d in ("straight", "longer"))
    assert straight == longer
    import json

    metrics = json.loads((tmp_path / "longer" / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and len(metrics["history"]) == 2
    assert "epochs: 2\n" in (tmp_path / "longer" / "train.yaml").read_text()
    # a later resume sees the longer run, and a shorter one is refused with the reason
    capsys.readouterr()
    assert _train("--resume", str(tmp_path / "longer"), "--epochs", "1") == 2
    assert "the run has already trained 2 epochs" in capsys.readouterr().err


LONGER = [
    # (schedule, settings given at the start, refusal expected (None: it carries on))
    ("constant", {}, None),
    ("step", {"step_size": 2}, None),
    ("step", {"step_size": None}, "its --step-size was not given, so it is a third of the epochs"),
    ("cosine", {}, "the cosine schedule anneals to 0 over the whole run"),
    ("onecycle", {}, "the onecycle schedule rises and falls over the whole run"),
]


@pytest.mark.parametrize("schedule,given,refusal", LONGER, ids=[f"{c[0]}-{c[1]}" for c in LONGER])
def test_which_schedules_carry_on_past_their_end(schedule, given, refusal):
    from cnnspec.errors import UsageError
    from cnnspec.training.checkpoint import Checkpoint, longer_run

    settings = {"epochs": 4, "schedule": schedule, "step_size": given.get("step_size") or 1}
    saved = Checkpoint(4, {"settings": settings, "given": {**settings, **given}}, {"stop_reason": None}, {})
    record = {"settings": {**settings, "epochs": 9}}
    if refusal is None:
        assert longer_run("run", saved, record)["settings"] == settings  # what the checkpoint's run had
    else:
        with pytest.raises(UsageError, match="cannot carry on past 4 epochs: " + refusal):
            longer_run("run", saved, record)
    stopped = Checkpoint(3, saved.record, {"stop_reason": "stopped early after epoch 3: patience"}, {})
    with pytest.raises(UsageError, match=r"the run has ended \(stopped early"):
        longer_run("run", stopped, record)


# ---------------------------------------------------------------- 8. wording: counts, bench, int8

@pytest.mark.parametrize("n,word,expected", [
    (1, "epoch", "1 epoch"), (2, "epoch", "2 epochs"), (0, "epoch", "0 epochs"), (1.0, "warm-up epoch", "1 warm-up epoch"),
    (0.5, "warm-up epoch", "0.5 warm-up epochs"), (12345, "image", "12,345 images"), (1, "class", "1 class"),
])
def test_plural(n, word, expected):
    from cnnspec.errors import plural

    assert plural(n, word, "classes" if word == "class" else None) == expected


def test_training_counts_are_said_in_good_english():
    from cnnspec.backend.trainconfig import TrainConfig
    from cnnspec.backend.world import World
    from cnnspec.errors import UsageError
    from cnnspec.training.loop import _describe

    one = _describe("torch", TrainConfig(epochs=1), World(), None, None, None)
    assert ": 1 epoch, batch 32" in one
    assert ", 1 warm-up epoch," in _describe("torch", TrainConfig(epochs=3, warmup=1), World(), None, None, None)
    assert ", 2.5 warm-up epochs," in _describe("torch", TrainConfig(epochs=3, warmup=2.5), World(), None, None, None)
    with pytest.raises(UsageError, match=r"--warmup must be at least 0 and less than the run's 1 epoch, got 1$"):
        TrainConfig(epochs=1, warmup=1).validate(World())
    with pytest.raises(UsageError, match=r"less than the run's 3 epochs, got 4$"):
        TrainConfig(epochs=3, warmup=4).validate(World())


@pytest.mark.parametrize("ratio,words", [
    (1.41, "runs 1.41x faster than"), (0.71, "runs 1.41x slower than"), (1.0, "runs as fast as"),
    (0.5, "runs 2.00x slower than"), (2.0, "runs 2.00x faster than"),
])
def test_bench_says_faster_or_slower(ratio, words):
    from cnnspec.runner.benchmark import format_bench, speed_words

    assert speed_words(ratio) == words
    t = {"p50_ms": 1.0, "p90_ms": 1.0, "p99_ms": 1.0, "images_per_second": 1000.0, "calls": 1}
    result = {"model": "a/model.int8.onnx", "name": "x", "against": "a/model.onnx", "provider": "cpu", "threads": 2,
              "cpu": "AVX2", "onnxruntime": "1", "seconds_per_batch": 1.0,
              "results": [{"batch": 1, "model": t, "against": t, "ratio": ratio}]}
    text = format_bench(result)
    assert f"batch    1  a/model.int8.onnx {words} a/model.onnx (median of per-round ratios)" in text
    assert "(1 call)" in text and "the other" not in text


@pytest.mark.parametrize("speed,expected", [
    ({1: (50.0, 100.0, 0.5), 32: (300.0, 200.0, 1.5)}, "the int8 model runs slower than fp32 on this CPU at batch 1 "
                                                        "(batch 1: 2.00x slower, AVX2); keep the fp32 model where "
                                                        "speed at that batch size matters"),
    ({1: (50.0, 100.0, 0.5), 32: (100.0, 200.0, 0.5)}, "the int8 model runs slower than fp32 on this CPU (batch 1: "
                                                        "2.00x slower, batch 32: 2.00x slower, AVX2); it saves size, "
                                                        "not time"),
    ({1: (150.0, 100.0, 1.5), 32: (300.0, 200.0, 1.5)}, None),
    ({}, None),
])
def test_quantize_warns_when_int8_is_slower(speed, expected):
    from types import SimpleNamespace

    from cnnspec.quantize import slower_warning

    warning = slower_warning(SimpleNamespace(speed=speed, isa="AVX2"))
    assert (warning is None) if expected is None else warning.startswith(expected)


def test_train_prints_the_int8_line_without_repeating_int8(tmp_path, monkeypatch, capsys):
    import cnnspec.training
    from cnnspec.cli import main
    from cnnspec.training.loop import TrainResult

    metrics = {"test_accuracy": 0.9, "best_epoch": 1, "epochs": 1, "selected_by": "last epoch", "test_loss": 0.1,
               "stopped_early": False, "quantization": {"written": True, "guard": "int8 accuracy 90.00% vs fp32 "
                                                                                "90.00% on 10 held-out images"}}
    monkeypatch.setattr(cnnspec.training, "train", lambda *a, **k: TrainResult(tmp_path, metrics, []))
    assert main(["train", "x.yaml", "--data", "digits", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "int8: accuracy 90.00% vs fp32" in out and "int8: int8" not in out


# ---------------------------------------------------------------- 9. columns left out are named

@pytest.mark.parametrize("argv,width,expected", [
    (["specs/resnet50.yaml"], 80, "Hidden at 80 columns: rf, stride, inputs, params%, macs%, flops (--columns all)"),
    (["specs/lenet-5.yaml"], 80, "Hidden at 80 columns: flops (--columns all)"),
    (["specs/resnet50.yaml", "--blocks"], 80, "Hidden at 80 columns: inputs, params%, macs%, flops (--columns all)"),
    (["specs/resnet50.yaml"], 400, None),  # everything fits: no line
    (["specs/resnet50.yaml", "--columns", "name,op,rf"], 80, None),  # chosen: nothing was left out
    (["specs/resnet50.yaml", "--columns", "all"], 80, None),
])
def test_columns_left_out_are_named_with_how_to_get_them(monkeypatch, capsys, argv, width, expected):
    import cnnspec.commands.check as check_command
    from cnnspec.cli import main

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(check_command, "terminal_width", lambda stream: width)
    assert main(["check", *argv]) == 0
    out = capsys.readouterr().out
    hidden = [line for line in out.splitlines() if line.startswith("Hidden at")]
    assert hidden == ([expected] if expected else [])
    assert all(len(line) <= 80 for line in hidden)


def test_a_pipe_gets_80_columns_and_the_line(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "cnnspec.cli", "check", str(ROOT / "specs" / "resnet50.yaml")],
                         capture_output=True, text=True, check=True).stdout
    assert out.rstrip().splitlines()[-1] == ("Hidden at 80 columns: rf, stride, inputs, params%, macs%, flops "
                                             "(--columns all)")


# ---------------------------------------------------------------- 10. check DIR, check -, run --input DIR

def _stdin(monkeypatch, text: str) -> None:
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))


def test_check_a_folder_checks_every_yaml_in_it(tmp_path, monkeypatch, capsys):
    import json
    import shutil

    from cnnspec.cli import main

    for name in ("lenet-5.yaml", "digits.yaml"):
        shutil.copy(ROOT / "specs" / name, tmp_path / name)
    (tmp_path / "notes.txt").write_text("not a spec")
    (tmp_path / "sub").mkdir()
    shutil.copy(ROOT / "specs" / "vgg16.yaml", tmp_path / "sub" / "vgg16.yaml")  # not recursive
    assert main(["check", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"digits ({tmp_path / 'digits.yaml'})" in out and f"lenet-5 ({tmp_path / 'lenet-5.yaml'})" in out
    assert "vgg16" not in out
    assert main(["check", "--json", str(tmp_path)]) == 0
    assert [d["spec"] for d in json.loads(capsys.readouterr().out)] == [
        str(tmp_path / "digits.yaml"), str(tmp_path / "lenet-5.yaml")]
    (tmp_path / "bad.yaml").write_text(HEAD + "  - conv2d: {filters: 8, kernal: 3}\n")
    assert main(["check", str(tmp_path)]) == 1  # one bad spec among good ones
    assert f"{tmp_path / 'bad.yaml'}:5:26: error: conv2d_1 has no argument 'kernal'" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["check", str(tmp_path / "empty")]) == 2
    assert "empty: no *.yaml files in this folder" in capsys.readouterr().err


def test_check_dash_reads_standard_input(monkeypatch, capsys):
    import json

    from cnnspec.cli import main

    _stdin(monkeypatch, (ROOT / "specs" / "lenet-5.yaml").read_text())
    assert main(["check", "-"]) == 0
    assert capsys.readouterr().out.startswith("lenet-5 (<stdin>)\n")
    _stdin(monkeypatch, HEAD + "  - conv2d: {filters: 8, kernel: 3, strid: 1}\n")
    assert main(["check", "-"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "<stdin>:5:37: error: conv2d_1 has no argument 'strid'; did you mean 'stride'?", "<stdin>: 1 error"]
    _stdin(monkeypatch, (ROOT / "specs" / "lenet-5.yaml").read_text())
    assert main(["check", "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["spec"] == "<stdin>"


def test_check_dash_from_a_real_pipe():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "cnnspec.cli", "check", "-", "--columns", "name,shape"],
                          input=(ROOT / "specs" / "digits.yaml").read_bytes(), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().startswith("digits (<stdin>)\n")


def test_run_input_folder_runs_every_image_in_it(tmp_path, capsys):
    import json

    import numpy as np
    from PIL import Image

    from cnnspec.cli import main

    (tmp_path / "spec.yaml").write_text(TINY)
    assert main(["build", str(tmp_path / "spec.yaml"), "--backend", "onnx", "-o", str(tmp_path / "m"), "--quiet"]) == 0
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name in ("b.png", "a.jpg", "c.npy"):
        if name.endswith(".npy"):
            np.save(photos / name, rng.random((2, 1, 8, 8), dtype=np.float32))
        else:
            Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8)).save(photos / name)
    (photos / "readme.txt").write_text("left alone")
    (photos / ".hidden.png").write_bytes(b"not even an image")
    capsys.readouterr()
    assert main(["run", str(tmp_path / "m" / "model.onnx"), "--input", str(photos), "--json"]) == 0
    inputs = [r["input"] for r in json.loads(capsys.readouterr().out)["results"]]
    assert inputs == [str(photos / "a.jpg"), str(photos / "b.png"), str(photos / "c.npy"), str(photos / "c.npy")]
    (tmp_path / "nothing").mkdir()
    assert main(["run", str(tmp_path / "m" / "model.onnx"), "--input", str(tmp_path / "nothing")]) == 2
    assert "nothing: no images or .npy arrays in this folder" in capsys.readouterr().err


# ---------------------------------------------------------------- 11. option names

ALIASES = [
    # (command, its other arguments, the dest both spellings fill, the value parsed from "8")
    ("check", ["net.yaml"], "batch", 8),
    ("bench", ["model.onnx"], "batch", "8"),
    ("run", ["model.onnx", "--input", "a.png"], "batch_size", 8),
    ("eval", ["model.onnx", "--data", "digits"], "batch_size", 8),
    ("train", ["net.yaml"], "batch_size", 8),
]


@pytest.mark.parametrize("command,rest,dest,value", ALIASES, ids=[a[0] for a in ALIASES])
@pytest.mark.parametrize("flag", ["--batch", "--batch-size"])
def test_batch_and_batch_size_are_aliases_everywhere(command, rest, dest, value, flag):
    from cnnspec.cli import build_parser

    args = build_parser().parse_args([command, *rest, flag, "8"])
    assert getattr(args, dest) == value


def test_build_help_lists_every_installed_backend_and_the_default():
    import subprocess
    import sys
    from importlib.metadata import entry_points

    code = ("import sys\nfrom cnnspec.cli import main\nmain(['build', '--help'])\n"
            "print('IMPORTED', [m for m in ('torch', 'tensorflow', 'keras', 'onnxruntime') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    names = sorted(ep.name for ep in entry_points(group="cnnspec.backends"))
    assert {"torch", "keras", "onnx"} <= set(names)
    text = " ".join(out.split())  # argparse wraps the help
    assert f"--backend NAME {', '.join(names)} (the installed plugins; default: torch;" in text
    assert "IMPORTED []" in out  # listed from the entry points: no framework imported


# ---------------------------------------------------------------- 13. curves.png: whole epochs on the axis

@pytest.mark.parametrize("epochs", [1, 2, 4, 7, 30])
def test_curves_have_whole_epoch_ticks(epochs):
    pytest.importorskip("matplotlib")
    from cnnspec.training.plots import curves_figure, plot_curves

    history = [{"epoch": e, "train_loss": 1 / e, "train_accuracy": 1 - 1 / (e + 1), "val_loss": 1 / e,
                "val_accuracy": 0.5, "test_loss": 1 / e, "test_accuracy": 0.5} for e in range(1, epochs + 1)]
    metrics = {"history": history, "best_epoch": epochs, "spec": "t", "backend": "torch", "data": "digits",
               "test_accuracy": 0.5, "selected_by": "validation accuracy"}
    fig = curves_figure(metrics)
    fig.canvas.draw()
    for ax in fig.axes:
        low, high = ax.get_xlim()
        shown = [t for t in ax.get_xticks() if low <= t <= high]
        assert shown and all(float(t).is_integer() for t in shown), shown
        labels = [label.get_text() for label in ax.get_xticklabels() if label.get_text()]
        assert all("." not in text for text in labels), labels
    assert plot_curves(metrics)[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- 14. bench answers in seconds by default

@pytest.mark.slow
def test_bench_defaults_answer_in_under_10_seconds(tmp_path, capsys):
    """The README's form (a model against another, every other option at its default), timed whole."""
    import time

    from cnnspec.cli import main

    (tmp_path / "spec.yaml").write_text(TINY)
    for name in ("a", "b"):
        assert main(["build", str(tmp_path / "spec.yaml"), "--backend", "onnx", "--seed", str(ord(name)),
                     "-o", str(tmp_path / name), "--quiet"]) == 0
    capsys.readouterr()
    start = time.perf_counter()
    assert main(["bench", str(tmp_path / "a" / "model.onnx"), "--against", str(tmp_path / "b" / "model.onnx")]) == 0
    seconds = time.perf_counter() - start
    out = capsys.readouterr().out
    assert seconds < 10, f"bench took {seconds:.1f} s with its defaults"
    assert out.rstrip().splitlines()[-1] == ("timed 1 s per batch size and model; for steadier figures, measure "
                                             "longer (--seconds 5) and at more sizes (--batch 1,8,32)")
