"""Every op of the language, as cnnspec's own writer lowers it, imports back as the same op with the
same normalised arguments, names and weights (the importer is the lowering's inverse), and ONNX
Runtime computes the same numbers."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "backends"))

import cnnspec  # noqa: E402
from cnnspec.importer.model import import_onnx  # noqa: E402
from cnnspec.onnxfile.writer import model_bytes  # noqa: E402
from cnnspec_onnx.init import initial_weights  # noqa: E402

MAP = [3, 12, 12]
CASES = {  # name: (input, layers); each case's layers named a, b, c...
    "conv2d": (MAP, [{"conv2d": {"filters": 4, "kernel": [3, 5], "stride": [1, 2], "padding": [1, 0, 2, 1],
                                 "dilation": 2, "bias": False}}]),
    "depthwise": (MAP, [{"conv2d": {"filters": 6, "kernel": 3, "groups": 3, "padding": "same"}}]),
    "separable_conv2d": (MAP, [
        {"separable_conv2d": {"filters": 5, "kernel": 3, "stride": 2, "padding": "same", "depth_multiplier": 2,
                              "bias": False, "activation": "relu"}},
        {"separable_conv2d": {"filters": 4, "kernel": [3, 1], "dilation": 2}}]),
    "reshape": (MAP, [{"reshape": {"shape": [12, 6, 6]}}, {"conv2d": {"filters": 2, "kernel": 3}},
                      {"reshape": {"shape": [32]}}, "softmax", {"reshape": {"shape": [2, 4, 4]}},
                      {"conv2d": {"filters": 3, "kernel": 1}}, {"reshape": {"shape": [3, 2, 8]}}]),
    "conv2d_transpose": (MAP, [{"conv2d_transpose": {"filters": 4, "kernel": 3, "stride": 2, "padding": 1,
                                                     "output_padding": 1}}]),
    "dense": (MAP, ["flatten", {"dense": {"units": 7, "activation": "tanh"}}]),
    "maxpool2d": (MAP, [{"maxpool2d": {"kernel": 3, "stride": 2, "padding": 1, "ceil": True}}]),
    "avgpool2d": (MAP, [{"avgpool2d": {"kernel": 2, "padding": [0, 1, 0, 1]}}]),
    "avgpool2d same": (MAP, [{"avgpool2d": {"kernel": 3, "stride": 2, "padding": "same"}}]),
    "zeropad2d": (MAP, [{"zeropad2d": {"padding": [1, 2, 0, 3], "value": 0.5}}]),
    "crop2d": (MAP, [{"crop2d": {"cropping": [1, 0, 2, 3]}}]),
    "upsample2d": (MAP, [{"upsample2d": {"scale": [2, 3]}}, {"upsample2d": {"scale": 2, "mode": "bilinear"}}]),
    "global pools": (MAP, [{"global_maxpool2d": {"keepdims": True}}, {"conv2d": {"filters": 2, "kernel": 1}},
                           "global_avgpool2d"]),
    "batchnorm": (MAP, [{"batchnorm": {"eps": 0.001, "momentum": 0.01}}, {"batchnorm": {"scale": False}},
                        {"batchnorm": {"center": False}}]),
    "layernorm": (MAP, [{"layernorm": 1.0e-6}, "flatten", {"layernorm": None}]),
    "normalize": (MAP, [{"normalize": {"mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3]}}]),
    "activations": (MAP, ["relu", "relu6", "sigmoid", "tanh", {"leaky_relu": 0.2}, "silu", "hard_sigmoid",
                          "hard_swish", "gelu", {"gelu": "tanh"}, {"elu": 0.5}, "mish", "softmax"]),
    "add multiply scale concat": (MAP, [
        {"conv2d": {"filters": 3, "kernel": 1}, "name": "p"}, {"add": None, "in": ["input", "p"]},
        {"global_avgpool2d": None, "name": "g"}, {"multiply": None, "in": ["p", "g"]},
        {"scale": 0.5}, {"concat": None, "in": ["p", "e"]}]),
}


def spec(case):
    shape, layers = CASES[case]
    named = []
    for k, layer in enumerate(layers):
        layer = {layer: None} if isinstance(layer, str) else dict(layer)
        layer.setdefault("name", "abcdefghijklmnop"[k])
        named.append(layer)
    return cnnspec.loads(json.dumps({"cnnspec": 1, "name": "t", "input": shape, "layers": named})).graph


# what ONNX does not carry: training-only arguments, and 'same' (its explicit pads are compared instead)
NOT_IN_ONNX = {"momentum", "init"}


def described(node, same_padding: bool):
    attrs = {k: v for k, v in node.attrs.items() if k not in NOT_IN_ONNX and not (k == "padding" and same_padding)}
    return node.name, node.op, attrs, node.pads, node.shape


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_op_comes_back_as_itself(case, tmp_path):
    graph = spec(case)
    weights = initial_weights(graph, 0)
    rng = np.random.default_rng(0)
    weights = {k: (v + rng.uniform(0.1, 0.5, v.shape)).astype(np.float32) for k, v in weights.items()}
    blob = model_bytes(graph, weights)
    path = tmp_path / "t.onnx"
    path.write_bytes(blob)
    imported = import_onnx(path, flat=True)
    back = imported.graph
    assert [n.name for n in back.nodes] == [n.name for n in graph.nodes]
    for new, old in zip(back.nodes, graph.nodes):
        same = old.attrs.get("padding") == "same"
        assert described(new, same) == described(old, same)
    x = rng.standard_normal((1, *graph.input_shape)).astype(np.float32)
    a = ort.InferenceSession(blob).run(None, {"input": x})[0]
    b = ort.InferenceSession(model_bytes(back, imported.weights)).run(None, {"input": x})[0]
    assert float(np.abs(a - b).max()) <= 1e-5 * max(float(np.abs(a).max()), 1e-12)


def test_a_separable_conv_keeps_its_parameters_macs_and_weight_keys(tmp_path):
    graph = spec("separable_conv2d")
    weights = initial_weights(graph, 0)
    path = tmp_path / "t.onnx"
    path.write_bytes(model_bytes(graph, weights))
    imported = import_onnx(path, flat=True)
    assert [n.op for n in imported.graph.nodes] == ["separable_conv2d"] * 2
    assert (imported.graph.params, imported.graph.macs) == (graph.params, graph.macs)
    assert sorted(imported.weights) == sorted(weights) == sorted(
        ["a.depthwise.weight", "a.pointwise.weight", "b.depthwise.weight", "b.pointwise.weight",
         "b.pointwise.bias"])
    for key, value in weights.items():
        np.testing.assert_array_equal(imported.weights[key], value)


def _two_convs(middle=None, names=("sep.depthwise.weight", "sep.pointwise.weight"), extra_reader=False):
    """A depthwise Conv then a 1x1 Conv with the given weight names; ``middle`` an op between them."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((3, 1, 3, 3)).astype(np.float32), names[0]),
             numpy_helper.from_array(rng.standard_normal((4, 3, 1, 1)).astype(np.float32), names[1])]
    nodes = [helper.make_node("Conv", ["input", names[0]], ["d"], "dw", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                              group=3)]
    into = "d"
    if middle == "Relu":
        nodes.append(helper.make_node("Relu", ["d"], ["r"], "act"))
        into = "r"
    nodes.append(helper.make_node("Conv", [into, names[1]], ["output"], "pw", kernel_shape=[1, 1]))
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4, 8, 8])]
    if extra_reader:
        outputs.append(helper.make_tensor_value_info("d", TensorProto.FLOAT, [1, 3, 8, 8]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                              outputs, inits)
    return onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("kind, ops", [
    ({}, ["separable_conv2d"]),
    ({"names": ("features.1.conv.0.weight", "features.1.conv.1.weight")}, ["conv2d", "conv2d"]),  # MobileNet's
    ({"names": ("sep.depthwise.weight", "other.pointwise.weight")}, ["conv2d", "conv2d"]),
    ({"middle": "Relu"}, ["conv2d", "relu", "conv2d"]),
    ({"extra_reader": True}, ["conv2d", "conv2d"]),
])
def test_a_depthwise_then_pointwise_pair_is_one_separable_conv_only_when_its_names_say_so(kind, ops, tmp_path):
    import onnx

    path = tmp_path / "t.onnx"
    onnx.save(_two_convs(**kind), str(path))
    imported = import_onnx(path, flat=True)
    assert [n.op for n in imported.graph.nodes] == ops


def test_a_reshape_to_a_vector_before_a_dense_is_still_a_flatten_and_one_with_minus_one_resolves(tmp_path):
    graph = cnnspec.loads(json.dumps({"cnnspec": 1, "name": "t", "input": MAP, "layers": [
        {"reshape": {"shape": [-1, 24, 6]}, "name": "a"}, {"reshape": {"shape": [-1]}, "name": "b"},
        {"dense": {"units": 4}, "name": "c"}]})).graph
    path = tmp_path / "t.onnx"
    path.write_bytes(model_bytes(graph, initial_weights(graph, 0)))
    back = import_onnx(path, flat=True).graph
    assert [(n.op, n.attrs.get("shape")) for n in back.nodes] == [("reshape", [3, 24, 6]), ("flatten", None),
                                                                  ("dense", None)]
