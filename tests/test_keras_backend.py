"""The Keras backend on its own: build's four files, byte-identical ONNX, the contract's interface,
model.keras under safe_mode, model_keras.py run alone, layouts and ``cnnspec convert``, training use."""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tf2onnx")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from cnnspec_keras import KerasBackend  # noqa: E402
from cnnspec_keras.plan import make_plan  # noqa: E402

import cnnspec  # noqa: E402
from cnnspec.commands import convert as convert_cmd  # noqa: E402
from cnnspec.errors import InputError, UsageError  # noqa: E402
from cnnspec.onnxfile.boundary import OPSET, metadata  # noqa: E402
from cnnspec.weights import keras_layout as layouts  # noqa: E402
from cnnspec.weights.neutral import expected_weights
from cnnspec.weights.safetensors_io import read_safetensors, read_weights  # noqa: E402

pytestmark = [pytest.mark.keras, pytest.mark.xdist_group("keras")]
BACKEND = KerasBackend()
ROOT = Path(__file__).resolve().parent.parent

# every op, every custom layer (grouped conv, -inf padding, stride after dilation), both pool paddings
SPEC = {
    "cnnspec": 1, "name": "keras-all-ops", "input": [3, 9, 8], "classes": ["a", "b", "c", "d"],
    "layers": [
        {"conv2d": {"filters": 6, "kernel": 3, "stride": 2, "padding": "same", "activation": "leaky_relu"},
         "name": "stem.conv"},
        {"batchnorm": {"eps": 1e-3, "momentum": 0.2}, "name": "stem.bn"},
        {"conv2d": {"filters": 6, "kernel": 3, "groups": 3, "dilation": 2, "stride": 2, "padding": "same"}},
        {"conv2d": {"filters": 6, "kernel": 1, "groups": 6, "bias": False}, "name": "dw", "in": "stem.bn"},
        {"maxpool2d": {"kernel": 3, "stride": 2, "padding": 1}, "name": "pool"},
        {"concat": None, "in": ["conv2d_1", "pool"]},
        {"relu6": None}, {"avgpool2d": {"kernel": 2, "stride": 1, "padding": "same"}},
        {"dropout": 0.5}, "flatten", {"dense": {"units": 8, "activation": "tanh"}},
        {"dense": 4}, {"softmax": None},
    ],
}


def spec_graph(doc=SPEC):
    return cnnspec.loads(json.dumps(doc)).graph


@pytest.fixture(scope="module")
def graph():
    return spec_graph()


@pytest.fixture(scope="module")
def weights(graph):
    rng = np.random.default_rng(7)
    return {k: (rng.uniform(0.5, 1.5, s) if k.endswith("running_var") else rng.normal(0, 0.5, s)).astype(np.float32)
            for k, s in expected_weights(graph).items()}


@pytest.fixture(scope="module")
def built(graph, weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("keras-build")
    lines = []
    paths = BACKEND.build(graph, out, weights=weights, progress=lines.append)
    return out, paths, lines


@pytest.fixture(scope="module")
def x(graph):
    return np.random.default_rng(0).standard_normal((3, *graph.input_shape)).astype(np.float32)


@pytest.fixture(scope="module")
def expected(graph, weights, x):
    return BACKEND.predict(BACKEND.compile(graph, weights=weights), x)


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_build_writes_the_four_files_with_progress(built):
    out, paths, lines = built
    assert sorted(p.name for p in paths) == ["model.keras", "model.onnx", "model_keras.py", "weights.safetensors"]
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    assert len(lines) >= 4 and any("model.onnx" in line for line in lines)
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_onnx_has_the_contract_interface(built, graph, x, expected):
    model = onnx.load(str(built[0] / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [OPSET]
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, out.name) == ("input", "output")
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["batch", 3, 9, 8]
    meta = metadata(model)
    assert meta["cnnspec.backend"] == "keras"
    assert json.loads(meta["cnnspec.classes"]) == ["a", "b", "c", "d"]
    assert json.loads(meta["cnnspec.spec"]) == json.loads(graph.canonical_spec)
    session = ort.InferenceSession(str(built[0] / "model.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        close(session.run(None, {"input": x[:batch]})[0], expected[:batch])


def test_same_spec_and_weights_give_the_same_onnx_bytes(built, graph, weights, tmp_path):
    first = (built[0] / "model.onnx").read_bytes()
    model = BACKEND.compile(graph, weights=weights)
    BACKEND.predict(model, np.zeros((2, *graph.input_shape), np.float32))  # a call first shifts TF's name counters
    BACKEND.export_onnx(model, graph, tmp_path / "again.onnx")
    assert (tmp_path / "again.onnx").read_bytes() == first


def test_onnx_node_names_are_the_spec_layers(built, graph):
    names = [n.name for n in onnx.load(str(built[0] / "model.onnx")).graph.node]
    layers = {n.name for n in graph.nodes}
    assert "stem.conv" in names
    assert all(n in layers or n.split("/")[0] in layers for n in names), names


def test_weights_file_is_the_neutral_layout_and_round_trips(built, graph, weights):
    loaded = read_weights(built[0] / "weights.safetensors", graph)
    assert loaded.keys() == weights.keys()
    for key in weights:
        np.testing.assert_array_equal(loaded[key], weights[key], err_msg=key)


def test_model_keras_loads_in_safe_mode_with_the_same_numbers(built, x, expected):
    model = keras.saving.load_model(built[0] / "model.keras", safe_mode=True)
    close(np.asarray(model(x, training=False)), expected)


def test_model_keras_py_runs_alone(built, x, expected, tmp_path):
    np.save(tmp_path / "x.npy", x)
    code = built[0] / "model_keras.py"
    assert "cnnspec" not in code.read_text().split('"""', 2)[2].replace("package=\"cnnspec\"", "")
    proc = subprocess.run([sys.executable, str(code), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    close(np.load(tmp_path / "y.npy"), expected)


def test_predict_takes_a_batch_or_one_sample_and_refuses_wrong_shapes(graph, weights, x, expected):
    model = BACKEND.compile(graph, weights=weights)
    close(BACKEND.predict(model, x[0]), expected[:1])
    assert BACKEND.predict(model, np.repeat(x, 100, axis=0)).shape == (300, 4)
    with pytest.raises(InputError, match=r"\[N, 3, 9, 8\]"):
        BACKEND.predict(model, np.zeros((1, 8, 9, 3), np.float32))


def test_seeded_initialisation_is_deterministic(graph):
    a, b, c = (BACKEND.get_weights(BACKEND.compile(graph, seed=s), graph) for s in (3, 3, 4))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], c[k]) for k in a if k.endswith(".weight"))


def test_compiled_model_trains_dropout_and_batchnorm(graph, weights, x):
    model = BACKEND.compile(graph, weights=weights)
    bn = model.get_layer("stem.bn")
    assert bn.momentum == pytest.approx(0.8) and bn.epsilon == pytest.approx(1e-3)
    assert {v.path.split("/")[-1] for v in bn.trainable_variables} == {"gamma", "beta"}
    a, b = (np.asarray(model(x, training=True)) for _ in range(2))
    assert not np.allclose(a, b), "dropout does nothing in training"
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    before = model.get_layer("dense_2").get_weights()[0].copy()
    model.fit(x, np.array([0, 1, 2]), epochs=1, verbose=0)
    assert not np.array_equal(before, model.get_layer("dense_2").get_weights()[0])


def test_plan_keeps_the_contracts_numbers(graph):
    steps = {s.name: s for s in make_plan(graph).steps}
    assert steps["stem.conv_leaky_relu"].layer == "LeakyReLU"
    assert dict(steps["stem.conv_leaky_relu"].kwargs)["negative_slope"] == 0.01  # not Keras' 0.2
    assert "activation" not in dict(steps["stem.conv"].kwargs)
    assert steps["conv2d_1"].layer == "GroupedConv2D" and steps["conv2d_1_stride"].layer == "Subsample2D"
    assert steps["pool_pad"].layer == "NegInfPadding2D"
    assert dict(steps["flatten_1_to_chw"].kwargs)["dims"] == (3, 1, 2)


LAYOUT_CASES = {  # neutral shape -> Keras shape
    "stem.conv.weight": ((6, 3, 3, 3), "stem.conv.kernel", (3, 3, 3, 6)),
    "conv2d_1.weight": ((6, 2, 3, 3), "conv2d_1.kernel", (3, 3, 2, 6)),
    "dw.weight": ((6, 1, 1, 1), "dw.kernel", (1, 1, 1, 6)),
    "dense_1.weight": ((8, 72), "dense_1.kernel", (72, 8)),
    "stem.bn.running_var": ((6,), "stem.bn.moving_variance", (6,)),
}


@pytest.mark.parametrize("key", sorted(LAYOUT_CASES))
def test_keras_layout_shapes(graph, key):
    neutral_shape, keras_key, keras_shape = LAYOUT_CASES[key]
    assert expected_weights(graph)[key] == neutral_shape
    assert layouts.expected_keras_weights(graph)[keras_key] == keras_shape


def test_keras_layout_is_what_keras_layers_hold(graph, weights, x, expected):
    keras_tensors = layouts.to_keras(graph, weights)
    model = BACKEND.compile(graph, seed=9)
    for name, parts in layouts.layer_parts(graph):
        model.get_layer(name).set_weights([keras_tensors[f"{name}.{p.keras}"] for p in parts])
    close(BACKEND.predict(model, x), expected)


def convert_args(spec_path, weights, to, output=None):
    parser = argparse.ArgumentParser()
    convert_cmd.add_arguments(parser)
    argv = [str(spec_path), "--weights", str(weights), "--to", to, "--quiet"] + (["-o", str(output)] if output else [])
    return parser.parse_args(argv)


def test_convert_there_and_back_is_bit_identical(built, tmp_path, capsys):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(json.dumps(SPEC))
    source = built[0] / "weights.safetensors"
    assert convert_cmd.run(convert_args(spec_path, source, "keras", tmp_path / "w.keras.safetensors")) == 0
    keras_file = tmp_path / "w.keras.safetensors"
    tensors, meta = read_safetensors(keras_file)
    assert meta["format"] == "cnnspec-keras" and tensors["stem.conv.kernel"].shape == (3, 3, 3, 6)
    assert convert_cmd.run(convert_args(spec_path, keras_file, "torch")) == 0  # default name: w.safetensors
    assert capsys.readouterr().out.split()[-1] == str(tmp_path / "w.safetensors")
    assert (tmp_path / "w.safetensors").read_bytes() == source.read_bytes()


def test_convert_refuses_misfits_and_overwrites(built, tmp_path):
    spec_path = tmp_path / "spec.yaml"
    other = {k: v for k, v in SPEC.items() if k != "classes"}
    other["layers"] = SPEC["layers"][:-2] + [{"dense": 5}]
    spec_path.write_text(json.dumps(other))
    with pytest.raises(InputError, match="does not fit spec .*\\n  shape      dense_2.weight: \\[4, 8\\] in the file, the spec needs \\[5, 8\\]"):
        convert_cmd.run(convert_args(spec_path, built[0] / "weights.safetensors", "keras", tmp_path / "o.safetensors"))
    assert not (tmp_path / "o.safetensors").exists()
    spec_path.write_text(json.dumps(SPEC))
    with pytest.raises(UsageError, match="overwrite"):
        convert_cmd.run(convert_args(spec_path, built[0] / "weights.safetensors", "torch"))
    (tmp_path / "x.pt").write_bytes(b"not a pickle we would ever load")
    with pytest.raises(InputError, match="not a PyTorch zip file"):
        convert_cmd.run(convert_args(spec_path, tmp_path / "x.pt", "keras"))


def test_importing_the_backend_and_convert_command_does_not_import_tensorflow():
    code = ("import sys, cnnspec_keras, cnnspec.commands.convert; "
            "print(any(m in sys.modules for m in ('tensorflow', 'keras', 'tf2onnx', 'onnx')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.stdout.strip() == "False", proc.stderr
