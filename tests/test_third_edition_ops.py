"""The third edition's ops and names: ``separable_conv2d`` against Keras' own ``SeparableConv2D`` layer
(built here, not through cnnspec's plan) and its counts; ``reshape`` against a numpy reading of the
contract (then a convolution in float64), and its errors; ``-`` in layer names; and one spec that
uses all of it with several outputs, the same numbers in every target (the eager PyTorch module,
the Keras model, ``model.py``, ``model_keras.py`` with its own weight loader, and the ONNX file)."""
from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest

import cnnspec
from cnnspec.api import check_path

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from cnnspec_torch import TorchBackend  # noqa: E402

from cnnspec.onnxfile.writer import build_proto, model_bytes  # noqa: E402
from cnnspec.weights.neutral import expected_weights  # noqa: E402

TORCH = TorchBackend()


def graph_of(input_shape, layers, **extra):
    doc = {"cnnspec": 1, "name": "t", "input": list(input_shape), "layers": layers, **extra}
    return cnnspec.loads(json.dumps(doc)).graph


def random_weights(graph, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in expected_weights(graph).items():
        if key.endswith("running_var"):
            out[key] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:
            out[key] = rng.normal(0.0, 0.5, shape).astype(np.float32)
    return out


# (layer arguments, input shape, output shape, params, MACs): the contract's counts
SEPARABLE = [
    ({"filters": 8, "kernel": 3, "padding": "same"}, (3, 9, 9), (8, 9, 9), 3 * 9 + 3 * 8 + 8,
     3 * 81 * 9 + 8 * 81 * 3),
    ({"filters": 5, "kernel": [3, 2], "stride": 2, "depth_multiplier": 2, "bias": False}, (4, 9, 8), (5, 4, 4),
     8 * 6 + 8 * 5, 8 * 16 * 6 + 5 * 16 * 8),
    ({"filters": 2, "kernel": 3, "dilation": 2, "padding": "same", "depth_multiplier": 3}, (2, 7, 7), (2, 7, 7),
     6 * 9 + 6 * 2 + 2, 6 * 49 * 9 + 2 * 49 * 6),
]


@pytest.mark.parametrize("args, shape, out, params, macs", SEPARABLE)
def test_separable_counts(args, shape, out, params, macs):
    node = graph_of(shape, [{"separable_conv2d": args, "name": "sep"}]).node("sep")
    assert (node.shape, node.params, node.macs) == (out, params, macs)


@pytest.mark.keras
@pytest.mark.parametrize("args, shape, out, params, macs", SEPARABLE)
def test_separable_is_keras_own_layer(args, shape, out, params, macs):
    """Keras' SeparableConv2D, built directly and given the neutral weights through the Keras layout,
    computes what the torch module (depthwise, pointwise) computes, with as many parameters."""
    keras = pytest.importorskip("keras")
    from cnnspec.weights import keras_layout

    graph = graph_of(shape, [{"separable_conv2d": args, "name": "sep"}])
    weights = random_weights(graph)
    padding = args.get("padding", "valid")
    layer = keras.layers.SeparableConv2D(args["filters"], args["kernel"], strides=args.get("stride", 1),
                                         padding=padding, dilation_rate=args.get("dilation", 1),
                                         depth_multiplier=args.get("depth_multiplier", 1),
                                         use_bias=args.get("bias", True))
    x = np.random.default_rng(1).standard_normal((2, *shape)).astype(np.float32)
    layer.build((None, shape[1], shape[2], shape[0]))
    parts = dict(keras_layout.layer_parts(graph))["sep"]
    keras_tensors = keras_layout.to_keras(graph, weights)
    layer.set_weights([keras_tensors[f"sep.{p.keras}"] for p in parts])
    assert layer.count_params() == params
    got = np.asarray(layer(x.transpose(0, 2, 3, 1))).transpose(0, 3, 1, 2)
    expected = TORCH.predict(TORCH.compile(graph, weights=weights), x)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    back = keras_layout.to_neutral(graph, keras_tensors)
    assert all(np.array_equal(back[k], weights[k]) for k in weights)


def _conv_reference(x, weight, bias):
    """A valid, stride-1 convolution in float64 numpy: the independent reference after a reshape."""
    n, c, h, w = x.shape
    f, _, kh, kw = weight.shape
    out = np.zeros((n, f, h - kh + 1, w - kw + 1))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            patch = x[:, :, i:i + kh, j:j + kw]
            out[:, :, i, j] = np.einsum("nchw,fchw->nf", patch, weight)
    return out + bias[None, :, None, None]


@pytest.mark.keras
def test_reshape_to_a_map_then_conv_is_the_same_numbers_everywhere():
    """[2, 6, 4] read as [3, 4, 4] in channel, row, column order, then a 3x3 convolution: numpy in
    float64, the torch module, the Keras model (transposes around its Reshape) and ONNX Runtime."""
    pytest.importorskip("keras")
    from cnnspec_keras import KerasBackend

    graph = graph_of([2, 6, 4], [{"reshape": [3, -1, 4], "name": "as-map"},
                                 {"conv2d": {"filters": 2, "kernel": 3}, "name": "conv"}])
    assert graph.node("as-map").shape == (3, 4, 4)
    weights = random_weights(graph)
    x = np.random.default_rng(2).standard_normal((3, 2, 6, 4)).astype(np.float32)
    reference = _conv_reference(x.astype(np.float64).reshape(3, 3, 4, 4), weights["conv.weight"].astype(np.float64),
                                weights["conv.bias"].astype(np.float64))
    keras_backend = KerasBackend()
    got = {"torch": TORCH.predict(TORCH.compile(graph, weights=weights), x),
           "keras": keras_backend.predict(keras_backend.compile(graph, weights=weights), x),
           "onnx": ort.InferenceSession(model_bytes(graph, weights)).run(None, {"input": x})[0]}
    for target, y in got.items():
        np.testing.assert_allclose(y, reference, rtol=1e-5, atol=1e-5, err_msg=target)


RESHAPE_ERRORS = [
    ("counts", [5, 5], "6:5: r: the input [2, 6, 4] holds 48 values, but shape [5, 5, 2] holds 50"),
    ("two-inferred", [-1, -1], "6:5: r: shape [-1, -1, 2] has 2 entries of -1; at most one may be inferred"),
    ("not-a-multiple", [-1, 5], "6:5: r: the input [2, 6, 4] holds 48 values, which shape [-1, 5, 2] cannot take: "
                                "48 is no multiple of the other sizes' product 10"),
    ("zero", [0, 24], "6:5: r: shape [0, 24, 2]: each size is 1 or more, or a single -1"),
]


@pytest.mark.parametrize("case, head, expected", RESHAPE_ERRORS, ids=[c[0] for c in RESHAPE_ERRORS])
def test_reshape_errors_are_located_and_show_both_counts(tmp_path, case, head, expected):
    path = tmp_path / "net.yaml"
    path.write_text("cnnspec: 1\nname: t\ninput: [2, 6, 4]\nlayers:\n  - relu\n"
                    f"  - {{reshape: {json.dumps(head + [2])}, name: r}}\n")
    _, diagnostics = check_path(path)
    first = diagnostics[0]
    assert f"{first.location.line}:{first.location.column}: {first.message}" == expected


def test_reshape_to_two_dimensions_is_refused():
    with pytest.raises(cnnspec.SpecError, match=r"a reshape makes a vector \[N\] or a map \[C, H, W\]"):
        graph_of([2, 6, 4], [{"reshape": [6, 8]}])


NAMES = [
    ("trunk_output.block1-0", True), ("a-b-c", True), ("x_1.y-2", True),
    ("-a", False), ("1-a", False), ("a b", False),
]


@pytest.mark.parametrize("name, ok", NAMES)
def test_dashes_in_layer_names(name, ok):
    layers = [{"conv2d": {"filters": 2, "kernel": 1}, "name": name}]
    if ok:
        assert graph_of([1, 4, 4], layers).nodes[0].name == name
    else:
        with pytest.raises(cnnspec.SpecError, match="is not allowed"):
            graph_of([1, 4, 4], layers)


ALL = {
    "cnnspec": 1, "name": "third-edition", "input": [3, 10, 10],
    "outputs": ["trunk.block1-1", "head-1", "as-map"],
    "blocks": {"unit": {"params": {"f": 4}, "layers": [
        {"separable_conv2d": {"filters": "$f", "kernel": 3, "padding": "same", "depth_multiplier": 2,
                              "bias": False}, "name": "sep-a"},
        {"batchnorm": None, "name": "bn-a"},
        {"relu": None, "name": "act-a"}]}},
    "layers": [
        {"unit": {"f": 4}, "name": "trunk.block1-0"},
        {"unit": {"f": 6}, "name": "trunk.block1-1"},
        {"separable_conv2d": {"filters": 5, "kernel": 3, "stride": 2, "padding": "same", "activation": "silu"},
         "name": "down-1"},
        {"reshape": [-1], "name": "flat-1"},
        {"dense": 4, "name": "head-1"},
        {"reshape": [5, 5, 5], "in": "flat-1", "name": "as-map"},
    ],
}


def _import(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.keras
def test_one_spec_with_everything_gives_the_same_numbers_in_every_target(tmp_path):
    pytest.importorskip("keras")
    from cnnspec_keras import KerasBackend
    from cnnspec_keras.codegen import generate_model_keras_py
    from cnnspec_torch.codegen import generate_model_py

    from cnnspec.weights.safetensors_io import write_weights

    graph = cnnspec.loads(json.dumps(ALL)).graph
    assert graph.outputs == ("trunk.block1-1.act-a", "head-1", "as-map")
    weights = random_weights(graph)
    x = np.random.default_rng(3).standard_normal((2, 3, 10, 10)).astype(np.float32)
    expected = TORCH.predict(TORCH.compile(graph, weights=weights), x)
    keras_backend = KerasBackend()
    proto = build_proto(graph, weights)
    assert [o.name for o in proto.graph.output] == list(graph.outputs)
    assert {"trunk.block1-0.sep-a/depthwise", "head-1", "down-1"} <= {n.output[0] for n in proto.graph.node}
    got = {"keras": keras_backend.predict(keras_backend.compile(graph, weights=weights), x),
           "onnx": ort.InferenceSession(model_bytes(graph, weights)).run(None, {"input": x})}
    write_weights(tmp_path / "weights.safetensors", weights, graph)
    (tmp_path / "model.py").write_text(generate_model_py(graph))
    (tmp_path / "model_keras.py").write_text(generate_model_keras_py(graph))
    sys.path.insert(0, str(tmp_path))
    try:
        model_py = _import(tmp_path / "model.py", "third_edition_model")
        with torch.no_grad():
            got["model.py"] = [y.numpy() for y in model_py.load_model(tmp_path / "weights.safetensors")(
                torch.from_numpy(x))]
        model_keras = _import(tmp_path / "model_keras.py", "third_edition_model_keras")
        net = model_keras.build_model()
        model_keras.load_weights(net, tmp_path / "weights.safetensors")  # its own loader: the depthwise reshape
        assert [layer.name for layer in net.layers if "sep-a" in layer.name][:1] == ["trunk.block1-0.sep-a"]
        got["model_keras.py"] = [np.asarray(y) for y in net(x, training=False)]
    finally:
        sys.path.remove(str(tmp_path))
    for target, outputs in got.items():
        assert len(outputs) == 3, target
        for name, want, have in zip(graph.outputs, expected, outputs):
            np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-5, err_msg=f"{target}: {name}")


def test_onnx_backend_draws_separable_weights_by_fan_in_and_returns_every_output():
    """The framework-free backend: a part's bound is 1/sqrt(its own convolution's fan-in) (the depthwise
    kh*kw, the pointwise C*m, as PyTorch's modules draw), and predict gives one array per output."""
    from cnnspec.backend.plugins import load_backend

    backend = load_backend("onnx")
    graph = cnnspec.loads(json.dumps(ALL)).graph
    model = backend.compile(graph, seed=0)
    drawn = backend.get_weights(model, graph)
    assert drawn.keys() == expected_weights(graph).keys()
    assert np.abs(drawn["down-1.depthwise.weight"]).max() <= 1 / 3           # 3x3 window, one channel
    assert np.abs(drawn["down-1.pointwise.weight"]).max() <= 1 / np.sqrt(6)  # 6 channels in
    assert np.abs(drawn["down-1.pointwise.weight"]).max() > 1 / 3
    outputs = backend.predict(model, np.zeros((2, 3, 10, 10), np.float32))
    assert [o.shape for o in outputs] == [(2, *n.shape) for n in graph.output_nodes]
