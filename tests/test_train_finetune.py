"""Fine-tuning: --init from weights trained for another head (the head starts fresh, said and
recorded; any other mismatch refused unless --allow-partial), --freeze / --freeze-until (frozen
tensors byte-identical after training, batchnorm statistics included, out of the optimizer and the
gradient) and --lr-backbone, in both backends."""
from __future__ import annotations

import json

import numpy as np
import pytest

import cnnspec

from cnnspec.cli import main
from cnnspec.errors import UsageError
from cnnspec.training import TrainConfig, World
from cnnspec.training.finetune import frozen_layers
from cnnspec.weights.match import compare
from cnnspec.weights.partial import head_layers

BASE = """cnnspec: 1
name: base
input: [1, 8, 8]
layers:
  - conv2d: {filters: 8, kernel: 3, padding: same, activation: relu}
  - batchnorm
  - conv2d: {filters: FILTERS, kernel: 3, padding: same, activation: relu}
  - batchnorm
  - global_avgpool2d
  - dense: UNITS
"""
BLOCKS = """cnnspec: 1
name: blocks
input: [1, 8, 8]
blocks:
  unit:
    layers:
      - {conv2d: {filters: 4, kernel: 3, padding: same}, name: conv}
      - {batchnorm: null, name: bn}
layers:
  - {unit: {}, name: stem}
  - {unit: {}, name: stage, repeat: 2}
  - global_avgpool2d
  - {dense: 10, name: fc}
"""


def spec(tmp_path, units=10, filters=8, name="net"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(BASE.replace("UNITS", str(units)).replace("FILTERS", str(filters)))
    return path


def load(path):
    from safetensors.numpy import load_file

    return load_file(str(path))


@pytest.fixture(scope="module")
def digits_weights(tmp_path_factory):
    """A model trained on digits (10 classes): the 'pretrained' weights."""
    tmp = tmp_path_factory.mktemp("base")
    assert main(["train", str(spec(tmp)), "--data", "digits", "--epochs", "1", "--quiet", "-o", str(tmp / "run")]) == 0
    return tmp / "run" / "weights.safetensors"


def test_the_comparison_phrases_every_kind_of_mismatch():
    expected = {"a.weight": (2, 3), "a.bias": (2,), "b.weight": (4,)}
    found = {"a.weight": (2, 3), "a.bias": (3,), "c.weight": (1,), "bn.num_batches_tracked": ()}
    m = compare(found, expected)
    assert m.matched == ("a.weight",) and not m.fits
    assert [x.phrase() for x in m.misfits] == ["'a.bias' is [3] in the file, [2] in the spec",
                                               "'b.weight' is missing from the file",
                                               "'c.weight' in the file has no place in the spec"]


@pytest.mark.parametrize("path, head", [("specs/digits.yaml", ("fc2",)), ("specs/resnet18.yaml", ("fc",)),
                                        ("specs/unet.yaml", ("outc.conv",)),
                                        ("specs/mobilenet-v2.yaml", ("classifier.1",))])
def test_the_head_is_the_last_dense_or_conv_layer(path, head):
    assert head_layers(cnnspec.load(path).graph) == head


def test_freeze_names_layers_blocks_and_block_calls():
    graph = cnnspec.loads(BLOCKS).graph
    names = [n.name for n in graph.nodes]
    assert frozen_layers(graph, ("stem",)) == tuple(n for n in names if n.startswith("stem."))
    assert set(frozen_layers(graph, ("unit",))) == {n for n in names if "." in n}  # every call of the block
    assert frozen_layers(graph, (), until=names[2]) == tuple(names[:3])
    assert frozen_layers(graph, ("fc",)) == ("fc",)
    with pytest.raises(UsageError, match="--freeze stme: no layer, block or block call.*stem"):
        frozen_layers(graph, ("stme",))


@pytest.mark.torch
def test_a_new_head_starts_fresh_and_frozen_tensors_stay_byte_identical(tmp_path, digits_weights, capsys):
    out = tmp_path / "ft"
    code = main(["train", str(spec(tmp_path, units=12)), "--data", "digits", "--epochs", "2", "--init",
                 str(digits_weights), "--freeze-until", "batchnorm_1", "--freeze", "conv2d_2", "--lr-backbone", "0.3",
                 "--optimizer", "sgd", "--weight-decay", "0.01", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 0
    assert "the head (dense_1) starts fresh: 'dense_1.weight' is [10, 8] in the file, [12, 8] in the spec" in err
    before, after = load(digits_weights), load(out / "weights.safetensors")
    frozen = [k for k in before if k.split(".")[0] in ("conv2d_1", "batchnorm_1", "conv2d_2")]
    assert len(frozen) == 8 and all(before[k].tobytes() == after[k].tobytes() for k in frozen)
    assert not np.array_equal(before["batchnorm_2.running_mean"], after["batchnorm_2.running_mean"])  # it trained
    m = json.loads((out / "metrics.json").read_text())
    assert m["init"] == str(digits_weights) and m["init_weights"]["fresh_head"] == ["dense_1.bias", "dense_1.weight"]
    assert m["init_weights"]["loaded"] == 12 and m["frozen_layers"] == ["conv2d_1", "batchnorm_1", "conv2d_2"]
    assert set(m["frozen_tensors"]) == set(frozen) and m["lr_backbone"] == 0.3


@pytest.mark.keras
@pytest.mark.slow
@pytest.mark.xdist_group("keras")
def test_keras_freezes_the_same_tensors(tmp_path, digits_weights):
    out = tmp_path / "ft"
    assert main(["train", str(spec(tmp_path, units=12)), "--backend", "keras", "--data", "digits", "--epochs", "1",
                 "--init", str(digits_weights), "--freeze", "conv2d_1,batchnorm_1", "--lr-backbone", "0.5",
                 "--quiet", "-o", str(out)]) == 0
    before, after = load(digits_weights), load(out / "weights.safetensors")
    for k in before:
        if k.startswith(("conv2d_1.", "batchnorm_1.")):
            assert before[k].tobytes() == after[k].tobytes(), k
        elif k.startswith(("conv2d_2.", "batchnorm_2.")):
            assert not np.array_equal(before[k], after[k]), k


@pytest.mark.torch
def test_a_mismatch_beyond_the_head_is_refused_in_one_line_unless_allowed(tmp_path, digits_weights, capsys):
    other = spec(tmp_path, filters=6, name="other")
    argv = ["train", str(other), "--data", "digits", "--epochs", "1", "--init", str(digits_weights), "--quiet",
            "-o", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "beyond its head (dense_1)" in err and "--allow-partial" in err
    assert "'conv2d_2.weight' is [8, 8, 3, 3] in the file, [6, 8, 3, 3] in the spec" in err
    assert main(argv + ["--allow-partial"]) == 0
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert "conv2d_2.weight" in m["init_weights"]["fresh_other"] and m["init_weights"]["loaded"] == 7


@pytest.mark.torch
def test_frozen_weights_take_no_gradient_and_never_reach_the_optimizer():
    from cnnspec.backend.plugins import load_backend

    graph = cnnspec.loads(BASE.replace("UNITS", "10").replace("FILTERS", "8")).graph
    config = TrainConfig(freeze=("conv2d_1", "batchnorm_1"), lr_backbone=0.1)
    trainer = load_backend("torch").make_trainer(graph, None, config, World())
    try:
        params = dict(trainer.model.named_parameters())
        assert not any(p.requires_grad for k, p in params.items() if k.startswith(("conv2d_1.", "batchnorm_1.")))
        in_optimizer = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
        assert in_optimizer == {id(p) for p in params.values() if p.requires_grad}
        factors = {tuple(sorted(k for k, p in params.items() if id(p) in {id(q) for q in g["params"]})): g["lr_factor"]
                   for g in trainer.optimizer.param_groups}
        assert factors == {("conv2d_2.bias", "conv2d_2.weight", "batchnorm_2.bias", "batchnorm_2.weight"): 0.1,
                           ("dense_1.bias", "dense_1.weight"): 1.0} or sorted(factors.values()) == [0.1, 1.0]
        bn = trainer.model.layer("batchnorm_1")
        trainer._train_mode()
        assert not bn.training and trainer.model.layer("batchnorm_2").training
    finally:
        trainer.close()


def test_freezing_every_weight_is_refused(tmp_path, capsys):
    assert main(["train", str(spec(tmp_path)), "--data", "digits", "--freeze-until", "dense_1", "--quiet"]) == 2
    assert "nothing would train" in capsys.readouterr().err
