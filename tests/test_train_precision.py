"""``--precision`` (issue 11): bf16 autocast trains on the CPU in both backends and the export stays
fp32; fp16 (with loss scaling) runs on CUDA only, and everywhere it cannot run says so in one line."""
from __future__ import annotations

import json

import numpy as np
import pytest
from train_specs import TINY  # noqa: E402

import cnnspec
from cnnspec.cli import main
from cnnspec.training import TrainConfig, World


def _exported_fp32(out):
    import onnx
    from safetensors.numpy import load_file

    assert {v.dtype for v in load_file(str(out / "weights.safetensors")).values()} == {np.dtype(np.float32)}
    model = onnx.load(str(out / "model.onnx"))
    assert {i.data_type for i in model.graph.initializer} == {onnx.TensorProto.FLOAT}
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


@pytest.mark.parametrize("argv, message", [
    (["--precision", "fp16"], "--precision fp16 runs on cuda only (this run uses --device cpu)"),
    (["--precision", "fp16", "--device", "cuda", "--backend", "keras"], "the keras backend offers fp32, bf16"),
])
def test_where_a_precision_cannot_run_is_one_line(tmp_path, capsys, argv, message):
    (tmp_path / "s.yaml").write_text(TINY)
    assert main(["train", str(tmp_path / "s.yaml"), "--data", "digits", "--quiet", "-o", str(tmp_path / "o"),
                 *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not (tmp_path / "o").exists()


@pytest.mark.torch
class TestTorchPrecision:
    def test_bf16_autocasts_the_forward_and_scores_in_fp32(self):
        import torch
        from cnnspec_torch.training import make_trainer

        from cnnspec.backend.plugins import load_backend

        graph = cnnspec.loads(TINY).graph
        trainer = make_trainer(load_backend("torch"), graph, None, TrainConfig(precision="bf16"), World())
        try:
            x = torch.zeros(2, 1, 8, 8)
            with trainer._autocast():
                assert trainer.net(x).dtype == torch.bfloat16
            assert trainer.scaler is None and trainer.model(x).dtype == torch.float32
            assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
        finally:
            trainer.close()

    def test_bf16_trains_on_the_cpu_and_exports_fp32(self, tmp_path):
        (tmp_path / "s.yaml").write_text(TINY)
        runs = {}
        for precision in ("fp32", "bf16"):
            out = tmp_path / precision
            assert main(["train", str(tmp_path / "s.yaml"), "--data", "digits", "--epochs", "3", "--lr", "0.01",
                         "--precision", precision, "--quiet", "-o", str(out)]) == 0
            runs[precision] = json.loads((out / "metrics.json").read_text())
        _exported_fp32(tmp_path / "bf16")
        assert runs["bf16"]["precision"] == "bf16" and runs["bf16"]["history"] != runs["fp32"]["history"]
        assert runs["bf16"]["test_accuracy"] > 0.9
        assert abs(runs["bf16"]["test_accuracy"] - runs["fp32"]["test_accuracy"]) < 0.04

    @pytest.mark.slow
    def test_bf16_reaches_the_digits_accuracy(self, tmp_path):
        assert main(["train", "specs/digits.yaml", "--data", "digits", "--epochs", "3", "--precision", "bf16",
                     "--quiet", "-o", str(tmp_path / "o")]) == 0
        assert json.loads((tmp_path / "o" / "metrics.json").read_text())["test_accuracy"] >= 0.97

    def test_fp16_with_loss_scaling_on_cuda(self, tmp_path):
        import torch

        if not torch.cuda.is_available():
            pytest.skip("no CUDA device")
        assert main(["train", "specs/digits.yaml", "--data", "digits", "--epochs", "3", "--precision", "fp16",
                     "--device", "cuda", "--quiet", "-o", str(tmp_path / "o")]) == 0
        assert json.loads((tmp_path / "o" / "metrics.json").read_text())["test_accuracy"] >= 0.97
        _exported_fp32(tmp_path / "o")


@pytest.mark.keras
@pytest.mark.xdist_group("keras")
def test_keras_bf16_trains_under_the_mixed_policy_and_exports_fp32(tmp_path):
    import keras
    from cnnspec_keras.training import make_trainer

    from cnnspec.backend.plugins import load_backend

    trainer = make_trainer(load_backend("keras"), cnnspec.loads(TINY).graph, None, TrainConfig(precision="bf16"),
                           World())
    assert trainer.model.dtype_policy.name == "mixed_bfloat16" and trainer.scorer is not trainer.model
    assert trainer.scorer.dtype_policy.name == "float32" and keras.config.dtype_policy().name == "float32"
    (tmp_path / "s.yaml").write_text(TINY)
    out = tmp_path / "k"
    assert main(["train", str(tmp_path / "s.yaml"), "--backend", "keras", "--data", "digits", "--epochs", "3",
                 "--lr", "0.01", "--precision", "bf16", "--quiet", "-o", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.9
    _exported_fp32(out)
    # the reported accuracy is the fp32 model's: the exported ONNX model agrees
    from test_train import run_onnx

    from cnnspec.data.sources import load_source

    data = load_source("digits", cnnspec.loads(TINY).graph)
    scores, _ = run_onnx(out / "model.onnx", data.x_test)
    assert abs(float((scores.argmax(1) == data.y_test).mean()) - metrics["test_accuracy"]) <= 1 / len(data.y_test)
