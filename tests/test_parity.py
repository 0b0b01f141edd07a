"""One spec, the same numbers everywhere: with the same weights, the Keras and PyTorch eager models and
the core's ONNX file (under ONNX Runtime) agree within 1e-5 of the output's scale at batch 1 and 3,
and every output shape is the checker's. Where a deep net's numbers grow large and float32 rounding
alone exceeds that, each result must stay within the float32 noise floor measured against a float64
PyTorch reference (a few times PyTorch's own float32 error).

Weights are drawn once in the neutral layout with batchnorm statistics off 0 and 1, so a wrong
transposition, flatten order, epsilon or momentum shows up as a mismatch.
"""
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("keras")
ort = pytest.importorskip("onnxruntime")

import yaml  # noqa: E402
from cnnspec_keras import KerasBackend  # noqa: E402
from cnnspec_torch import TorchBackend  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from strategies import spec_dicts, to_spec  # noqa: E402

import cnnspec  # noqa: E402
from cnnspec.errors import SpecError  # noqa: E402
from cnnspec.weights.neutral import expected_weights  # noqa: E402

pytestmark = [pytest.mark.keras, pytest.mark.torch, pytest.mark.xdist_group("keras")]
KERAS, TORCH = KerasBackend(), TorchBackend()
RTOL = 1e-5
SPECS = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.yaml"))
# zoo nets that end in global pooling, and fully convolutional ones (U-Net: a map out), are checked at
# this input size (same layers, same weights); the ones with a fixed flatten -> dense head (VGG-16,
# AlexNet) at their own size, marked slow
SMALL_SIDE = 64
MAX_PARAMS = 30_000_000


def neutral_weights(graph, seed=1) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in expected_weights(graph).items():
        if key.endswith("running_var"):
            value = rng.uniform(0.5, 1.5, shape)
        elif key.endswith("running_mean"):
            value = rng.normal(0.0, 0.2, shape)
        elif len(shape) == 1 and key.endswith(".weight"):  # batchnorm scale
            value = rng.uniform(0.5, 1.5, shape)
        elif len(shape) == 1:
            value = rng.normal(0.0, 0.1, shape)
        else:
            value = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[1:])), shape)
        out[key] = value.astype(np.float32)
    return out


def assert_close(got, expected, what, rtol=RTOL):
    assert got.shape == expected.shape, (what, got.shape, expected.shape)
    scale = max(float(np.abs(expected).max()), 1e-30)
    err = float(np.abs(got - expected).max())
    assert err <= rtol * max(scale, 1.0), f"{what}: max abs error {err:.3g} (output scale {scale:.3g})"


FLOOR_FACTOR = 4  # how far above PyTorch's own float32 error another float32 result may be


def float64_reference(graph, weights, x):
    import torch

    model = TORCH.compile(graph, weights=weights).double()
    with torch.inference_mode():
        y = model(torch.from_numpy(x).double())
        return [v.numpy() for v in y] if isinstance(y, tuple) else [y.numpy()]


def _listed(y) -> list:
    """A backend's prediction as a list of outputs (one for a single-output graph)."""
    return list(y) if isinstance(y, (list, tuple)) else [y]


def check_parity(graph, tmp_path, batches=(1, 3), seed=1):
    """Keras eager, the core's ONNX file and the ONNX backend against PyTorch eager, on the same
    weights; returns the worst relative error."""
    from cnnspec.onnxfile.writer import write_onnx

    weights = neutral_weights(graph, seed)
    keras_model = KERAS.compile(graph, weights=weights)
    torch_model = TORCH.compile(graph, weights=weights)
    write_onnx(graph, weights, tmp_path / "model.onnx")
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    for batch in batches:
        x = rng.standard_normal((batch, *graph.input_shape)).astype(np.float32)
        every_expected = _listed(TORCH.predict(torch_model, x))
        assert [e.shape for e in every_expected] == [(batch, *n.shape) for n in graph.output_nodes]
        every_result = {"keras": _listed(KERAS.predict(keras_model, x)), "onnx": session.run(None, {"input": x})}
        references = None
        for k, (output, expected) in enumerate(zip(graph.output_names, every_expected)):
            scale = max(float(np.abs(expected).max()), 1.0)
            for name, outputs in every_result.items():
                assert len(outputs) == len(every_expected), name
                got = outputs[k]
                what = f"{graph.name} {name} vs torch, output {output}, batch {batch}"
                if float(np.abs(got - expected).max()) > RTOL * scale:  # float32 rounding of a deep net?
                    references = float64_reference(graph, weights, x) if references is None else references
                    floor = float(np.abs(expected - references[k]).max())
                    err = float(np.abs(got - references[k]).max())
                    assert err <= FLOOR_FACTOR * floor + 1e-6 * scale, \
                        f"{what}: {err:.3g} from float64, torch float32 is {floor:.3g} from it"
                else:
                    assert_close(got, expected, what)
                worst = max(worst, float(np.abs(got - expected).max() / scale))
    return worst


def _without_expect(node):
    """The spec without its `expect` shapes, which name the full-size shapes."""
    if isinstance(node, dict):
        return {k: _without_expect(v) for k, v in node.items() if k != "expect"}
    if isinstance(node, list):
        return [_without_expect(v) for v in node]
    return node


def _same_head(small, full) -> bool:
    """A vector output must be the same vector; a map output (a segmentation net's per-pixel scores)
    the same channels at the smaller size."""
    if len(full.output_shape) == 1:
        return small.output_shape == full.output_shape
    return len(small.output_shape) == len(full.output_shape) and small.output_shape[0] == full.output_shape[0]


def graph_at_test_size(path):
    """The spec at SMALL_SIDE input where it still checks (global pooling heads, fully convolutional
    nets), else as written."""
    graph = cnnspec.load(path).graph
    if graph.input_shape[1] <= SMALL_SIDE:
        return graph
    doc = _without_expect(yaml.safe_load(Path(path).read_text()))
    doc["input"] = [graph.input_shape[0], SMALL_SIDE, SMALL_SIDE]
    try:
        small = cnnspec.loads(json.dumps(doc), file=str(path)).graph
    except SpecError:
        return graph
    return small if _same_head(small, graph) else graph


# several-output zoo nets, 6-16 s each here: their kinds of layers and outputs are covered fast by the
# edge cases and tests/test_third_edition_ops.py
SLOW_SPECS = {"yolov3-tiny"}


def _zoo_param(path):
    graph = graph_at_test_size(path)
    heavy = graph.params > MAX_PARAMS or graph.macs > 2_000_000_000 or path.stem in SLOW_SPECS
    marks = [pytest.mark.slow] if heavy else []  # VGG-16 and AlexNet: about 12 s and 6 s here, so they run too
    return pytest.param(path, id=path.stem, marks=marks)


@pytest.mark.parametrize("path", [_zoo_param(p) for p in SPECS])
def test_zoo_keras_torch_and_onnx_agree(path, tmp_path):
    check_parity(graph_at_test_size(path), tmp_path)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(spec_dicts())
def test_random_specs_keras_torch_and_onnx_agree(tmp_path, doc):
    check_parity(to_spec(doc).graph, tmp_path)


def graph_of(input_shape, layers):
    doc = {"cnnspec": 1, "name": "edge", "input": list(input_shape), "layers": layers}
    return cnnspec.loads(json.dumps(doc)).graph


# the cases that break converters in the wild
EDGE_CASES = {
    # TensorFlow's graph optimiser fused conv + bias + add + Keras' own mish into a kernel its CPU build
    # lacks ('Fusion is not implemented: [BiasAdd,Add,Mish]'), found by the random specs below
    "conv-add-mish": ([2, 3, 3], [{"conv2d": {"filters": 2, "kernel": 3, "padding": "same"}, "name": "c"},
                                  {"add": None, "in": ["input", "c"]}, "mish", "flatten"]),
    "stride2-same-even": ([2, 8, 8], [{"conv2d": {"filters": 3, "kernel": 3, "stride": 2, "padding": "same"}}]),
    "stride2-same-even-k4": ([2, 8, 6], [{"conv2d": {"filters": 3, "kernel": 4, "stride": 2, "padding": "same"}}]),
    "max-same-odd": ([2, 7, 5], [{"maxpool2d": {"kernel": 2, "padding": "same"}}]),
    "avg-same-odd": ([2, 7, 5], [{"avgpool2d": {"kernel": 2, "padding": "same"}}]),
    "avg-same-odd-stride1": ([2, 5, 5], [{"avgpool2d": {"kernel": 3, "stride": 1, "padding": "same"}}]),
    "max-explicit-over-negatives": ([2, 5, 5], [{"conv2d": {"filters": 2, "kernel": 1, "activation": None}},
                                                {"maxpool2d": {"kernel": 3, "stride": 2, "padding": 1}}]),
    "avg-explicit-counts-zeros": ([1, 5, 5], [{"avgpool2d": {"kernel": 3, "stride": 2, "padding": 1}}]),
    "depthwise": ([4, 9, 9], [{"conv2d": {"filters": 4, "kernel": 3, "groups": 4, "padding": 1}}]),
    "depthwise-multiplier": ([3, 8, 8], [{"conv2d": {"filters": 6, "kernel": 3, "groups": 3, "stride": 2,
                                                     "padding": "same", "activation": "relu6"}}]),
    "grouped": ([6, 8, 8], [{"conv2d": {"filters": 4, "kernel": [3, 1], "groups": 2, "bias": False}}]),
    # Keras trains these through depthwise_conv2d or one convolution per group (layers.GroupedConv2D)
    "depthwise-dilated": ([4, 9, 8], [{"conv2d": {"filters": 8, "kernel": [3, 2], "groups": 4, "dilation": [1, 2],
                                                  "padding": "same"}}]),
    "depthwise-unequal-strides": ([4, 9, 8], [{"conv2d": {"filters": 4, "kernel": 3, "groups": 4, "stride": [2, 1],
                                                          "padding": "same"}}]),
    "dilation": ([2, 11, 11], [{"conv2d": {"filters": 3, "kernel": 3, "dilation": [2, 3], "padding": "same"}}]),
    "dilation-with-stride": ([2, 11, 10], [{"conv2d": {"filters": 3, "kernel": 3, "dilation": 2, "stride": 2,
                                                       "padding": "same", "groups": 1}},
                                           {"conv2d": {"filters": 3, "kernel": 2, "dilation": 2, "stride": 3,
                                                       "groups": 3, "padding": 1}}]),
    "concat-channels": ([2, 6, 6], [{"conv2d": {"filters": 3, "kernel": 3, "padding": "same"}, "name": "a"},
                                    {"conv2d": {"filters": 5, "kernel": 1}, "name": "b", "in": "input"},
                                    {"concat": None, "in": ["a", "b", "input"]}, "softmax"]),
    # MobileNetV3's squeeze-and-excite: a [C] gate multiplies the [C, H, W] map (NHWC: reshaped to [1, 1, C])
    "squeeze-excite": ([4, 6, 5], [{"conv2d": {"filters": 8, "kernel": 3, "padding": "same",
                                               "activation": "hard_swish"}, "name": "stem"},
                                   {"global_avgpool2d": None, "name": "se.pool"},
                                   {"dense": {"units": 2, "activation": "relu"}, "name": "se.fc1"},
                                   {"dense": {"units": 8, "activation": "hard_sigmoid"}, "name": "se.fc2"},
                                   {"multiply": None, "in": ["se.fc2", "stem"], "name": "se.gate"},
                                   {"add": None, "in": ["se.gate", "se.pool"]}, "global_maxpool2d"]),
    # torchvision's SqueezeExcitation (EfficientNet, MobileNetV3): the pool keeps [C, 1, 1], fc1 and fc2
    # are 1x1 convolutions (NHWC [N, 1, 1, C] in Keras), the gate flattened to [C] before multiply
    "squeeze-excite-keepdims": ([6, 7, 5], [{"conv2d": {"filters": 8, "kernel": 3, "padding": "same",
                                                        "activation": "silu"}, "name": "stem"},
                                            {"global_avgpool2d": {"keepdims": True}, "name": "se.avgpool"},
                                            {"conv2d": {"filters": 2, "kernel": 1}, "name": "se.fc1"},
                                            {"silu": None, "name": "se.activation"},
                                            {"conv2d": {"filters": 8, "kernel": 1}, "name": "se.fc2"},
                                            {"sigmoid": None, "name": "se.scale_activation"},
                                            {"flatten": None, "name": "se.flat"},
                                            {"multiply": None, "in": ["stem", "se.flat"], "name": "se"},
                                            {"global_maxpool2d": True}, {"conv2d": {"filters": 3, "kernel": 1}}]),
    # ConvNeXt's layer scale on a map and on features
    "layer-scale": ([3, 5, 4], [{"conv2d": {"filters": 4, "kernel": 1}}, {"scale": 1e-6}, "global_avgpool2d",
                                {"scale": 0.5}]),
    "flatten-before-dense": ([3, 4, 5], [{"conv2d": {"filters": 4, "kernel": 3, "padding": 1}}, "flatten",
                                         {"batchnorm": {"eps": 1e-3, "momentum": 0.3}},
                                         {"dense": {"units": 5, "activation": "leaky_relu"}}]),
    # batchnorm without a learned scale or shift (constants in ONNX, a buffer in torch, Keras' own switches)
    "batchnorm-fixed-parts": ([3, 5, 4], [{"conv2d": {"filters": 4, "kernel": 3, "bias": False}},
                                          {"batchnorm": {"eps": 1e-3, "scale": False}}, "relu",
                                          {"batchnorm": {"center": False}}, "global_avgpool2d",
                                          {"batchnorm": {"scale": False, "center": False}}]),
    # ConvNeXt's LayerNorm2d (channels at each pixel), then over features
    "layernorm-map-and-vector": ([4, 5, 3], [{"conv2d": {"filters": 6, "kernel": 3, "padding": "same"}},
                                             "layernorm", "flatten", {"layernorm": 1e-3}, {"dense": 3}]),
    "normalize-imagenet": ([3, 6, 5], [{"normalize": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}},
                                       {"conv2d": {"filters": 2, "kernel": 3}}, "global_avgpool2d",
                                       {"normalize": {"mean": 0.1, "std": [0.5, 2.0]}}]),
    "leaky-relu-slope": ([2, 4, 4], [{"leaky_relu": 0.3}, {"conv2d": {"filters": 2, "kernel": 1,
                                                                      "activation": "leaky_relu"}}]),
    "softmax-over-channels": ([3, 4, 4], [{"conv2d": {"filters": 5, "kernel": 1, "activation": "softmax"}}]),
    # the second edition's activations as ops (with their arguments) and fused (with their defaults)
    "modern-activations": ([3, 5, 4], [{"conv2d": {"filters": 4, "kernel": 3, "padding": "same",
                                                   "activation": "swish"}},
                                       "hard_sigmoid",
                                       {"conv2d": {"filters": 4, "kernel": 1, "activation": "hard_swish"}},
                                       {"gelu": "tanh"}, {"conv2d": {"filters": 4, "kernel": 1, "activation": "gelu"}},
                                       {"elu": 0.5}, {"conv2d": {"filters": 4, "kernel": 1, "activation": "elu"}},
                                       "mish", "swish", "hard_swish", "gelu", "flatten",
                                       {"dense": {"units": 3, "activation": "mish"}}]),
    "residual-add": ([3, 6, 6], [{"conv2d": {"filters": 3, "kernel": 3, "padding": "same"}, "name": "a"},
                                 {"batchnorm": None}, {"add": None, "in": ["input", "batchnorm_1"]}, "relu",
                                 "global_avgpool2d", {"dense": 4}, "softmax"]),
    # the spatial ops of the second edition: four-sided padding, ceil pools, transposed convolutions,
    # zero padding (a value too), cropping, upsampling
    "conv-four-sided": ([2, 7, 6], [{"conv2d": {"filters": 3, "kernel": 3, "stride": 2, "padding": [1, 0, 2, 1]}}]),
    "max-four-sided-over-negatives": ([2, 6, 7], [{"conv2d": {"filters": 2, "kernel": 1}},
                                                  {"maxpool2d": {"kernel": 3, "stride": 2, "padding": [1, 0, 0, 1]}}]),
    "avg-four-sided-counts-zeros": ([2, 6, 5], [{"avgpool2d": {"kernel": 2, "padding": [1, 0, 0, 1]}}]),
    "max-ceil": ([2, 8, 7], [{"maxpool2d": {"kernel": 3, "stride": 2, "ceil": True}}]),
    "max-ceil-padded-drops-last-window": ([2, 5, 5], [{"maxpool2d": {"kernel": 2, "padding": 1, "ceil": True}}]),
    "max-ceil-four-sided": ([2, 7, 6], [{"maxpool2d": {"kernel": 3, "stride": 2, "padding": [1, 0, 0, 1],
                                                       "ceil": True}}]),
    "transpose-same-odd-crop": ([3, 4, 5], [{"conv2d_transpose": {"filters": 2, "kernel": 3, "stride": 2,
                                                                  "padding": "same", "activation": "leaky_relu"}}]),
    "transpose-padding-output-padding": ([3, 4, 3], [{"conv2d_transpose": {"filters": 2, "kernel": [3, 2],
                                                                           "stride": [2, 3], "padding": 1,
                                                                           "output_padding": [1, 2]}}]),
    "transpose-four-sided-kernel-below-stride": ([2, 3, 4], [{"conv2d_transpose": {
        "filters": 3, "kernel": [1, 3], "stride": 2, "padding": [0, 1, 2, 0], "bias": False, "activation": "softmax"}}]),
    "zeropad-then-maxpool": ([2, 6, 6], [{"conv2d": {"filters": 2, "kernel": 1}}, {"zeropad2d": 1},
                                         {"maxpool2d": {"kernel": 3, "stride": 2}}]),  # ResNet50V2's stem
    "zeropad-value-crop": ([2, 5, 6], [{"zeropad2d": {"padding": [2, 0, 1, 3], "value": -0.75}},
                                       {"crop2d": [1, 0, 3, 2]}]),
    "upsample-nearest-pair": ([2, 3, 4], [{"upsample2d": [3, 2]}]),
    "upsample-bilinear": ([2, 4, 3], [{"upsample2d": {"scale": [2, 3], "mode": "bilinear"}}]),
    # a small U-Net: conv, max pool, a stride-2 transposed conv and a bilinear upsample, each joined
    # with its encoder's skip
    "unet-small": ([3, 16, 16], [
        {"conv2d": {"filters": 4, "kernel": 3, "padding": "same", "activation": "relu"}, "name": "enc1"},
        {"maxpool2d": 2, "name": "pool1"},
        {"conv2d": {"filters": 8, "kernel": 3, "padding": "same", "activation": "relu"}, "name": "enc2"},
        {"maxpool2d": 2, "name": "pool2"},
        {"conv2d": {"filters": 8, "kernel": 3, "padding": "same", "activation": "relu"}, "name": "mid"},
        {"conv2d_transpose": {"filters": 8, "kernel": 2, "stride": 2}, "name": "up2", "expect": [8, 8, 8]},
        {"concat": None, "in": ["up2", "enc2"], "name": "cat2"},
        {"conv2d": {"filters": 8, "kernel": 3, "padding": "same", "activation": "relu"}, "name": "dec2"},
        {"upsample2d": {"scale": 2, "mode": "bilinear"}, "name": "up1"},
        {"concat": None, "in": ["up1", "enc1"], "name": "cat1"},
        {"conv2d": {"filters": 4, "kernel": 3, "padding": "same", "activation": "relu"}, "name": "dec1"},
        {"conv2d": {"filters": 2, "kernel": 1}, "name": "head", "expect": [2, 16, 16]}]),
    # Keras' own SeparableConv2D layer against torch's depthwise + pointwise and ONNX's two Convs
    "separable-same-stride2-multiplier": ([3, 9, 7], [
        {"separable_conv2d": {"filters": 5, "kernel": 3, "stride": 2, "padding": "same", "depth_multiplier": 2,
                              "activation": "relu"}}]),
    "separable-dilated-stride2-no-bias": ([2, 11, 10], [
        {"separable_conv2d": {"filters": 3, "kernel": [3, 2], "stride": 2, "dilation": 2, "padding": "same",
                              "bias": False, "activation": "leaky_relu"}}]),
    # channels-first in Keras too: to NCHW, reshape, back to NHWC; names with '-' everywhere
    "reshape-map-then-conv-dashed": ([2, 6, 4], [
        {"reshape": [3, -1, 4], "name": "as-map"}, {"conv2d": {"filters": 2, "kernel": 3}, "name": "conv-1"},
        {"reshape": [-1], "name": "flat-1"}, {"dense": 3, "name": "head-1"}]),
    "separable-asymmetric-padding": ([4, 6, 6], [
        {"separable_conv2d": {"filters": 2, "kernel": 2, "padding": [0, 1, 1, 0], "depth_multiplier": 3}}]),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_edge_case_keras_torch_and_onnx_agree(case, tmp_path):
    check_parity(graph_of(*EDGE_CASES[case]), tmp_path)


def test_explicit_max_padding_never_wins_over_negative_values():
    """All-negative input: zero padding would put 0 in the border windows, -inf padding does not."""
    graph = graph_of([1, 4, 4], [{"maxpool2d": {"kernel": 3, "stride": 2, "padding": 1}}])
    model = KERAS.compile(graph)
    x = -1.0 - np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    got = KERAS.predict(model, x)
    assert got.shape == (1, 1, 2, 2)
    assert (got < 0).all()
    np.testing.assert_array_equal(got[0, 0], [[-1.0, -2.0], [-5.0, -6.0]])


def test_flatten_is_channel_row_column():
    """Identity-like dense after flatten: Keras must see the C-H-W order, not Keras' H-W-C."""
    graph = graph_of([2, 2, 3], ["flatten", {"dense": {"units": 12, "bias": False}}])
    weights = {"dense_1.weight": np.eye(12, dtype=np.float32)}
    model = KERAS.compile(graph, weights=weights)
    x = np.arange(12, dtype=np.float32).reshape(1, 2, 2, 3)
    np.testing.assert_array_equal(KERAS.predict(model, x)[0], np.arange(12, dtype=np.float32))


def test_weights_round_trip_torch_keras_torch():
    """Weights changed in PyTorch load into Keras, and back out unchanged, bit for bit."""
    graph = graph_of(*EDGE_CASES["flatten-before-dense"])
    torch_model = TORCH.compile(graph, seed=5)
    import torch

    with torch.no_grad():  # "training" moved every weight and statistic off its initial value
        for tensor in torch_model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(0.25).mul_(1.5)
    from_torch = TORCH.get_weights(torch_model, graph)
    keras_model = KERAS.compile(graph, weights=from_torch)
    back = KERAS.get_weights(keras_model, graph)
    assert back.keys() == from_torch.keys()
    for key in from_torch:
        np.testing.assert_array_equal(back[key], from_torch[key], err_msg=key)
    again = TORCH.compile(graph, weights=back)
    x = np.random.default_rng(0).standard_normal((3, *graph.input_shape)).astype(np.float32)
    assert_close(KERAS.predict(keras_model, x), TORCH.predict(again, x), "keras after torch round trip")


def test_torch_build_weights_feed_keras_build(tmp_path):
    """`cnnspec build --backend keras --weights` takes the torch build's weights.safetensors."""
    from cnnspec.weights.safetensors_io import read_weights

    graph = graph_of(*EDGE_CASES["depthwise-multiplier"])
    TORCH.build(graph, tmp_path / "torch", seed=3)
    weights = read_weights(tmp_path / "torch" / "weights.safetensors", graph)
    KERAS.build(graph, tmp_path / "keras", weights=weights)
    x = np.random.default_rng(0).standard_normal((2, *graph.input_shape)).astype(np.float32)
    outs = [ort.InferenceSession(str(tmp_path / b / "model.onnx")).run(None, {"input": x})[0] for b in ("torch", "keras")]
    assert_close(outs[1], outs[0], "keras build vs torch build")
    core = [(tmp_path / b / "model.onnx").read_bytes() for b in ("torch", "keras")]
    assert len(core[0]) == len(core[1])  # the same writer: only the backend's name in the metadata differs
    assert (tmp_path / "keras" / "weights.safetensors").read_bytes() == (tmp_path / "torch" / "weights.safetensors").read_bytes()


@pytest.mark.parametrize("case", ["depthwise-dilated", "dilation-with-stride", "flatten-before-dense", "residual-add"])
def test_tf2onnx_cross_check_agrees_with_the_writer(case, tmp_path):
    """tf2onnx (no longer the product's path) and the core writer compute the same numbers."""
    pytest.importorskip("tf2onnx")
    from cnnspec.onnxfile.writer import write_onnx

    graph = graph_of(*EDGE_CASES[case])
    weights = neutral_weights(graph)
    KERAS.export_onnx_native(KERAS.compile(graph, weights=weights), graph, tmp_path / "tf2onnx.onnx")
    write_onnx(graph, weights, tmp_path / "core.onnx")
    x = np.random.default_rng(0).standard_normal((3, *graph.input_shape)).astype(np.float32)
    run = lambda p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]  # noqa: E731
    assert_close(run(tmp_path / "tf2onnx.onnx"), run(tmp_path / "core.onnx"), f"{case}: tf2onnx vs writer")
