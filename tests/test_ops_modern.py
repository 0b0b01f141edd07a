"""The modern op set (the contract's "Additions to version 1 (second edition)", issue 9, this part):
silu/swish, hard_sigmoid, hard_swish, gelu, elu, mish; broadcasting add and multiply; scale;
global_maxpool2d; batchnorm scale/center; layernorm; normalize.

Table-driven: shapes, counts and weights per op, located errors that show the shapes, then each op's
numbers against an independent reference (numpy, or torch.nn.functional in float64) in the three
targets, torch eager, keras eager and the core's ONNX file under ONNX Runtime, within 1e-5 of the
output's scale; a squeeze-and-excite block through all three and through the generated files.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from check_cases import assert_first_error

import cnnspec
from cnnspec.graph.ops import OPS
from cnnspec.weights.neutral import expected_weights

HEAD = "cnnspec: 1\nname: t\ninput: [3, 8, 8]\nlayers:\n"
RTOL = 1e-5


def graph_of(input_shape, layers, name="modern"):
    return cnnspec.loads(json.dumps({"cnnspec": 1, "name": name, "input": list(input_shape), "layers": layers})).graph


# ---------------------------------------------------------------- shapes, counts, weights

GATE = [{"global_avgpool2d": None, "name": "g"}]
SHAPES = [
    # (id, input, layers, output shape, params, neutral weights of the last layer)
    ("silu", [3, 5, 4], ["silu"], (3, 5, 4), 0, {}),
    ("swish", [3, 5, 4], ["swish"], (3, 5, 4), 0, {}),
    ("hard_sigmoid", [3, 5, 4], ["hard_sigmoid"], (3, 5, 4), 0, {}),
    ("hard_swish-vector", [3, 5, 4], ["flatten", "hard_swish"], (60,), 0, {}),
    ("gelu-tanh", [3, 5, 4], [{"gelu": "tanh"}], (3, 5, 4), 0, {}),
    ("elu", [3, 5, 4], [{"elu": 0.5}], (3, 5, 4), 0, {}),
    ("mish", [3, 5, 4], ["mish"], (3, 5, 4), 0, {}),
    ("conv-swish", [3, 5, 4], [{"conv2d": {"filters": 2, "kernel": 1, "activation": "swish"}}], (2, 5, 4), 8,
     {"weight": (2, 3, 1, 1), "bias": (2,)}),
    ("global_maxpool2d", [3, 5, 4], ["global_maxpool2d"], (3,), 0, {}),
    ("multiply-gate", [3, 5, 4], GATE + [{"multiply": None, "in": ["input", "g"]}], (3, 5, 4), 0, {}),
    ("multiply-gate-first", [3, 5, 4], GATE + [{"multiply": None, "in": ["g", "input", "g"]}], (3, 5, 4), 0, {}),
    ("add-gate", [3, 5, 4], GATE + [{"add": None, "in": ["input", "g"]}], (3, 5, 4), 0, {}),
    ("multiply-maps", [3, 5, 4], [{"multiply": None, "in": ["input", "input"]}], (3, 5, 4), 0, {}),
    ("multiply-vectors", [3, 5, 4], GATE + [{"multiply": None, "in": ["g", "g"]}], (3,), 0, {}),
    ("scale-map", [3, 5, 4], [{"scale": 1e-6}], (3, 5, 4), 3, {"weight": (3,)}),
    ("scale-vector", [3, 5, 4], ["flatten", "scale"], (60,), 60, {"weight": (60,)}),
    ("batchnorm", [3, 5, 4], ["batchnorm"], (3, 5, 4), 6,
     {"weight": (3,), "bias": (3,), "running_mean": (3,), "running_var": (3,)}),
    ("batchnorm-no-scale", [3, 5, 4], [{"batchnorm": {"scale": False}}], (3, 5, 4), 3,
     {"bias": (3,), "running_mean": (3,), "running_var": (3,)}),
    ("batchnorm-no-center", [3, 5, 4], [{"batchnorm": {"center": False}}], (3, 5, 4), 3,
     {"weight": (3,), "running_mean": (3,), "running_var": (3,)}),
    ("batchnorm-neither", [3, 5, 4], ["flatten", {"batchnorm": {"scale": False, "center": False}}], (60,), 0,
     {"running_mean": (60,), "running_var": (60,)}),
    ("layernorm-map", [3, 5, 4], ["layernorm"], (3, 5, 4), 6, {"weight": (3,), "bias": (3,)}),
    ("layernorm-vector", [3, 5, 4], ["flatten", {"layernorm": 1e-3}], (60,), 120, {"weight": (60,), "bias": (60,)}),
    ("normalize-lists", [3, 5, 4], [{"normalize": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}],
     (3, 5, 4), 0, {}),
    ("normalize-numbers", [3, 5, 4], [{"normalize": {"mean": 0.5, "std": 0.25}}], (3, 5, 4), 0, {}),
    ("normalize-vector", [3, 5, 4], GATE + [{"normalize": {"std": [1, 2, 3]}}], (3,), 0, {}),
]


@pytest.mark.parametrize("case, shape, layers, out, params, weights", SHAPES, ids=[c[0] for c in SHAPES])
def test_shape_params_macs_and_weights(case, shape, layers, out, params, weights):
    graph = graph_of(shape, layers)
    last = graph.output
    assert (last.shape, last.params) == (out, params)
    assert last.macs == 0 or last.op == "conv2d"  # every new op counts 0 MACs
    assert {k.rsplit(".", 1)[1]: v for k, v in expected_weights(graph).items()
            if k.startswith(last.name + ".")} == weights


def test_a_batchnorm_without_a_learned_scale_counts_only_its_shift():
    """InceptionV3's conv (no bias) + batchnorm(scale=False): C params per batchnorm, not 2C."""
    graph = graph_of([3, 8, 8], [{"conv2d": {"filters": 32, "kernel": 3, "bias": False}},
                                 {"batchnorm": {"eps": 1e-3, "scale": False}}])
    assert [n.params for n in graph.nodes] == [32 * 3 * 9, 32]


def test_swish_is_read_as_silu_everywhere():
    graph = graph_of([2, 4, 4], ["swish", {"conv2d": {"filters": 2, "kernel": 1, "activation": "swish"}},
                                 "flatten", {"dense": {"units": 2, "activation": "swish"}}])
    assert [n.op for n in graph.nodes] == ["silu", "conv2d", "flatten", "dense"]
    assert graph.nodes[1].attrs["activation"] == graph.nodes[3].attrs["activation"] == "silu"
    assert graph.nodes[0].name == "swish_1"  # named as written, counted per spelling
    assert OPS["swish"] is OPS["silu"]


# ---------------------------------------------------------------- located errors

ERRORS = [
    # (id, layers after HEAD (input [3, 8, 8]), first error "LINE:COL: message")
    ("gate-channels", "  - conv2d: {filters: 8, kernel: 3}\n  - {global_avgpool2d: null, in: input, name: g}\n"
                      "  - {multiply: null, in: [conv2d_1, g]}\n",
     "7:5: multiply_1: a [C] vector is broadcast over a [C, H, W] map of the same C, but [3] has 3 channels and "
     "the map [8, 6, 6] has 8"),
    ("add-gate-channels", "  - {global_avgpool2d: null, name: g}\n  - {dense: 4, name: d}\n"
                          "  - {add: null, in: [d, input]}\n",
     "7:5: add_1: a [C] vector is broadcast over a [C, H, W] map of the same C, but [4] has 4 channels and "
     "the map [3, 8, 8] has 3"),
    ("multiply-maps", "  - {maxpool2d: 2, name: p}\n  - {multiply: null, in: [input, p]}\n",
     "6:5: multiply_1: inputs must have equal shapes but get [3, 8, 8], [3, 4, 4]"),
    ("multiply-one-input", "  - multiply\n", "5:5: multiply_1: multiply needs 'in' to name at least 2 layers, got 1"),
    ("normalize-mean-count", "  - normalize: {mean: [0.4, 0.5], std: 0.2}\n",
     "5:5: normalize_1: 'mean' needs a single number or one per channel (3), but has 2 numbers for an input of "
     "[3, 8, 8]"),
    ("normalize-std-count-vector", "  - global_avgpool2d\n  - normalize: {std: [1, 2]}\n",
     "6:5: normalize_1: 'std' needs a single number or one per feature (3), but has 2 numbers for an input of [3]"),
    ("normalize-std-zero", "  - normalize: {std: [0.2, 0, 1]}\n",
     "5:22: normalize_1: 'std' must be a number > 0 or a list of them, one per channel, got [0.2, 0, 1]"),
    ("gelu-approximate", "  - gelu: exact\n", "5:11: gelu_1: 'approximate' must be one of 'none', 'tanh', got 'exact'"),
    ("elu-alpha", "  - elu: -1\n", "5:10: elu_1: 'alpha' must be at least 0, got -1"),
    ("global-maxpool-vector", "  - flatten\n  - global_maxpool2d\n",
     "6:5: global_maxpool2d_1: needs a [C, H, W] input but gets [192]; a 1-D vector has no height and width "
     "(was there a 'flatten' too early?)"),
    ("activation-typo", "  - conv2d: {filters: 3, kernel: 3, activation: swihs}\n",
     "5:49: conv2d_1: 'activation' must be one of 'relu', 'relu6', 'sigmoid', 'tanh', 'softmax', 'leaky_relu', "
     "'silu', 'swish', 'hard_sigmoid', 'hard_swish', 'gelu', 'elu', 'mish', got 'swihs'; did you mean 'swish'?"),
    ("layernorm-eps", "  - layernorm: 0\n", "5:16: layernorm_1: 'eps' must be more than 0, got 0"),
    ("batchnorm-scale-word", "  - batchnorm: {scale: 'off'}\n",
     "5:24: batchnorm_1: 'scale' must be true or false, got 'off'"),
    ("scale-init-list", "  - scale: [1, 2]\n", "5:12: scale_1: 'init' must be a number, got [1, 2]"),
]


@pytest.mark.parametrize("case, body, expected", ERRORS, ids=[c[0] for c in ERRORS])
def test_each_mistake_is_a_located_error_that_shows_what_was_received(tmp_path, case, body, expected):
    assert_first_error(tmp_path, case, HEAD + body, expected)


# ---------------------------------------------------------------- numbers against independent references

def functional(name, **kwargs):
    """torch.nn.functional's ``name`` in float64: the reference PyTorch documents."""
    def reference(x, w):
        torch = pytest.importorskip("torch")
        import torch.nn.functional as F

        return getattr(F, name)(torch.from_numpy(x), **kwargs).numpy()
    return reference


def hard_sigmoid(x):
    return np.minimum(np.maximum(x + 3.0, 0.0), 6.0) / 6.0  # the contract's formula, in numpy


def gelu_erf(x):
    from math import erf

    return x * 0.5 * (1.0 + np.vectorize(erf)(x / np.sqrt(2.0)))


# activation -> its reference on an array (for the fused cases too)
ACTIVATION_REFERENCES = {
    "silu": lambda x: x / (1.0 + np.exp(-x)),
    "swish": lambda x: x / (1.0 + np.exp(-x)),
    "hard_sigmoid": hard_sigmoid,
    "hard_swish": lambda x: x * hard_sigmoid(x),
    "gelu": gelu_erf,
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "mish": lambda x: x * np.tanh(np.logaddexp(0.0, x)),
}


def _w(w, key):
    return w[key].astype(np.float64)


def _channels(v, x):
    """A [C] vector shaped to broadcast over x ([N, C, H, W] or [N, C])."""
    return np.asarray(v, dtype=np.float64).reshape((-1,) + (1,) * (x.ndim - 2))


def _batchnorm(x, w, name, eps=1e-5):
    weight = _w(w, f"{name}.weight") if f"{name}.weight" in w else 1.0
    bias = _w(w, f"{name}.bias") if f"{name}.bias" in w else 0.0
    mean, var = _w(w, f"{name}.running_mean"), _w(w, f"{name}.running_var")
    return ((x - _channels(mean, x)) / np.sqrt(_channels(var, x) + eps) * _channels(weight, x)
            + _channels(bias, x))


def _layernorm_map(x, w, name="layernorm_1", eps=1e-5):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    last = torch.from_numpy(x).permute(0, 2, 3, 1)
    out = F.layer_norm(last, (x.shape[1],), torch.from_numpy(_w(w, f"{name}.weight")),
                       torch.from_numpy(_w(w, f"{name}.bias")), eps)
    return out.permute(0, 3, 1, 2).numpy()


def _layernorm_vector(x, w, name="layernorm_1", eps=1e-3):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    flat = torch.from_numpy(x.reshape(len(x), -1))
    return F.layer_norm(flat, (flat.shape[1],), torch.from_numpy(_w(w, f"{name}.weight")),
                        torch.from_numpy(_w(w, f"{name}.bias")), eps).numpy()


def _conv1x1(x, w, name="conv2d_1"):
    return (np.einsum("nchw,oc->nohw", x, _w(w, f"{name}.weight")[:, :, 0, 0])
            + _channels(_w(w, f"{name}.bias"), x))


IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
NUMBERS = {
    # id -> (input, layers, reference(x float64 NCHW, neutral weights) -> output)
    "silu": ([3, 5, 4], ["silu"], functional("silu")),
    "swish": ([3, 5, 4], ["swish"], functional("silu")),
    "hard_sigmoid": ([3, 5, 4], ["hard_sigmoid"], lambda x, w: hard_sigmoid(x)),
    "hard_sigmoid-torch-reference": ([3, 5, 4], ["hard_sigmoid"], functional("hardsigmoid")),
    "hard_swish": ([3, 5, 4], ["hard_swish"], functional("hardswish")),
    "gelu": ([3, 5, 4], ["gelu"], functional("gelu")),
    "gelu-erf-numpy": ([3, 5, 4], [{"gelu": "none"}], lambda x, w: gelu_erf(x)),
    "gelu-tanh": ([3, 5, 4], [{"gelu": "tanh"}], functional("gelu", approximate="tanh")),
    "elu": ([3, 5, 4], ["elu"], functional("elu")),
    "elu-alpha": ([3, 5, 4], [{"elu": 0.5}], functional("elu", alpha=0.5)),
    "mish": ([3, 5, 4], ["mish"], functional("mish")),
    "mish-vector": ([3, 5, 4], ["flatten", "mish"], lambda x, w: ACTIVATION_REFERENCES["mish"](x.reshape(len(x), -1))),
    **{f"conv-{act}": ([3, 5, 4], [{"conv2d": {"filters": 2, "kernel": 1, "activation": act}}],
                       lambda x, w, act=act: ACTIVATION_REFERENCES[act](_conv1x1(x, w)))
       for act in ACTIVATION_REFERENCES},
    "dense-gelu": ([3, 2, 2], ["flatten", {"dense": {"units": 4, "activation": "gelu"}}],
                   lambda x, w: gelu_erf(x.reshape(len(x), -1) @ _w(w, "dense_1.weight").T + _w(w, "dense_1.bias"))),
    "global_maxpool2d": ([3, 5, 4], ["global_maxpool2d"], lambda x, w: x.max(axis=(2, 3))),
    "multiply-gate": ([3, 5, 4], GATE + [{"multiply": None, "in": ["input", "g"]}],
                      lambda x, w: x * x.mean(axis=(2, 3))[:, :, None, None]),
    "multiply-gate-first": ([3, 5, 4], GATE + [{"multiply": None, "in": ["g", "input", "g"]}],
                            lambda x, w: x.mean(axis=(2, 3))[:, :, None, None] ** 2 * x),
    "add-gate": ([3, 5, 4], GATE + [{"add": None, "in": ["input", "g"]}],
                 lambda x, w: x + x.mean(axis=(2, 3))[:, :, None, None]),
    "add-gates-then-map": ([3, 5, 4], GATE + [{"add": None, "in": ["g", "g", "input"]}],
                           lambda x, w: 2 * x.mean(axis=(2, 3))[:, :, None, None] + x),
    "multiply-maps": ([3, 5, 4], [{"multiply": None, "in": ["input", "input"]}], lambda x, w: x * x),
    "multiply-vectors": ([3, 5, 4], GATE + [{"global_maxpool2d": None, "in": "input", "name": "m"},
                                            {"multiply": None, "in": ["g", "m"]}],
                         lambda x, w: x.mean(axis=(2, 3)) * x.max(axis=(2, 3))),
    "scale-map": ([3, 5, 4], [{"scale": 0.5}], lambda x, w: x * _channels(_w(w, "scale_1.weight"), x)),
    "scale-vector": ([3, 5, 4], ["global_avgpool2d", "scale"],
                     lambda x, w: x.mean(axis=(2, 3)) * _w(w, "scale_1.weight")),
    "batchnorm-no-scale": ([3, 5, 4], [{"batchnorm": {"scale": False}}],
                           lambda x, w: _batchnorm(x, w, "batchnorm_1")),
    "batchnorm-no-center": ([3, 5, 4], [{"batchnorm": {"center": False}}],
                            lambda x, w: _batchnorm(x, w, "batchnorm_1")),
    "batchnorm-neither": ([3, 5, 4], [{"batchnorm": {"scale": False, "center": False, "eps": 1e-3}}],
                          lambda x, w: _batchnorm(x, w, "batchnorm_1", 1e-3)),
    "batchnorm-vector-no-scale": ([3, 5, 4], ["global_avgpool2d", {"batchnorm": {"scale": False}}],
                                  lambda x, w: _batchnorm(x.mean(axis=(2, 3)), w, "batchnorm_1")),
    "layernorm-map": ([3, 5, 4], ["layernorm"], _layernorm_map),
    "layernorm-vector": ([3, 5, 4], ["flatten", {"layernorm": 1e-3}], _layernorm_vector),
    "normalize-lists": ([3, 5, 4], [{"normalize": IMAGENET}],
                        lambda x, w: (x - _channels(IMAGENET["mean"], x)) / _channels(IMAGENET["std"], x)),
    "normalize-numbers": ([3, 5, 4], [{"normalize": {"mean": 0.5, "std": 0.25}}], lambda x, w: (x - 0.5) / 0.25),
    "normalize-vector": ([3, 5, 4], ["global_avgpool2d", {"normalize": {"mean": [1, 0, -1], "std": [1, 2, 3]}}],
                         lambda x, w: (x.mean(axis=(2, 3)) - [1, 0, -1]) / np.array([1.0, 2.0, 3.0])),
}


def neutral_weights(graph, seed=1) -> dict:
    """Every weight drawn; 1-D scales near 1, variances positive, so a wrong part shows."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in expected_weights(graph).items():
        part = key.rsplit(".", 1)[1]
        if part == "running_var" or (part == "weight" and len(shape) == 1):
            value = rng.uniform(0.5, 1.5, shape)
        elif len(shape) == 1:
            value = rng.normal(0.0, 0.3, shape)
        else:
            value = rng.normal(0.0, 0.5, shape)
        out[key] = value.astype(np.float32)
    return out


def _torch(graph, weights, x):
    pytest.importorskip("torch")
    from cnnspec_torch import TorchBackend

    backend = TorchBackend()
    return backend.predict(backend.compile(graph, weights=weights), x)


def _keras(graph, weights, x):
    pytest.importorskip("keras")
    from cnnspec_keras import KerasBackend

    backend = KerasBackend()
    return backend.predict(backend.compile(graph, weights=weights), x)


def _onnx(graph, weights, x):
    ort = pytest.importorskip("onnxruntime")
    from cnnspec.onnxfile.writer import model_bytes

    session = ort.InferenceSession(model_bytes(graph, weights), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


TARGETS = {"torch": _torch, "keras": _keras, "onnx": _onnx}


def assert_close(got, expected, what):
    assert got.shape == expected.shape, (what, got.shape, expected.shape)
    scale = max(float(np.abs(expected).max()), 1.0)
    err = float(np.abs(got.astype(np.float64) - expected).max())
    assert err <= RTOL * scale, f"{what}: max abs error {err:.3g} (output scale {scale:.3g})"


def sample(graph, batch=3, seed=0):
    """Wide enough to reach every branch: hard_sigmoid's clipping, elu's negative side, mish's tails."""
    return (3.0 * np.random.default_rng(seed).standard_normal((batch, *graph.input_shape))).astype(np.float32)


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("case", list(NUMBERS))
def test_each_op_computes_its_reference(case, target):
    shape, layers, reference = NUMBERS[case]
    graph = graph_of(shape, layers)
    weights = neutral_weights(graph)
    x = sample(graph)
    expected = reference(x.astype(np.float64), weights)
    got = TARGETS[target](graph, weights, x)
    assert got.shape == (len(x), *graph.output_shape)
    assert_close(got, expected, f"{case} in {target}")


# ---------------------------------------------------------------- squeeze-and-excite, all three targets

SE_LAYERS = [
    {"conv2d": {"filters": 8, "kernel": 3, "padding": "same", "activation": "swish"}, "name": "stem"},
    {"global_avgpool2d": None, "name": "se.pool"},
    {"dense": {"units": 2, "activation": "relu"}, "name": "se.fc1"},
    {"dense": {"units": 8, "activation": "hard_sigmoid"}, "name": "se.fc2"},
    {"multiply": None, "in": ["stem", "se.fc2"], "name": "se.gate"},
]


def squeeze_excite_reference(x, w):
    """The block by hand in float64: SiLU conv, mean, relu dense, hard_sigmoid dense, gate."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    stem = F.silu(F.conv2d(torch.from_numpy(x), torch.from_numpy(_w(w, "stem.weight")),
                           torch.from_numpy(_w(w, "stem.bias")), padding=1)).numpy()
    pooled = stem.mean(axis=(2, 3))
    hidden = np.maximum(pooled @ _w(w, "se.fc1.weight").T + _w(w, "se.fc1.bias"), 0.0)
    gate = hard_sigmoid(hidden @ _w(w, "se.fc2.weight").T + _w(w, "se.fc2.bias"))
    return stem * gate[:, :, None, None]


@pytest.mark.parametrize("target", list(TARGETS))
def test_squeeze_excite_block_in_each_target(target):
    graph = graph_of([4, 6, 5], SE_LAYERS, "squeeze-excite")
    assert graph.output_shape == (8, 6, 5) and graph.node("se.gate").params == 0
    weights = neutral_weights(graph)
    x = sample(graph)
    assert_close(TARGETS[target](graph, weights, x), squeeze_excite_reference(x.astype(np.float64), weights),
                 f"squeeze-excite in {target}")


# every new op in one net, for the files each build writes
ALL_LAYERS = [
    {"normalize": IMAGENET},
    *SE_LAYERS,
    {"batchnorm": {"scale": False}, "name": "bn"},
    {"layernorm": None, "name": "ln"},
    {"scale": 0.5, "name": "ls"},
    {"gelu": "tanh"}, {"elu": 0.5}, "mish", "hard_swish",
    {"global_maxpool2d": None, "name": "gmp"},
    {"global_avgpool2d": None, "name": "gap", "in": "ls"},
    {"add": None, "in": ["gmp", "gap"]},
    {"batchnorm": {"scale": False, "center": False}},
    "layernorm", "scale",
    {"dense": {"units": 4, "activation": "gelu"}}, "softmax",
]


@pytest.fixture(scope="module")
def all_ops():
    graph = graph_of([3, 6, 5], ALL_LAYERS, "all-modern-ops")
    weights = neutral_weights(graph, seed=4)
    x = sample(graph, seed=5)
    return graph, weights, x


def _run_alone(tmp_path, script: str, *args) -> None:
    """Runs ``script`` in a clean interpreter in an empty folder: the generated file must need no cnnspec."""
    clean = tmp_path / "clean"
    clean.mkdir(exist_ok=True)
    done = subprocess.run([sys.executable, "-I", "-c", script, *map(str, args)], cwd=clean, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_torch_build_model_py_alone_computes_the_same(all_ops, tmp_path):
    pytest.importorskip("torch")
    from cnnspec_torch import TorchBackend

    graph, weights, x = all_ops
    backend = TorchBackend()
    backend.build(graph, tmp_path / "out", weights=weights)
    expected = backend.predict(backend.compile(graph, weights=weights), x)
    text = (tmp_path / "out" / "model.py").read_text()
    assert "fixed_affine(nn.BatchNorm2d(8), scale=False)" in text and "class LayerNorm2d(nn.LayerNorm):" in text
    assert "se_fc2[:, :, None, None]" in text  # the [N, C] gate over the [N, C, H, W] map
    np.save(tmp_path / "x.npy", x)
    _run_alone(tmp_path, "import importlib.util, sys, numpy, torch\n"
                         "spec = importlib.util.spec_from_file_location('generated', sys.argv[1])\n"
                         "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
                         "assert 'cnnspec' not in sys.modules\n"
                         "with torch.no_grad():\n"
                         "    y = mod.load_model()(torch.from_numpy(numpy.load(sys.argv[2])))\n"
                         "numpy.save(sys.argv[3], y.numpy())\n",
               tmp_path / "out" / "model.py", tmp_path / "x.npy", tmp_path / "y.npy")
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-6, atol=1e-7)


def test_keras_build_model_keras_and_model_keras_py_compute_the_same(all_ops, tmp_path):
    keras = pytest.importorskip("keras")
    from cnnspec_keras import KerasBackend

    graph, weights, x = all_ops
    backend = KerasBackend()
    backend.build(graph, tmp_path / "out", weights=weights)
    expected = backend.predict(backend.compile(graph, weights=weights), x)
    loaded = keras.saving.load_model(tmp_path / "out" / "model.keras", safe_mode=True)
    assert_close(np.asarray(loaded(x, training=False)), expected.astype(np.float64), "model.keras")
    np.save(tmp_path / "x.npy", x)
    _run_alone(tmp_path, "import runpy, sys\nsys.argv = sys.argv[1:]\n"
                         "runpy.run_path(sys.argv[0], run_name='__main__')\n",
               tmp_path / "out" / "model_keras.py", tmp_path / "x.npy", tmp_path / "y.npy")
    assert_close(np.load(tmp_path / "y.npy"), expected.astype(np.float64), "model_keras.py")


def test_all_modern_ops_agree_across_targets(all_ops):
    graph, weights, x = all_ops
    expected = _torch(graph, weights, x).astype(np.float64)
    for target in ("keras", "onnx"):
        assert_close(TARGETS[target](graph, weights, x), expected, f"{target} vs torch")


# ---------------------------------------------------------------- what each target holds

def test_fixed_batchnorm_parts_are_neither_weights_nor_trained_in_torch():
    torch = pytest.importorskip("torch")
    from cnnspec_torch import TorchBackend

    graph = graph_of([3, 4, 4], [{"batchnorm": {"scale": False}, "name": "bn"}])
    model = TorchBackend().compile(graph)
    assert list(model.state_dict()) == list(expected_weights(graph)) == ["bn.bias", "bn.running_mean", "bn.running_var"]
    assert [name for name, _ in model.named_parameters()] == ["bn.bias"]
    model.train()
    model(torch.randn(4, 3, 4, 4)).sum().backward()
    bn = model.layer("bn")
    assert torch.equal(bn.weight, torch.ones(3)) and bn.running_mean.abs().sum() > 0


def test_keras_layouts_of_the_weighted_ops_round_trip_bit_for_bit(all_ops):
    pytest.importorskip("keras")
    from cnnspec_keras import KerasBackend

    from cnnspec.weights import keras_layout as layouts

    graph, weights, _ = all_ops
    keras_keys = layouts.expected_keras_weights(graph)
    assert {k for k in keras_keys if k.startswith(("bn.", "ln.", "ls."))} == {
        "bn.beta", "bn.moving_mean", "bn.moving_variance", "ln.gamma", "ln.beta", "ls.gamma"}
    back = layouts.to_neutral(graph, layouts.to_keras(graph, weights))
    assert all(np.array_equal(back[k], weights[k]) for k in weights)
    backend = KerasBackend()
    held = backend.get_weights(backend.compile(graph, weights=weights), graph)
    assert held.keys() == weights.keys() and all(np.array_equal(held[k], weights[k]) for k in weights)


def test_onnx_file_says_each_op_plainly(all_ops):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    from cnnspec.onnxfile.writer import model_bytes

    graph, weights, _ = all_ops
    model = onnx.load_from_string(model_bytes(graph, weights))
    nodes = {n.name: n for n in model.graph.node}
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert nodes["se.gate/unsqueeze1"].op_type == "Unsqueeze"
    assert inits[nodes["se.gate/unsqueeze1"].input[1]].tolist() == [2, 3]  # [N, C] -> [N, C, 1, 1]
    assert nodes["se.gate"].op_type == "Mul"
    assert "bn.weight" not in inits and inits["bn/fixed_weight"].tolist() == [1.0] * 8  # a constant, not a weight
    assert [nodes[n].op_type for n in ("ln/to_channels_last", "ln", "ln/to_channels_first")] == \
           ["Transpose", "LayerNormalization", "Transpose"]
    assert inits["ls.weight"].shape == (8,)
    assert np.allclose(inits["normalize_1/std"].ravel(), IMAGENET["std"])  # stays in the exported model
    op_types = {n.op_type for n in model.graph.node}
    assert {"Erf", "Tanh", "Softplus", "Elu", "HardSwish", "GlobalMaxPool"} <= op_types
    assert "Gelu" not in op_types and "Mish" not in op_types  # opset 20 and 18: the file is opset 17
