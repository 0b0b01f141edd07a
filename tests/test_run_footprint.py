"""``run`` and ``eval`` refuse a --batch-size whose activations cannot fit, before allocating: the
estimate from the model file alone (each value freed after its last reader) equals the core's own
inference peak for the spec it was written from."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import cnnspec  # noqa: E402
from cnnspec.cli import main  # noqa: E402
from cnnspec.errors import UsageError  # noqa: E402
from cnnspec.graph.memory import peak_live  # noqa: E402
from cnnspec.runner import footprint  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", params=["digits", "resnet18", "mobilenet-v2", "unet"])
def built(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    spec = ROOT / "specs" / f"{request.param}.yaml"
    assert main(["build", str(spec), "--backend", "onnx", "-o", str(out), "--quiet"]) == 0
    return spec, out / "model.onnx"


def test_the_file_estimate_equals_the_specs_inference_peak(built):
    spec, model = built
    assert footprint.peak_elements(onnx.load(str(model))) == peak_live(cnnspec.load(spec).graph)


def test_a_batch_that_cannot_fit_is_refused_with_the_batch_that_does(built):
    _, path = built
    model = onnx.load(str(path))
    per_sample = 4 * footprint.peak_elements(model)
    memory = 2 * per_sample * 10  # half of it holds 10 samples
    footprint.require_batch_fits(model, "m.onnx", 10, memory=memory)
    with pytest.raises(UsageError, match=r"m.onnx: its activations at batch 11 would need .* use a batch size of 10$"):
        footprint.require_batch_fits(model, "m.onnx", 11, memory=memory)


def test_run_refuses_in_one_line_before_running(tmp_path, capsys, monkeypatch):
    out = tmp_path / "m"
    assert main(["build", str(ROOT / "specs" / "digits.yaml"), "--backend", "onnx", "-o", str(out), "--quiet"]) == 0
    np.save(tmp_path / "x.npy", np.zeros((64, 1, 8, 8), np.float32))
    per_sample = 4 * footprint.peak_elements(onnx.load(str(out / "model.onnx")))
    monkeypatch.setattr(footprint, "physical_memory", lambda: 2 * per_sample * 16)
    capsys.readouterr()
    code = main(["run", str(out / "model.onnx"), "--input", str(tmp_path / "x.npy"), "--batch-size", "32"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "at batch 32" in err[0] and "a batch size of 16" in err[0]
    assert main(["run", str(out / "model.onnx"), "--input", str(tmp_path / "x.npy"), "--batch-size", "16",
                 "--json"]) == 0


def test_bench_refuses_a_batch_whose_activations_cannot_fit(tmp_path, capsys, monkeypatch):
    out = tmp_path / "m"
    assert main(["build", str(ROOT / "specs" / "digits.yaml"), "--backend", "onnx", "-o", str(out), "--quiet"]) == 0
    per_sample = 4 * footprint.peak_elements(onnx.load(str(out / "model.onnx")))
    monkeypatch.setattr(footprint, "physical_memory", lambda: 2 * per_sample * 16)
    capsys.readouterr()
    code = main(["bench", str(out / "model.onnx"), "--batch", "1,32", "--seconds", "0.05"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "at batch 32" in err[0] and "a batch size of 16" in err[0]
