"""The PyTorch backend: every op's numbers against an independent numpy reference of the contract,
state_dict keys, seeded and byte-identical builds, safetensors round trip, and the standalone model.py."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cnnspec_torch import TorchBackend  # noqa: E402

import cnnspec  # noqa: E402
from cnnspec.errors import BackendUnavailable, UsageError  # noqa: E402
from cnnspec.weights.neutral import expected_weights
from cnnspec.weights.safetensors_io import read_weights  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.xdist_group("torch")]
SPECS = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.yaml"))
BACKEND = TorchBackend()


def spec(layers: list, input_shape, classes=None):
    doc = {"cnnspec": 1, "name": "t", "input": list(input_shape), "layers": layers}
    if classes:
        doc["classes"] = classes
    return cnnspec.loads(json.dumps(doc)).graph


def run(graph, x, weights=None):
    model = BACKEND.compile(graph, weights=weights, seed=0)
    return BACKEND.predict(model, np.asarray(x, dtype=np.float32))


# ---------------------------------------------------------------- an independent reference

def same_pads(size, kernel, stride, dilation=1):
    """TensorFlow's split, written out again here rather than taken from cnnspec."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def ref_conv(x, w, b=None, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """Direct loops over [N, C, H, W]; pads = (top, bottom, left, right)."""
    t, bt, l, r = pads
    x = np.pad(x, ((0, 0), (0, 0), (t, bt), (l, r)))
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    eh, ew = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
    oh, ow = (h - eh) // stride[0] + 1, (wd - ew) // stride[1] + 1
    out = np.zeros((n, f, oh, ow), np.float64)
    per = f // groups
    for o in range(f):
        g = o // per
        for i in range(oh):
            for j in range(ow):
                patch = x[:, g * cg:(g + 1) * cg,
                          i * stride[0]: i * stride[0] + eh: dilation[0],
                          j * stride[1]: j * stride[1] + ew: dilation[1]]
                out[:, o, i, j] = (patch * w[o]).sum(axis=(1, 2, 3))
    if b is not None:
        out += b[None, :, None, None]
    return out


def ref_pool(x, kind, kernel, stride, pads, count_padding):
    """Max pads with -inf; avg divides by the window size or by the real pixels in it."""
    t, bt, l, r = pads
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (t, bt), (l, r)), constant_values=fill)
    real = np.pad(np.ones(x.shape[2:]), ((t, bt), (l, r)))
    oh = (xp.shape[2] - kernel[0]) // stride[0] + 1
    ow = (xp.shape[3] - kernel[1]) // stride[1] + 1
    out = np.zeros(x.shape[:2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            rows = slice(i * stride[0], i * stride[0] + kernel[0])
            cols = slice(j * stride[1], j * stride[1] + kernel[1])
            win = xp[:, :, rows, cols]
            if kind == "max":
                out[:, :, i, j] = win.max(axis=(2, 3))
            else:
                count = kernel[0] * kernel[1] if count_padding else real[rows, cols].sum()
                out[:, :, i, j] = win.sum(axis=(2, 3)) / count
    return out


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(b).max())))


# ---------------------------------------------------------------- worked example and edge cases

def test_worked_example_from_the_tutorial():
    graph = spec([{"conv2d": {"filters": 1, "kernel": 2, "bias": False}}], [1, 3, 3])
    x = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    y = run(graph, x, {"conv2d_1.weight": np.array([[[[0, 1], [2, 3]]]], np.float32)})
    np.testing.assert_array_equal(y[0, 0], [[19, 25], [37, 43]])


CONV_CASES = [
    # (id, input [C, H, W], conv args)
    ("stride2-same-even", [2, 8, 8], {"filters": 3, "kernel": 3, "stride": 2, "padding": "same"}),
    ("stride2-same-odd", [2, 7, 7], {"filters": 3, "kernel": 3, "stride": 2, "padding": "same"}),
    ("stride2-same-even-kernel", [1, 6, 9], {"filters": 2, "kernel": [2, 4], "stride": 2, "padding": "same"}),
    ("stride3-same", [1, 10, 11], {"filters": 2, "kernel": 5, "stride": 3, "padding": "same"}),
    ("depthwise", [4, 6, 6], {"filters": 4, "kernel": 3, "groups": 4, "padding": "same"}),
    ("grouped", [4, 6, 5], {"filters": 6, "kernel": [3, 2], "groups": 2}),
    ("dilation", [2, 9, 9], {"filters": 2, "kernel": 3, "dilation": 2}),
    ("dilation-same-stride2", [1, 9, 8], {"filters": 2, "kernel": 3, "dilation": [2, 1], "stride": 2,
                                          "padding": "same"}),
    ("explicit-pair", [1, 5, 5], {"filters": 1, "kernel": 3, "padding": [2, 0], "bias": False}),
]


@pytest.mark.parametrize("case, shape, args", CONV_CASES, ids=[c[0] for c in CONV_CASES])
def test_conv2d_matches_reference(case, shape, args):
    graph = spec([{"conv2d": args}], shape)
    rng = np.random.default_rng(1)
    weights = {k: rng.standard_normal(s).astype(np.float32) for k, s in expected_weights(graph).items()}
    x = rng.standard_normal((2, *shape)).astype(np.float32)
    k = (args["kernel"], args["kernel"]) if isinstance(args["kernel"], int) else tuple(args["kernel"])
    s = (args.get("stride", 1),) * 2 if isinstance(args.get("stride", 1), int) else tuple(args["stride"])
    d = (args.get("dilation", 1),) * 2 if isinstance(args.get("dilation", 1), int) else tuple(args["dilation"])
    pad = args.get("padding", 0)
    if pad == "same":
        pads = same_pads(shape[1], k[0], s[0], d[0]) + same_pads(shape[2], k[1], s[1], d[1])
    else:
        ph, pw = (pad, pad) if isinstance(pad, int) else pad
        pads = (ph, ph, pw, pw)
    expected = ref_conv(x, weights["conv2d_1.weight"], weights.get("conv2d_1.bias"), s, pads, d,
                        args.get("groups", 1))
    y = run(graph, x, weights)
    assert y.shape[1:] == graph.output_shape
    close(y, expected)


POOL_CASES = [
    ("max-same-odd", "max", [2, 7, 7], {"kernel": 2, "padding": "same"}),
    ("avg-same-odd", "avg", [2, 7, 7], {"kernel": 2, "padding": "same"}),
    ("avg-same-odd-stride1", "avg", [1, 5, 6], {"kernel": 3, "stride": 1, "padding": "same"}),
    ("max-same-3x3-s2", "max", [1, 9, 8], {"kernel": 3, "stride": 2, "padding": "same"}),
    ("avg-same-3x3-s2", "avg", [1, 9, 8], {"kernel": 3, "stride": 2, "padding": "same"}),
    ("avg-explicit-counts-zeros", "avg", [1, 5, 5], {"kernel": 3, "stride": 2, "padding": 1}),
    ("max-valid-floor", "max", [1, 7, 5], {"kernel": 2}),
]


@pytest.mark.parametrize("case, kind, shape, args", POOL_CASES, ids=[c[0] for c in POOL_CASES])
def test_pooling_matches_reference(case, kind, shape, args):
    graph = spec([{f"{kind}pool2d": args}], shape)
    x = np.random.default_rng(2).standard_normal((2, *shape)).astype(np.float32)
    k = (args["kernel"],) * 2
    s = (args.get("stride", args["kernel"]),) * 2
    pad = args.get("padding", 0)
    pads = (same_pads(shape[1], k[0], s[0]) + same_pads(shape[2], k[1], s[1])) if pad == "same" else (pad,) * 4
    y = run(graph, x)
    assert y.shape[1:] == graph.output_shape
    close(y, ref_pool(x, kind, k, s, pads, count_padding=pad != "same"))


def test_explicit_maxpool_padding_is_minus_infinity_on_all_negative_input():
    graph = spec([{"maxpool2d": {"kernel": 3, "stride": 1, "padding": 1}}], [1, 4, 4])
    x = -1.0 - np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    y = run(graph, x)
    assert (y < 0).all()  # zero padding would have produced zeros at the border
    close(y, ref_pool(x, "max", (3, 3), (1, 1), (1, 1, 1, 1), False))


def test_same_avgpool_corner_averages_only_real_pixels():
    graph = spec([{"avgpool2d": {"kernel": 2, "padding": "same"}}], [1, 3, 3])
    x = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    y = run(graph, x)
    # windows: [0,1,3,4] [2,5] / [6,7] [8]
    np.testing.assert_allclose(y[0, 0], [[2.0, 3.5], [6.5, 8.0]], rtol=1e-6)


def test_flatten_is_channel_row_column_before_dense():
    graph = spec(["flatten", {"dense": {"units": 1, "bias": False}}], [2, 2, 3])
    x = np.random.default_rng(3).standard_normal((1, 2, 2, 3)).astype(np.float32)
    w = np.zeros((1, 12), np.float32)
    w[0, 1 * 6 + 0 * 3 + 2] = 1.0  # picks channel 1, row 0, column 2
    y = run(graph, x, {"dense_1.weight": w})
    assert y[0, 0] == x[0, 1, 0, 2]


def test_add_and_concat():
    layers = [{"conv2d": {"filters": 2, "kernel": 1, "bias": False}, "name": "a"},
              {"conv2d": {"filters": 3, "kernel": 1, "bias": False}, "name": "b", "in": "input"},
              {"conv2d": {"filters": 2, "kernel": 1, "bias": False}, "name": "c", "in": "input"},
              {"add": None, "in": ["a", "c", "a"], "name": "sum"},
              {"concat": None, "in": ["sum", "b"], "name": "cat"}]
    graph = spec(layers, [1, 2, 2])
    ones = lambda n: np.full((n, 1, 1, 1), 1.0, np.float32)  # noqa: E731
    weights = {"a.weight": ones(2), "b.weight": 2 * ones(3), "c.weight": 3 * ones(2)}
    x = np.random.default_rng(4).standard_normal((1, 1, 2, 2)).astype(np.float32)
    y = run(graph, x, weights)
    assert y.shape == (1, 5, 2, 2)
    close(y[:, :2], np.repeat(5 * x, 2, axis=1))
    close(y[:, 2:], np.repeat(2 * x, 3, axis=1))


def test_batchnorm_inference_and_activations():
    layers = [{"batchnorm": {"eps": 1e-3}}, "relu6", {"leaky_relu": 0.2}, "softmax"]
    graph = spec(layers, [3, 2, 2])
    rng = np.random.default_rng(5)
    weights = {"batchnorm_1.weight": rng.uniform(0.5, 2, 3).astype(np.float32),
               "batchnorm_1.bias": rng.standard_normal(3).astype(np.float32),
               "batchnorm_1.running_mean": rng.standard_normal(3).astype(np.float32),
               "batchnorm_1.running_var": rng.uniform(0.5, 2, 3).astype(np.float32)}
    x = 4 * rng.standard_normal((2, 3, 2, 2)).astype(np.float32)
    p = {k.split(".")[1]: v[None, :, None, None] for k, v in weights.items()}
    z = (x - p["running_mean"]) / np.sqrt(p["running_var"] + 1e-3) * p["weight"] + p["bias"]
    z = np.clip(z, 0, 6)
    z = np.where(z > 0, z, 0.2 * z)
    z = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    close(run(graph, x, weights), z)


# ---------------------------------------------------------------- the module

@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_zoo_output_shape_and_state_dict_keys(path):
    graph = cnnspec.load(path).graph
    from cnnspec_torch.model import SpecModule

    with torch.device("meta"):  # shapes and keys without allocating the weights
        model = SpecModule(graph).eval()
        out = model(torch.zeros((2, *graph.input_shape)))
    outs = out if isinstance(out, tuple) else (out,)  # a tuple for several outputs, in the spec's order
    assert [tuple(o.shape) for o in outs] == [(2, *n.shape) for n in graph.output_nodes]
    expected = expected_weights(graph)
    state = model.state_dict()
    assert list(state) == [k for k in state if k in expected] and set(state) == set(expected)
    assert all(tuple(state[k].shape) == s for k, s in expected.items())


def test_torchvision_style_checkpoint_with_counters_loads_strictly():
    graph = spec([{"conv2d": {"filters": 2, "kernel": 3}, "name": "layer1.0.conv1"},
                  {"batchnorm": None, "name": "layer1.0.bn1"}], [1, 5, 5])
    model = BACKEND.compile(graph)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["layer1.0.bn1.num_batches_tracked"] = torch.tensor(7)
    model.load_state_dict(state, strict=True)
    assert isinstance(model.layer("layer1.0.conv1"), torch.nn.Conv2d)


def test_layer_names_that_are_module_attributes_or_nest_under_layers():
    layers = [{"conv2d": {"filters": 2, "kernel": 1}, "name": "forward"},
              {"conv2d": {"filters": 2, "kernel": 1}, "name": "eval.cuda"},
              {"conv2d": {"filters": 2, "kernel": 1}, "name": "eval"},
              {"conv2d": {"filters": 2, "kernel": 1}, "name": "forward.0"}]
    graph = spec(layers, [1, 3, 3])
    model = BACKEND.compile(graph)
    assert set(model.state_dict()) == set(expected_weights(graph))
    assert BACKEND.predict(model, np.ones((1, 1, 3, 3), np.float32)).shape == (1, 2, 3, 3)
    model.train().eval()  # layer names did not shadow the module's own methods
    reserved = spec([{"conv2d": {"filters": 2, "kernel": 1}, "name": "block.training"}], [1, 3, 3])
    with pytest.raises(UsageError, match="block.training"):
        BACKEND.compile(reserved)


def test_seeded_weights_are_deterministic_and_leave_the_global_rng_alone():
    graph = spec([{"conv2d": {"filters": 4, "kernel": 3}}, "flatten", {"dense": 3}], [1, 6, 6])
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = BACKEND.get_weights(BACKEND.compile(graph, seed=7), graph)
    assert torch.equal(torch.rand(1), before)
    b = BACKEND.get_weights(BACKEND.compile(graph, seed=7), graph)
    c = BACKEND.get_weights(BACKEND.compile(graph, seed=8), graph)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)


def test_training_mode_has_real_dropout_and_batchnorm_momentum():
    graph = spec([{"batchnorm": {"momentum": 0.5}}, {"dropout": 0.5}], [1, 4, 4])
    model = BACKEND.compile(graph).train()
    x = torch.ones(8, 1, 4, 4) * 3
    y = model(x)
    assert (y == 0).any()  # dropout zeroes some activations while training
    bn = model.layer("batchnorm_1")
    assert bn.momentum == 0.5 and torch.allclose(bn.running_mean, torch.tensor([1.5]))


def test_wrong_weights_are_one_clear_error():
    graph = spec([{"conv2d": {"filters": 2, "kernel": 3}}], [1, 4, 4])
    with pytest.raises(Exception, match=r"1 tensor missing\n  missing    conv2d_1.bias \[2\]"):
        BACKEND.compile(graph, weights={"conv2d_1.weight": np.zeros((2, 1, 3, 3), np.float32)})
    with pytest.raises(Exception, match=r"needs \[2\]"):
        BACKEND.compile(graph, weights={"conv2d_1.weight": np.zeros((2, 1, 3, 3), np.float32),
                                        "conv2d_1.bias": np.zeros(3, np.float32)})


def test_cuda_is_a_clear_error_where_absent():
    from cnnspec_torch.backend import require_cuda

    if torch.cuda.is_available():
        assert require_cuda().type == "cuda"
    else:
        with pytest.raises(BackendUnavailable, match="CUDA"):
            require_cuda()


# ---------------------------------------------------------------- build: files, bytes, round trip

BUILD_LAYERS = [{"conv2d": {"filters": 3, "kernel": 3, "stride": 2, "padding": "same", "activation": "relu"},
                 "name": "stem.conv"},
                {"batchnorm": None, "name": "stem.bn"},
                {"avgpool2d": {"kernel": 2, "stride": 1, "padding": "same"}, "name": "pool"},
                {"maxpool2d": {"kernel": 2, "stride": 1, "padding": "same"}},
                {"conv2d": {"filters": 3, "kernel": 1}, "name": "branch", "in": "stem.bn"},
                {"global_avgpool2d": None, "in": "maxpool2d_1"},
                {"global_avgpool2d": None, "in": "branch"},
                {"concat": None, "in": ["global_avgpool2d_1", "global_avgpool2d_2"]},
                {"dropout": 0.3}, {"dense": {"units": 3, "activation": "softmax"}, "name": "head"}]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    graph = spec(BUILD_LAYERS, [2, 8, 7], classes=["a", "b", "c"])
    first, second = tmp_path_factory.mktemp("first"), tmp_path_factory.mktemp("second")
    messages = []
    paths = BACKEND.build(graph, first, seed=3, progress=messages.append)
    BACKEND.build(graph, second, seed=3)
    return graph, first, second, paths, messages


def test_build_writes_three_files_with_a_progress_line_each(built):
    graph, first, _, paths, messages = built
    assert sorted(p.name for p in paths) == ["model.onnx", "model.py", "weights.safetensors"]
    assert all(p.parent == first and p.stat().st_size > 0 for p in paths)
    assert len(messages) == 4 and all(isinstance(m, str) and m for m in messages)


def test_build_is_byte_identical(built):
    _, first, second, paths, _ = built
    for p in paths:
        assert (first / p.name).read_bytes() == (second / p.name).read_bytes(), p.name


def test_build_from_its_own_weights_gives_the_same_files(built, tmp_path):
    graph, first, _, paths, _ = built
    weights = read_weights(first / "weights.safetensors", graph)
    BACKEND.build(graph, tmp_path, weights=weights, seed=99)
    for p in paths:
        assert (tmp_path / p.name).read_bytes() == (first / p.name).read_bytes(), p.name


def test_weights_round_trip_through_safetensors(built):
    graph, first, _, _, _ = built
    x = np.random.default_rng(6).standard_normal((3, *graph.input_shape)).astype(np.float32)
    original = BACKEND.predict(BACKEND.compile(graph, seed=3), x)
    reloaded = BACKEND.predict(cnnspec.loads(json.dumps({"cnnspec": 1, "name": "t", "input": [2, 8, 7],
                                                         "classes": ["a", "b", "c"], "layers": BUILD_LAYERS}))
                               .to("torch", weights=first / "weights.safetensors"), x)
    np.testing.assert_array_equal(original, reloaded)


def test_generated_model_py_alone_gives_the_same_numbers(built, tmp_path):
    graph, first, _, _, _ = built
    x = np.random.default_rng(7).standard_normal((3, *graph.input_shape)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    script = ("import importlib.util, sys, numpy, torch\n"
              "spec = importlib.util.spec_from_file_location('generated', sys.argv[1])\n"
              "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
              "assert 'cnnspec' not in sys.modules, 'model.py must not need cnnspec'\n"
              "model = mod.load_model()\n"
              "with torch.no_grad():\n"
              "    y = model(torch.from_numpy(numpy.load(sys.argv[2])))\n"
              "numpy.save(sys.argv[3], y.numpy())\n")
    clean = tmp_path / "clean"
    clean.mkdir()
    subprocess.run([sys.executable, "-I", "-c", script, str(first / "model.py"), str(tmp_path / "x.npy"),
                    str(tmp_path / "y.npy")], cwd=clean, check=True, capture_output=True, timeout=120)
    expected = BACKEND.predict(BACKEND.compile(graph, seed=3), x)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-6, atol=1e-7)


def test_generated_model_py_reads_like_hand_written_code(built):
    _, first, _, _, _ = built
    text = (first / "model.py").read_text()
    compile(text, "model.py", "exec")
    assert "cnnspec_torch" not in text and "import cnnspec" not in text
    assert "self.stem = nn.ModuleDict()" in text
    assert "self.stem['conv'] = nn.Conv2d(2, 3, kernel_size=3, stride=2)" in text
    assert "F.relu(self.stem['conv'](F.pad(x, (1, 1, 0, 1))))" in text  # TF's extra row at the bottom
    assert "avg_pool_excluding_padding(stem_bn, (2, 2), (1, 1), (0, 1, 0, 1))" in text
    assert "def forward(self, x):" in text and "load_file" in text


def test_generated_code_handles_names_that_clash_with_python_and_torch():
    from cnnspec_torch.codegen import generate_model_py

    layers = [{"conv2d": {"filters": 2, "kernel": 1}, "name": "forward"},
              {"conv2d": {"filters": 2, "kernel": 1}, "name": "eval.cuda"},
              {"conv2d": {"filters": 2, "kernel": 1}, "name": "eval"},
              {"batchnorm": None, "name": "blk.keys"},
              {"conv2d": {"filters": 2, "kernel": 3, "padding": "same"}, "name": "blk.0.class"},
              {"add": None, "in": ["forward", "blk.0.class"], "name": "x"}]
    graph = spec(layers, [1, 4, 4])
    namespace = {"__file__": "model.py", "__name__": "generated"}
    exec(compile(generate_model_py(graph), "model.py", "exec"), namespace)
    generated = namespace["T"]().eval()
    model = BACKEND.compile(graph, seed=5)
    missing, unexpected = generated.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    x = torch.randn(2, 1, 4, 4)
    with torch.no_grad():
        assert torch.equal(generated(x), model(x))


def test_set_weights_takes_torch_tensors_through_the_cores_check():
    graph = spec([{"conv2d": {"filters": 2, "kernel": 3}}], [1, 4, 4])
    weights = {"conv2d_1.weight": torch.ones((2, 1, 3, 3), dtype=torch.float64, requires_grad=True),
               "conv2d_1.bias": torch.zeros(2)}
    model = BACKEND.compile(graph, weights=weights)
    assert torch.equal(model.state_dict()["conv2d_1.weight"], torch.ones((2, 1, 3, 3)))
    weights["conv2d_1.bias"] = torch.tensor([0.0, float("nan")])
    with pytest.raises(Exception, match="NaN or infinite"):
        BACKEND.compile(graph, weights=weights)


def test_an_activation_without_its_own_module_runs_its_function_call():
    from cnnspec_torch import layers

    x = torch.linspace(-2, 2, 9).reshape(1, 1, 3, 3)
    module = layers.Activation("leaky_relu", {"slope": 0.2})
    assert torch.equal(module(x), torch.nn.functional.leaky_relu(x, 0.2)) and "slope=0.2" in repr(module)
    assert torch.equal(layers.ACTIVATION_FUNCTIONS["leaky_relu"](x), torch.nn.functional.leaky_relu(x, 0.01))
