"""ONNX export of the torch backend: ONNX Runtime computes PyTorch's numbers (batch 1 and 3), ONNX's own
shape inference agrees with cnnspec's shape for every layer, and the file keeps the contract."""
import json
from itertools import chain
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from strategies import spec_dicts, to_spec  # noqa: E402

import cnnspec  # noqa: E402
from cnnspec.onnxio import OPSET, metadata  # noqa: E402
from cnnspec.weights import expected_weights  # noqa: E402
from cnnspec_torch import TorchBackend  # noqa: E402
from cnnspec_torch.export import value_names  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.xdist_group("torch")]
BACKEND = TorchBackend()
SPECS = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.yaml"))
MAX_PARAMS = 70_000_000  # above this a spec is marked slow (deselect with -m "not slow" for a quick run)


def spec(layers, input_shape, classes=None, name="t"):
    doc = {"cnnspec": 1, "name": name, "input": list(input_shape), "layers": layers}
    if classes:
        doc["classes"] = classes
    return cnnspec.loads(json.dumps(doc)).graph


def compiled(graph, seed=0):
    """Seeded weights, with batchnorm statistics moved off their trivial 0 and 1 so they matter."""
    model = BACKEND.compile(graph, seed=seed)
    weights = BACKEND.get_weights(model, graph)
    rng = np.random.default_rng(seed)
    for key in weights:
        if key.endswith("running_mean"):
            weights[key] = rng.uniform(-0.3, 0.3, weights[key].shape).astype(np.float32)
        elif key.endswith("running_var"):
            weights[key] = rng.uniform(0.5, 1.5, weights[key].shape).astype(np.float32)
    BACKEND.set_weights(model, graph, weights)
    return model


def onnx_shapes(path) -> dict:
    inferred = onnx.shape_inference.infer_shapes(onnx.load(str(path)), strict_mode=True)
    g = inferred.graph
    return {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in chain(g.input, g.value_info, g.output)}


def check_export(graph, path, seed=0):
    model = compiled(graph, seed)
    BACKEND.export_onnx(model, graph, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    for batch in (1, 3):
        x = rng.standard_normal((batch, *graph.input_shape)).astype(np.float32)
        expected = BACKEND.predict(model, x)
        assert expected.shape == (batch, *graph.output_shape)
        got = session.run(None, {"input": x})[0]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(expected).max())))
    shapes = onnx_shapes(path)
    names = value_names(graph)
    for node in graph.nodes:
        value = names[node.name]
        assert shapes.get(value) == ["batch", *node.shape], (node.name, value, shapes.get(value), node.shape)
    return model


def _zoo_params(path):
    return cnnspec.load(path).graph.params


ZOO = [pytest.param(p, id=p.stem, marks=[] if _zoo_params(p) <= MAX_PARAMS else [pytest.mark.slow])
       for p in SPECS]  # VGG-16 (138 M params) takes about 26 s here: every spec runs


@pytest.mark.parametrize("path", ZOO)
def test_zoo_onnx_runtime_equals_pytorch_and_shapes_agree(path, tmp_path):
    check_export(cnnspec.load(path).graph, tmp_path / "model.onnx")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(spec_dicts())
def test_random_specs_onnx_runtime_equals_pytorch_and_shapes_agree(tmp_path, doc):
    check_export(to_spec(doc).graph, tmp_path / "random.onnx")


EDGE_LAYERS = {
    "stride2-same-even": ([2, 8, 8], [{"conv2d": {"filters": 3, "kernel": 3, "stride": 2, "padding": "same"}}]),
    "stride2-same-odd": ([2, 7, 7], [{"conv2d": {"filters": 3, "kernel": 3, "stride": 2, "padding": "same"}}]),
    "max-same-odd": ([2, 7, 5], [{"maxpool2d": {"kernel": 2, "padding": "same"}}]),
    "avg-same-odd": ([2, 7, 5], [{"avgpool2d": {"kernel": 2, "padding": "same"}}]),
    "avg-explicit": ([1, 5, 5], [{"avgpool2d": {"kernel": 3, "stride": 2, "padding": 1}}]),
    "depthwise-dilated": ([4, 9, 9], [{"conv2d": {"filters": 8, "kernel": 3, "groups": 4, "dilation": 2,
                                                  "padding": "same", "activation": "relu6"}}]),
    "dense-head": ([3, 4, 4], ["flatten", {"batchnorm": None}, {"dense": {"units": 5, "activation": "leaky_relu"}},
                               {"dropout": 0.5}]),
}


@pytest.mark.parametrize("case", sorted(EDGE_LAYERS))
def test_edge_cases_export_exactly(case, tmp_path):
    shape, layers = EDGE_LAYERS[case]
    check_export(spec(layers, shape), tmp_path / "edge.onnx")


def test_explicit_maxpool_padding_over_negative_input_in_onnx_runtime(tmp_path):
    graph = spec([{"maxpool2d": {"kernel": 3, "stride": 2, "padding": 1}}], [1, 5, 5])
    BACKEND.export_onnx(BACKEND.compile(graph), graph, tmp_path / "m.onnx")
    x = -1.0 - np.random.default_rng(0).random((1, 1, 5, 5)).astype(np.float32)
    y = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert (y < -1).all()


def test_asymmetric_same_padding_is_one_node_with_asymmetric_pads(tmp_path):
    graph = spec([{"conv2d": {"filters": 2, "kernel": 3, "stride": 2, "padding": "same"}, "name": "c"},
                  {"maxpool2d": {"kernel": 2, "stride": 1, "padding": "same"}, "name": "m"},
                  {"avgpool2d": {"kernel": 2, "stride": 1, "padding": "same"}, "name": "a"}], [1, 8, 8])
    BACKEND.export_onnx(BACKEND.compile(graph), graph, tmp_path / "m.onnx")
    model = onnx.load(str(tmp_path / "m.onnx"))
    assert [n.op_type for n in model.graph.node] == ["Conv", "MaxPool", "AveragePool"]
    attrs = {n.op_type: {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute} for n in model.graph.node}
    assert attrs["Conv"]["pads"] == [0, 0, 1, 1]  # top, left, bottom, right: TF's extra pixel at bottom/right
    assert attrs["AveragePool"]["count_include_pad"] == 0 and attrs["AveragePool"]["pads"] == [0, 0, 1, 1]


def test_file_keeps_the_contract(tmp_path):
    graph = spec([{"conv2d": {"filters": 2, "kernel": 3}}, "flatten", {"dense": 3}, "softmax"], [1, 6, 6],
                 classes=["cat", "dog", "émeu"])
    path = tmp_path / "m.onnx"
    BACKEND.export_onnx(BACKEND.compile(graph), graph, path)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "input" and out.name == "output"
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["batch", 1, 6, 6]
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["batch", 3]
    assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)]
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    meta = metadata(model)
    assert json.loads(meta["cnnspec.classes"]) == ["cat", "dog", "émeu"]
    assert meta["cnnspec.backend"] == "torch" and json.loads(meta["cnnspec.spec"])["name"] == "t"
    assert {i.name for i in model.graph.initializer} == set(expected_weights(graph))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": np.zeros((7, 1, 6, 6), np.float32)})[0].shape == (7, 3)  # dynamic batch


def test_value_names_follow_layers_aliases_and_clashes(tmp_path):
    layers = [{"conv2d": {"filters": 2, "kernel": 1}, "name": "output"},
              {"dropout": 0.5, "name": "drop"},
              {"conv2d": {"filters": 2, "kernel": 1}, "name": "output.conv"},
              {"relu": None, "name": "last"}, {"dropout": 0.1, "name": "tail"}]
    graph = spec(layers, [1, 3, 3])
    names = value_names(graph)
    assert names == {"output": "output_value", "drop": "output_value", "output.conv": "output.conv",
                     "last": "output", "tail": "output"}
    check_export(graph, tmp_path / "names.onnx")


def test_a_spec_that_computes_nothing_still_exports(tmp_path):
    check_export(spec([{"dropout": 0.5}], [1, 2, 2]), tmp_path / "nothing.onnx")


def test_export_does_not_change_a_training_model(tmp_path):
    graph = spec([{"conv2d": {"filters": 2, "kernel": 1}}, {"dropout": 0.5}], [1, 3, 3])
    model = BACKEND.compile(graph).train()
    BACKEND.export_onnx(model, graph, tmp_path / "m.onnx")
    assert model.training and not model.mark_outputs
