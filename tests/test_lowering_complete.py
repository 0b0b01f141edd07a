"""Every op in ``cnnspec.graph.ops.OPS`` is lowered by every target, and every activation in the registry
has an entry in every target's activation table; an op a target lacks is ``LoweringMissing``.

A failure here names the op and the table to add it to (see README, "Contributing: adding an op").
The Keras ``model_keras.py`` has no per-op table of its own: it is written from the same plan
(``cnnspec_keras.plan.PLANNERS``) as the live Keras model.
"""
from __future__ import annotations

import dataclasses
import importlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import STRATEGIES, op_layers, to_spec

import cnnspec
from cnnspec.cli import main
from cnnspec.errors import LoweringMissing
from cnnspec.graph import ops
from cnnspec.graph.ir import frozen_attrs
from cnnspec.graph.ops import ACTIVATION_ALIASES, ACTIVATIONS, OPS, OpDef, infer_same
from cnnspec.weights import keras_layout as layouts
from cnnspec.weights.neutral import expected_weights

# the ops a target lowers: an alias (swish) is another key for the same OpDef, and nodes never hold it
OP_NAMES = [op for op, d in OPS.items() if d.name == op]

# target -> (module, table, where it lives): each keyed by op
OP_TABLES = {
    "torch": ("cnnspec_torch.model", "LAYER_BUILDERS", "backends/cnnspec_torch/model.py"),
    "torch model.py": ("cnnspec_torch.codegen", "CODE", "backends/cnnspec_torch/codegen.py"),
    "keras": ("cnnspec_keras.plan", "PLANNERS", "backends/cnnspec_keras/plan.py"),
    "onnx": ("cnnspec.onnxfile.lowering", "LOWERINGS", "cnnspec/onnxfile/lowering.py"),
    "random specs": ("strategies", "STRATEGIES", "tests/strategies.py"),
}
# target -> (module, table, where it lives): each keyed by activation name
ACTIVATION_TABLES = {
    "torch": ("cnnspec_torch.layers", "ACTIVATION_FUNCTIONS", "backends/cnnspec_torch/layers.py (ACTIVATION_CALLS)"),
    "torch model.py": ("cnnspec_torch.codegen", "ACTIVATION_CODE", "backends/cnnspec_torch/layers.py (ACTIVATION_CALLS)"),
    "keras": ("cnnspec_keras.plan", "ACTIVATIONS", "backends/cnnspec_keras/plan.py"),
    "onnx": ("cnnspec.onnxfile.lowering", "ACTIVATIONS", "cnnspec/onnxfile/lowering.py"),
}
NEEDS = {"cnnspec_torch": "torch", "cnnspec.onnxfile.lowering": "onnx"}


def _table(module: str, name: str):
    for prefix, package in NEEDS.items():
        if module.startswith(prefix):
            pytest.importorskip(package)
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("target", sorted(OP_TABLES))
def test_every_op_has_a_lowering_in_every_target(target):
    module, name, where = OP_TABLES[target]
    table = _table(module, name)
    missing = [op for op in OP_NAMES if op not in table]
    assert not missing, f"{target}: no entry for op(s) {', '.join(missing)} in {name} ({where})"


def test_every_op_with_weights_has_a_keras_weight_layout():
    missing = [op for op, d in OPS.items() if d.has_weights and op not in layouts.KERAS_PARTS]
    assert not missing, f"keras weight layout: no entry for op(s) {', '.join(missing)} in KERAS_PARTS (cnnspec/weights/keras_layout.py)"


@pytest.mark.parametrize("target", sorted(ACTIVATION_TABLES))
def test_every_activation_has_an_entry_in_every_target(target):
    module, name, where = ACTIVATION_TABLES[target]
    table = _table(module, name)
    missing = [act for act in ACTIVATIONS if act not in table]
    assert not missing, f"{target}: no entry for activation(s) {', '.join(missing)} in {name} ({where})"


def test_activations_are_ops_and_the_activation_enum():
    assert all(act in OPS and OPS[act].args == ACTIVATIONS[act].args for act in ACTIVATIONS)
    assert set(ops.ACTIVATION["enum"]) == {*ACTIVATIONS, *ACTIVATION_ALIASES, None}
    assert ops.ACTIVATION["enum"][-1] is None


def test_an_alias_is_its_ops_own_definition_and_never_reaches_the_ir():
    assert ACTIVATION_ALIASES == {"swish": "silu"}
    assert OPS["swish"] is OPS["silu"] and "swish" not in OP_NAMES
    graph = to_spec({"cnnspec": 1, "name": "alias", "input": [2, 4, 4], "layers": [
        "swish", {"conv2d": {"filters": 2, "kernel": 1, "activation": "swish"}}]}).graph
    assert [n.op for n in graph.nodes] == ["silu", "conv2d"] and graph.nodes[1].attrs["activation"] == "silu"
    assert graph.nodes[0].name == "swish_1"  # named as written
    assert OPS["conv2d"].args["activation"].schema is ops.ACTIVATION is OPS["dense"].args["activation"].schema


def test_ops_that_compute_nothing_at_inference_are_aliases_in_onnx():
    onnx_lowering = pytest.importorskip("cnnspec.onnxfile.lowering")
    identity = {op for op, d in OPS.items() if d.inference_identity}
    aliases = {op for op, entry in onnx_lowering.LOWERINGS.items() if entry is onnx_lowering.ALIAS}
    assert identity == aliases == {"dropout"}


def test_the_leaky_slope_is_stated_once():
    assert ops.activation_slope() == ACTIVATIONS["leaky_relu"].args["slope"].default == 0.01
    codegen = pytest.importorskip("cnnspec_torch.codegen")
    assert codegen.ACTIVATION_CODE["leaky_relu"] == f"F.leaky_relu({{}}, {ops.activation_slope()!r})"


# ---------------------------------------------------------------- argument kinds

@pytest.mark.parametrize("raw, expected", [
    ({"kernel": 3}, {"kernel": (3, 3), "stride": (3, 3), "padding": (0, 0)}),
    ({"kernel": [2, 3], "padding": "same"}, {"kernel": (2, 3), "stride": (2, 3), "padding": "same"}),
    ({"kernel": 2, "stride": 1, "padding": [1, 0]}, {"kernel": (2, 2), "stride": (1, 1), "padding": (1, 0)}),
    ({"kernel": 2, "padding": [1, 0, 0, 1]}, {"kernel": (2, 2), "stride": (2, 2), "padding": (1, 0, 0, 1)}),
])
def test_sizes_normalise_by_their_declared_kind(raw, expected):
    assert OPS["avgpool2d"].normalize(raw) == expected
    assert OPS["maxpool2d"].normalize(raw) == {**expected, "ceil": False}


@pytest.mark.parametrize("value, expected", [(2, (2, 2)), ([1, 2], (1, 2)), ([1, 2, 3, 4], (1, 2, 3, 4)),
                                             ("same", "same"), (None, None)])
def test_four_sided_kind_keeps_four_numbers(value, expected):
    assert ops.NORMALIZERS["sides"](value, "padding") == expected


# ---------------------------------------------------------------- random specs

@pytest.mark.parametrize("op", OP_NAMES)
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_each_ops_strategy_draws_layers_the_checker_accepts(op, data):
    """The op at a shape it takes, after a flatten where it takes vectors only; the checker agrees
    with the strategy's shape, and a weighted layer's neutral parts all have a Keras part."""
    strategy = STRATEGIES[op]
    lead = [] if 3 in strategy.ranks else [{"flatten": None, "name": "lead"}]
    shape = (2, 5, 6) if 3 in strategy.ranks else (60,)
    items, out = data.draw(op_layers(op, shape, "x", "lead" if lead else "input"))
    graph = to_spec({"cnnspec": 1, "name": "one-op", "input": [2, 5, 6], "layers": lead + items}).graph
    assert graph.node("x").op == op and graph.output_shape == tuple(out)
    if OPS[op].has_weights:
        keras_parts = {f"{name}.{p.neutral}" for name, parts in layouts.layer_parts(graph) for p in parts}
        assert keras_parts == set(expected_weights(graph))


# ---------------------------------------------------------------- an op no target knows yet

FAKE = "fake_op"


@pytest.fixture
def fake_op(monkeypatch):
    """A new op in the core's table only, as on the day it is added: it checks, no target lowers it."""
    monkeypatch.setitem(OPS, FAKE, OpDef(FAKE, "a new op without lowerings", infer=infer_same))
    return cnnspec.loads(json.dumps({"cnnspec": 1, "name": "new", "input": [1, 4, 4], "layers": [FAKE]})).graph


def _lower_torch(graph):
    pytest.importorskip("torch")
    from cnnspec_torch import TorchBackend

    return TorchBackend().compile(graph)


def _lower_torch_code(graph):
    pytest.importorskip("torch")
    from cnnspec_torch.codegen import generate_model_py

    return generate_model_py(graph)


def _lower_keras(graph):
    from cnnspec_keras.plan import make_plan  # the live Keras model is build_model(make_plan(graph))

    return make_plan(graph)


def _lower_keras_code(graph):
    from cnnspec_keras.codegen import generate_model_keras_py

    return generate_model_keras_py(graph)


def _lower_onnx(graph):
    pytest.importorskip("onnx")
    import numpy as np

    from cnnspec.onnxfile.writer import model_bytes

    return model_bytes(graph, {key: np.zeros(shape, np.float32) for key, shape in expected_weights(graph).items()})


LOWER = {"torch": _lower_torch, "torch model.py": _lower_torch_code, "keras": _lower_keras,
         "keras model_keras.py": _lower_keras_code, "onnx": _lower_onnx}


@pytest.mark.parametrize("target", list(LOWER))
def test_a_new_op_is_lowering_missing_in_each_target(fake_op, target):
    with pytest.raises(LoweringMissing) as info:
        LOWER[target](fake_op)
    assert (info.value.op, info.value.target, info.value.layer) == (FAKE, target, f"{FAKE}_1")


def test_a_new_op_with_weights_has_no_keras_layout_until_declared(monkeypatch):
    monkeypatch.setitem(OPS, FAKE, OpDef(FAKE, "weighted", infer=infer_same,
                                         weights=lambda attrs, shapes, out: {"weight": (out[0],)}))
    graph = cnnspec.loads(json.dumps({"cnnspec": 1, "name": "new", "input": [3, 4, 4], "layers": [FAKE]})).graph
    assert expected_weights(graph) == {f"{FAKE}_1.weight": (3,)}
    with pytest.raises(LoweringMissing, match=f"keras target has no lowering for op '{FAKE}'"):
        layouts.expected_keras_weights(graph)


@pytest.mark.parametrize("target", list(LOWER))
def test_an_unknown_fused_activation_is_lowering_missing_in_each_target(target):
    graph = cnnspec.loads(json.dumps({"cnnspec": 1, "name": "act", "input": [1, 4, 4],
                                      "layers": [{"conv2d": {"filters": 2, "kernel": 3, "activation": "relu"}}]})).graph
    node = graph.nodes[0]  # an activation the registry has but no target yet (the enum would refuse it)
    odd = dataclasses.replace(graph, nodes=(node.with_(attrs=frozen_attrs({**node.attrs, "activation": "fake_act"})),))
    with pytest.raises(LoweringMissing) as info:
        LOWER[target](odd)
    assert (info.value.op, info.value.target) == ("activation fake_act", target)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_the_cli_says_a_missing_lowering_in_one_line(fake_op, tmp_path, capsys, backend):
    pytest.importorskip(backend)
    spec = tmp_path / "new.yaml"
    spec.write_text(f"cnnspec: 1\nname: new\ninput: [1, 4, 4]\nlayers:\n  - {FAKE}\n")
    assert main(["check", str(spec)]) == 0  # checking needs the core's table only
    capsys.readouterr()
    rc = main(["build", str(spec), "--backend", backend, "-o", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"no lowering for op '{FAKE}' (layer '{FAKE}_1')" in err and backend in err
    assert not (tmp_path / "out" / "model.onnx").exists()


def test_every_activation_argument_reads_aliases_as_their_op():
    """An ``activation`` argument of any op (conv2d, conv2d_transpose, dense, ...) normalises ``swish``
    to ``silu``, so no target ever sees an alias."""
    from cnnspec.graph.ops import OPS

    for name, op in OPS.items():
        if "activation" in op.args:
            assert op.args["activation"].kind == "activation", name
