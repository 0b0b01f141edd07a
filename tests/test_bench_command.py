"""``cnnspec bench``: percentiles and images/s per batch size, a ratio timed in the same alternating
rounds (checked with a fake clock whose load changes mid-run), any ONNX model, one-line errors."""
import json
import re

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from cnnspec.cli import main  # noqa: E402
from cnnspec.runner import speed  # noqa: E402

TINY = """cnnspec: 1
name: tiny
input: [1, 8, 8]
layers:
  - conv2d: {filters: 4, kernel: 3, activation: relu}
  - global_avgpool2d
  - dense: 3
"""
WIDE = TINY.replace("name: tiny", "name: wide").replace("filters: 4", "filters: 64")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    out = {}
    for name, text in (("tiny", TINY), ("wide", WIDE)):
        (root / f"{name}.yaml").write_text(text)
        assert main(["build", str(root / f"{name}.yaml"), "--backend", "onnx", "-o", str(root / name), "--quiet"]) == 0
        out[name] = root / name / "model.onnx"
    return out


def bench_json(capsys, *argv):
    code = main(["bench", *map(str, argv), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_percentiles_and_images_per_second_per_batch(models, capsys):
    result = bench_json(capsys, models["tiny"], "--batch", "1,4", "--seconds", "0.2", "--threads", "1")
    assert [r["batch"] for r in result["results"]] == [1, 4]
    assert result["threads"] == 1 and result["cpu"] and result["input_shape"] == [1, 8, 8]
    for row in result["results"]:
        t = row["model"]
        assert 0 < t["p50_ms"] <= t["p90_ms"] <= t["p99_ms"] and t["calls"] >= 5
        assert t["images_per_second"] == pytest.approx(row["batch"] / (t["p50_ms"] / 1e3), rel=1e-3)
        assert "ratio" not in row


def test_against_gives_a_ratio_from_the_same_rounds(models, capsys):
    result = bench_json(capsys, models["tiny"], "--against", models["wide"], "--batch", "8", "--seconds", "0.3")
    row = result["results"][0]
    assert set(row) == {"batch", "model", "against", "ratio"} and row["ratio"] > 0
    assert main(["bench", str(models["tiny"]), "--against", str(models["tiny"]), "--batch", "2",
                 "--seconds", "0.2"]) == 0
    text = capsys.readouterr().out
    tiny = re.escape(str(models["tiny"]))  # both files named, and faster or slower said (issue 22)
    assert re.search(rf"{tiny} runs (\d+\.\d\dx (faster|slower) than|as fast as) {tiny} ", text) and "CPU " in text


def test_any_onnx_model_is_benched(tmp_path, capsys):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "foreign",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 4, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "f.onnx"))
    result = bench_json(capsys, tmp_path / "f.onnx", "--batch", "1", "--seconds", "0.1")
    assert result["input_shape"] == [3, 4, 4] and result["name"] == "foreign"


class FakeClock:
    """Time that moves only when a step runs: model A costs 1 unit, B 2, times the machine's load,
    which quadruples halfway through the run."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def step(self, cost):
        def run():
            load = 1.0 if self.now < 30.0 else 4.0
            self.now += cost * load
        return run


def test_the_ratio_holds_when_the_load_changes_mid_run(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(speed.time, "perf_counter", clock)
    c = speed.compare({"a": clock.step(1.0), "b": clock.step(2.0)}, batch=1, seconds=80.0, rounds=8, warmup=0)
    assert c.ratio("a", "b") == pytest.approx(2.0)
    # the images/s figures alone mix both loads; only the per-round ratio is clean
    assert c.timings["a"].images_per_second <= 1.0


def test_settle_pauses_before_every_turn(monkeypatch):
    """A spinning ONNX Runtime session slows whichever model runs next: ``settle`` lets it stop first."""
    clock, pauses = FakeClock(), []
    monkeypatch.setattr(speed.time, "perf_counter", clock)
    monkeypatch.setattr(speed.time, "sleep", pauses.append)
    speed.compare({"a": clock.step(1.0), "b": clock.step(2.0)}, batch=1, seconds=8.0, rounds=4, warmup=0, settle=0.05)
    assert pauses == [0.05] * 8
    speed.compare({"a": clock.step(1.0)}, batch=1, seconds=2.0, rounds=2, warmup=0)
    assert len(pauses) == 8  # no settle asked, no pause


def one_line_error(capsys, argv, code=2):
    assert main(argv) == code
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_one_line_errors(models, tmp_path, capsys):
    tiny = str(models["tiny"])
    assert "--batch" in one_line_error(capsys, ["bench", tiny, "--batch", "1,x"])
    assert "1 to 4096" in one_line_error(capsys, ["bench", tiny, "--batch", "0"])
    assert "--threads" in one_line_error(capsys, ["bench", tiny, "--threads", "0"])
    assert "--seconds" in one_line_error(capsys, ["bench", tiny, "--seconds", "0"])
    (tmp_path / "junk.onnx").write_bytes(b"\x00junk")
    assert "not an ONNX model" in one_line_error(capsys, ["bench", str(tmp_path / "junk.onnx")])
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert "CUDAExecutionProvider" in one_line_error(capsys, ["bench", tiny, "--provider", "cuda"])


def test_a_fixed_batch_model_is_benched_at_its_batch_only(tmp_path, capsys):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "fixed",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 1, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 1, 4, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "f.onnx"))
    assert "exactly 2" in one_line_error(capsys, ["bench", str(tmp_path / "f.onnx"), "--batch", "1"])
    assert bench_json(capsys, tmp_path / "f.onnx", "--batch", "2", "--seconds", "0.1")["results"][0]["batch"] == 2


def test_tile_batch_repeats_images():
    x = np.arange(2 * 3, dtype=np.float32).reshape(2, 1, 3, 1)
    assert speed.tile_batch(x, 5).shape == (5, 1, 3, 1) and (speed.tile_batch(x, 5)[2] == x[0]).all()
