"""The core ONNX writer: ONNX Runtime computes the eager PyTorch model's numbers (batch 1 and 3; where
a deep net's numbers grow large, within the float32 noise floor measured against a float64
reference), ONNX's own shape inference agrees with every ``value_info``, ``onnx.checker`` passes
with full checks, names are the spec's, bytes are stable, and the file keeps the contract."""
import json
import subprocess
import sys
from itertools import chain
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from cnnspec_torch import TorchBackend  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from strategies import spec_dicts, to_spec  # noqa: E402

import cnnspec  # noqa: E402
from cnnspec.onnxfile.boundary import OPSET, metadata  # noqa: E402
from cnnspec.onnxfile.writer import build_proto, model_bytes, value_names, write_onnx  # noqa: E402
from cnnspec.weights.neutral import expected_weights  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.xdist_group("torch")]
BACKEND = TorchBackend()
SPECS = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.yaml"))
RTOL = 1e-5
MAX_PARAMS = 70_000_000  # above this a spec is marked slow (deselect with -m "not slow" for a quick run)


def spec(layers, input_shape, classes=None, name="t"):
    doc = {"cnnspec": 1, "name": name, "input": list(input_shape), "layers": layers}
    if classes:
        doc["classes"] = classes
    return cnnspec.loads(json.dumps(doc)).graph


def seeded_weights(graph, seed=0):
    """The torch backend's seeded weights, with batchnorm statistics moved off 0 and 1 so they matter."""
    weights = BACKEND.get_weights(BACKEND.compile(graph, seed=seed), graph)
    rng = np.random.default_rng(seed)
    for key in weights:
        if key.endswith("running_mean"):
            weights[key] = rng.uniform(-0.3, 0.3, weights[key].shape).astype(np.float32)
        elif key.endswith("running_var"):
            weights[key] = rng.uniform(0.5, 1.5, weights[key].shape).astype(np.float32)
    return weights


def onnx_shapes(model) -> dict:
    """Every value's shape as ONNX's strict shape inference finds it, from the input alone. Resize
    (upsample2d) scales every dimension, the batch too, and ONNX names no symbol it cannot compute: a
    batch it loses that way (its own ``unk__`` symbol) reads as ``batch``, every other dimension as found."""
    bare = onnx.ModelProto()
    bare.CopyFrom(model)
    del bare.graph.value_info[:]
    g = onnx.shape_inference.infer_shapes(bare, strict_mode=True).graph
    lost = lambda i, d: i == 0 and d.dim_param.startswith("unk__")  # noqa: E731
    return {v.name: ["batch" if lost(i, d) else d.dim_param or d.dim_value
                     for i, d in enumerate(v.type.tensor_type.shape.dim)]
            for v in chain(g.value_info, g.output)}


def declared_shapes(model) -> dict:
    g = model.graph
    return {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in chain(g.value_info, g.output)}


def _first_or(y, k):
    return y[k] if isinstance(y, tuple) else y


def assert_matches_eager(graph, module, got, x, k=0):
    """Within 1e-5 of the eager float32 model; where not (a deep net's large numbers), no further
    from a float64 reference than float32 PyTorch itself is (with a small margin). ``k``: which of
    several outputs ``got`` is."""
    with torch.inference_mode():
        expected = _first_or(module(torch.from_numpy(x)), k).numpy()
    assert got.shape == expected.shape == (x.shape[0], *graph.output_nodes[k].shape)
    scale = max(1.0, float(np.abs(expected).max()))
    if np.abs(got - expected).max() <= RTOL * scale:
        return
    with torch.inference_mode():
        reference = _first_or(module.double()(torch.from_numpy(x).double()), k).numpy()
    module.float()
    floor = float(np.abs(expected - reference).max())
    err = float(np.abs(got - reference).max())
    assert err <= 2 * floor + 1e-6 * scale, f"ONNX off the float64 reference by {err:.3g}; float32 torch by {floor:.3g}"


def check_writer(graph, path, seed=0):
    weights = seeded_weights(graph, seed)
    write_onnx(graph, weights, path, backend="torch")
    module = BACKEND.compile(graph, weights=weights)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    for batch in (1, 3):
        x = rng.standard_normal((batch, *graph.input_shape)).astype(np.float32)
        outputs = session.run(None, {"input": x})
        assert len(outputs) == len(graph.output_names)
        for k, got in enumerate(outputs):
            assert_matches_eager(graph, module, got, x, k)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    declared = declared_shapes(model)
    assert onnx_shapes(model) == declared  # ONNX agrees with every value_info, helper values included
    names = value_names(graph)
    for node in graph.nodes:
        value = names[node.name]
        if value != "input":
            assert declared[value] == ["batch", *node.shape], (node.name, value)
    return model


MAX_MACS = 20_000_000_000  # likewise (U-Net at 256x256: 48 G MACs, about 40 s here)


# several-output zoo nets: about 12-16 s each here; their heads' numbers are covered fast in
# tests/test_outputs.py and tests/test_third_edition_ops.py, the nets themselves in the slow run
SLOW_SPECS = {"yolov3-tiny"}


def _heavy(path):
    graph = cnnspec.load(path).graph
    return graph.params > MAX_PARAMS or graph.macs > MAX_MACS or path.stem in SLOW_SPECS


ZOO = [pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if _heavy(p) else []) for p in SPECS]


@pytest.mark.parametrize("path", ZOO)
def test_zoo_onnx_runtime_equals_pytorch_and_shapes_agree(path, tmp_path):
    check_writer(cnnspec.load(path).graph, tmp_path / "model.onnx")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(spec_dicts())
def test_random_specs_onnx_runtime_equals_pytorch_and_shapes_agree(tmp_path, doc):
    check_writer(to_spec(doc).graph, tmp_path / "random.onnx")


EDGE_LAYERS = {
    "stride2-same-even": ([2, 8, 8], [{"conv2d": {"filters": 3, "kernel": 3, "stride": 2, "padding": "same"}}]),
    "stride2-same-odd": ([2, 7, 7], [{"conv2d": {"filters": 3, "kernel": 3, "stride": 2, "padding": "same"}}]),
    "max-same-odd": ([2, 7, 5], [{"maxpool2d": {"kernel": 2, "padding": "same"}}]),
    "avg-same-odd": ([2, 7, 5], [{"avgpool2d": {"kernel": 2, "padding": "same"}}]),
    "avg-explicit": ([1, 5, 5], [{"avgpool2d": {"kernel": 3, "stride": 2, "padding": 1}}]),
    "depthwise-dilated": ([4, 9, 9], [{"conv2d": {"filters": 8, "kernel": 3, "groups": 4, "dilation": 2,
                                                  "padding": "same", "activation": "relu6"}}]),
    "depthwise-unequal-strides": ([3, 9, 8], [{"conv2d": {"filters": 3, "kernel": 3, "groups": 3,
                                                          "stride": [2, 1], "padding": "same"}}]),
    "dense-head": ([3, 4, 4], ["flatten", {"batchnorm": None}, {"dense": {"units": 5, "activation": "leaky_relu"}},
                               {"dropout": 0.5}]),
    "three-way-add": ([2, 3, 3], [{"relu": None, "name": "a"}, {"sigmoid": None, "name": "b", "in": "input"},
                                  {"add": None, "in": ["a", "b", "input"]}, {"softmax": None}]),
    "vector-concat": ([2, 3, 3], ["flatten", {"dense": 4, "name": "d"}, {"tanh": None, "in": "d", "name": "t"},
                                  {"concat": None, "in": ["d", "t"]}, "flatten"]),
    "global-pool-head": ([3, 5, 5], [{"conv2d": {"filters": 4, "kernel": 3, "bias": False}}, "global_avgpool2d",
                                     {"batchnorm": {"eps": 0.001}}, {"dense": {"units": 2, "activation": "softmax"}}]),
    # keepdims: the pool's own [N, C, 1, 1] output, no Flatten, read by a 1x1 conv (squeeze-and-excite)
    "global-pools-keepdims": ([3, 5, 4], [{"global_avgpool2d": {"keepdims": True}, "name": "a"},
                                          {"conv2d": {"filters": 2, "kernel": 1}}, {"global_maxpool2d": True},
                                          "flatten", {"multiply": None, "in": ["flatten_1", "conv2d_1"]}]),
    # the spatial ops: every value's shape is ONNX's own (Resize aside, which loses the batch symbol)
    "ceil-pools-four-sided": ([2, 7, 6], [{"maxpool2d": {"kernel": 2, "padding": 1, "ceil": True}},
                                          {"maxpool2d": {"kernel": 3, "stride": 2, "padding": [1, 0, 0, 1], "ceil": True}},
                                          {"avgpool2d": {"kernel": 2, "stride": 1, "padding": [0, 1, 1, 0]}}]),
    "transposed-convolutions": ([3, 4, 5], [{"conv2d_transpose": {"filters": 2, "kernel": 3, "stride": 2,
                                                                  "padding": "same", "activation": "relu"}},
                                            {"conv2d_transpose": {"filters": 2, "kernel": [1, 2], "stride": [2, 3],
                                                                  "padding": [0, 1, 1, 0], "output_padding": [1, 0]}}]),
    "pad-crop-upsample": ([2, 3, 4], [{"zeropad2d": {"padding": [1, 2], "value": -3}}, {"crop2d": [0, 1, 2, 0]},
                                      {"upsample2d": [2, 1]}, {"upsample2d": {"scale": 2, "mode": "bilinear"}}]),
}


@pytest.mark.parametrize("case", sorted(EDGE_LAYERS))
def test_edge_cases_write_exactly(case, tmp_path):
    shape, layers = EDGE_LAYERS[case]
    check_writer(spec(layers, shape), tmp_path / "edge.onnx")


def test_explicit_maxpool_padding_over_negative_input_in_onnx_runtime():
    graph = spec([{"maxpool2d": {"kernel": 3, "stride": 2, "padding": 1}}], [1, 5, 5])
    x = -1.0 - np.random.default_rng(0).random((1, 1, 5, 5)).astype(np.float32)
    y = ort.InferenceSession(model_bytes(graph, {}), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert (y < -1).all()  # padding never wins a max


def test_asymmetric_same_padding_is_one_node_with_asymmetric_pads():
    graph = spec([{"conv2d": {"filters": 2, "kernel": 3, "stride": 2, "padding": "same"}, "name": "c"},
                  {"maxpool2d": {"kernel": 2, "stride": 1, "padding": "same"}, "name": "m"},
                  {"avgpool2d": {"kernel": 2, "stride": 1, "padding": "same"}, "name": "a"}], [1, 8, 8])
    model = build_proto(graph, seeded_weights(graph))
    assert [n.op_type for n in model.graph.node] == ["Conv", "MaxPool", "AveragePool"]
    attrs = {n.op_type: {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute} for n in model.graph.node}
    assert attrs["Conv"]["pads"] == [0, 0, 1, 1]  # top, left, bottom, right: TF's extra pixel at bottom/right
    assert attrs["AveragePool"]["count_include_pad"] == 0 and attrs["AveragePool"]["pads"] == [0, 0, 1, 1]


def test_file_keeps_the_contract(tmp_path):
    graph = spec([{"conv2d": {"filters": 2, "kernel": 3}}, "flatten", {"dense": 3}, "softmax"], [1, 6, 6],
                 classes=["cat", "dog", "émeu"])
    path = tmp_path / "m.onnx"
    write_onnx(graph, seeded_weights(graph), path, backend="torch")
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
    assert meta["cnnspec.output_op"] == "softmax" and meta["cnnspec.output_activation"] == ""
    assert {i.name for i in model.graph.initializer} == set(expected_weights(graph))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": np.zeros((7, 1, 6, 6), np.float32)})[0].shape == (7, 3)  # dynamic batch


def test_nodes_and_values_are_named_after_layers():
    graph = spec([{"conv2d": {"filters": 2, "kernel": 3, "activation": "relu"}, "name": "a.conv"},
                  {"conv2d": {"filters": 2, "kernel": 1}, "name": "b.conv"}, "global_avgpool2d"], [1, 5, 5])
    model = build_proto(graph, seeded_weights(graph))
    assert [n.name for n in model.graph.node] == ["a.conv", "a.conv/relu", "b.conv", "global_avgpool2d_1",
                                                  "global_avgpool2d_1/flatten"]
    assert [n.output[0] for n in model.graph.node] == ["a.conv/pre_activation", "a.conv", "b.conv",
                                                       "global_avgpool2d_1/pooled", "output"]
    assert sorted(t.name for t in model.graph.initializer) == ["a.conv.bias", "a.conv.weight", "b.conv.bias",
                                                                "b.conv.weight"]


def test_the_output_op_is_the_expanded_graphs_even_inside_a_block():
    doc = {"cnnspec": 1, "name": "t", "input": [1, 4, 4],
           "blocks": {"head": {"layers": ["flatten", {"dense": 3}, "softmax", {"dropout": 0.2}]}},
           "layers": [{"head": None, "name": "h"}]}
    graph = cnnspec.loads(json.dumps(doc)).graph
    meta = {p.key: p.value for p in build_proto(graph, seeded_weights(graph)).metadata_props}
    assert (meta["cnnspec.output_op"], meta["cnnspec.output_activation"]) == ("softmax", "")
    graph = spec(["flatten", {"dense": {"units": 3, "activation": "softmax"}}], [1, 2, 2])
    meta = {p.key: p.value for p in build_proto(graph, seeded_weights(graph)).metadata_props}
    assert (meta["cnnspec.output_op"], meta["cnnspec.output_activation"]) == ("dense", "softmax")


def test_value_names_follow_layers_aliases_and_clashes(tmp_path):
    layers = [{"conv2d": {"filters": 2, "kernel": 1}, "name": "output"},
              {"dropout": 0.5, "name": "drop"},
              {"conv2d": {"filters": 2, "kernel": 1}, "name": "output.conv"},
              {"relu": None, "name": "last"}, {"dropout": 0.1, "name": "tail"}]
    graph = spec(layers, [1, 3, 3])
    assert value_names(graph) == {"output": "output_value", "drop": "output_value", "output.conv": "output.conv",
                                  "last": "output", "tail": "output"}
    check_writer(graph, tmp_path / "names.onnx")


def test_a_spec_that_computes_nothing_still_writes(tmp_path):
    check_writer(spec([{"dropout": 0.5}], [1, 2, 2]), tmp_path / "nothing.onnx")


def test_same_graph_and_weights_give_the_same_bytes():
    graph = cnnspec.load(SPECS[0]).graph
    weights = seeded_weights(graph)
    assert model_bytes(graph, weights) == model_bytes(graph, {k: v.copy() for k, v in weights.items()})


def test_weights_are_checked_before_anything_is_written(tmp_path):
    from cnnspec.errors import InputError

    graph = spec([{"conv2d": {"filters": 2, "kernel": 1}, "name": "c"}], [1, 3, 3])
    weights = seeded_weights(graph)
    path = tmp_path / "m.onnx"
    for broken, message in (({"c.weight": weights["c.weight"]}, "1 tensor missing"),
                            ({**weights, "c.weight": np.zeros((2, 1, 3, 3), np.float32)}, "in the file, the spec needs"),
                            ({**weights, "c.bias": np.array([np.nan, 0], np.float32)}, "NaN")):
        with pytest.raises(InputError, match=message):
            write_onnx(graph, broken, path)
        assert not path.exists()


def test_native_torch_exporter_agrees_with_the_writer(tmp_path):
    """A cross-check: PyTorch's own exporter and the core writer compute the same numbers."""
    graph = cnnspec.load(SPECS[0]).graph
    weights = seeded_weights(graph)
    BACKEND.export_onnx_native(BACKEND.compile(graph, weights=weights), graph, tmp_path / "native.onnx")
    write_onnx(graph, weights, tmp_path / "core.onnx")
    x = np.random.default_rng(0).standard_normal((2, *graph.input_shape)).astype(np.float32)
    run = lambda p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]  # noqa: E731
    np.testing.assert_allclose(run(tmp_path / "core.onnx"), run(tmp_path / "native.onnx"), rtol=1e-5, atol=1e-6)


def test_the_writer_and_the_onnx_backend_import_no_framework(tmp_path):
    spec_file = SPECS[0]
    code = ("import sys, cnnspec.cli as c; rc = c.main(['build', sys.argv[1], '--backend', 'onnx', '-o', sys.argv[2],"
            " '--quiet']); bad = [m for m in ('torch', 'tensorflow', 'keras', 'tf2onnx') if m in sys.modules];"
            " print(rc, bad)")
    out = subprocess.run([sys.executable, "-c", code, str(spec_file), str(tmp_path / "o")], capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "0 []", out.stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["model.onnx", "weights.safetensors"]


def test_onnx_backend_runs_neutral_weights_as_pytorch_does(tmp_path):
    from cnnspec.backend.plugins import load_backend

    backend = load_backend("onnx")
    graph = cnnspec.load(SPECS[0]).graph
    weights = seeded_weights(graph)
    model = backend.compile(graph, weights=weights)
    x = np.random.default_rng(1).standard_normal((3, *graph.input_shape)).astype(np.float32)
    assert_matches_eager(graph, BACKEND.compile(graph, weights=weights), backend.predict(model, x), x)
    assert backend.get_weights(model, graph).keys() == weights.keys()
    fresh = backend.compile(graph, seed=3)  # numpy's draw by PyTorch's rules: same scale, same keys
    drawn = backend.get_weights(fresh, graph)
    assert drawn.keys() == weights.keys()
    assert all(np.isfinite(v).all() for v in drawn.values())
    again = backend.get_weights(backend.compile(graph, seed=3), graph)
    assert all(np.array_equal(drawn[k], again[k]) for k in drawn)
