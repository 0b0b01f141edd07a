"""Several outputs (``outputs:``, the contract's third edition): checked names, the IR, and every
target returning the listed layers in order with the same numbers (the eager PyTorch module, the
Keras model, both generated files, the ONNX file under ONNX Runtime)."""
import json
import sys

import numpy as np
import pytest

import cnnspec
from cnnspec.api import check_path

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from cnnspec.onnxfile.boundary import OUTPUTS_KEY, metadata  # noqa: E402
from cnnspec.onnxfile.writer import build_proto, model_bytes  # noqa: E402

HEADS = {
    "cnnspec": 1, "name": "two-heads", "input": [3, 8, 8],
    "outputs": ["head_a", "head_b", "drop"],
    "layers": [
        {"conv2d": {"filters": 4, "kernel": 3, "padding": "same"}, "name": "stem"},
        "relu",
        {"conv2d": {"filters": 2, "kernel": 1}, "name": "head_b"},
        {"dropout": 0.5, "name": "drop"},          # an output that computes nothing at inference
        {"global_avgpool2d": None, "in": "relu_1"},
        {"dense": 5, "name": "head_a"},
    ],
}


def graph_of(doc):
    return cnnspec.loads(json.dumps(doc)).graph


def test_graph_lists_outputs_in_order_and_the_first_is_the_output():
    graph = graph_of(HEADS)
    assert graph.outputs == ("head_a", "head_b", "drop")
    assert [n.name for n in graph.output_nodes] == ["head_a", "head_b", "drop"]
    assert graph.output.name == "head_a" and graph.output_shape == (5,)
    plain = graph_of({**HEADS, "outputs": None} if False else {k: v for k, v in HEADS.items() if k != "outputs"})
    assert plain.outputs == ("head_a",) and not plain.several_outputs


CASES = [
    ("unknown", ["head_a", "hed_b"], "7:21: outputs: 'hed_b' is no layer of the spec; did you mean 'head_b'?"),
    ("twice", ["head_a", "head_a"], "7:21: outputs: 'head_a' is listed twice (entries 1 and 2); list each output once"),
    ("input", ["input"], "7:11: outputs: 'input' is the spec's input, not a layer; list layers the model computes"),
    ("empty", [], "7:10: 'outputs' must name at least one layer (or leave it out: the last layer is the output)"),
    ("not-a-list", "head_a", "7:10: 'outputs' must be a list, got 'head_a'"),
]


@pytest.mark.parametrize("case_id, listed, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_outputs_are_located_errors(tmp_path, case_id, listed, expected):
    path = tmp_path / "net.yaml"
    path.write_text("cnnspec: 1\nname: t\ninput: [3, 8, 8]\nlayers:\n"
                    "  - {conv2d: {filters: 2, kernel: 1}, name: head_a}\n"
                    "  - {conv2d: {filters: 2, kernel: 1}, name: head_b}\n"
                    f"outputs: {json.dumps(listed)}\n")
    _, diagnostics = check_path(path)
    assert diagnostics, "no error"
    first = diagnostics[0]
    assert f"{first.location.line}:{first.location.column}: {first.message}" == expected


def _seeded(graph):
    from cnnspec_torch import TorchBackend

    backend = TorchBackend()
    return backend, backend.get_weights(backend.compile(graph, seed=3), graph)


def test_onnx_has_one_output_per_layer_named_as_it_with_metadata():
    graph = graph_of(HEADS)
    _, weights = _seeded(graph)
    model = build_proto(graph, weights)
    assert [o.name for o in model.graph.output] == ["head_a", "head_b", "drop"]
    meta = json.loads(metadata(model)[OUTPUTS_KEY])
    assert meta == [{"name": "head_a", "shape": [5]}, {"name": "head_b", "shape": [2, 8, 8]},
                    {"name": "drop", "shape": [2, 8, 8]}]
    single = graph_of({k: v for k, v in HEADS.items() if k != "outputs"})
    _, weights1 = _seeded(single)
    proto = build_proto(single, weights1)
    assert [o.name for o in proto.graph.output] == ["output"]
    assert json.loads(metadata(proto)[OUTPUTS_KEY]) == [{"name": "head_a", "shape": [5]}]


def test_one_listed_output_that_is_not_the_last_layer_is_output():
    graph = graph_of({**HEADS, "outputs": ["head_b"]})
    backend, weights = _seeded(graph)
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    session = ort.InferenceSession(model_bytes(graph, weights))
    assert [o.name for o in session.get_outputs()] == ["output"]
    (got,) = session.run(None, {"input": x})
    np.testing.assert_allclose(got, backend.predict(backend.compile(graph, weights=weights), x), rtol=1e-5, atol=1e-6)


def _generated_torch(graph, weights, tmp_path):
    from cnnspec_torch.codegen import generate_model_py

    path = tmp_path / "model_multi.py"
    path.write_text(generate_model_py(graph))
    sys.path.insert(0, str(tmp_path))
    try:
        import importlib

        module = importlib.import_module("model_multi")
    finally:
        sys.path.remove(str(tmp_path))
    assert module.OUTPUTS == list(graph.outputs)
    net = module.TwoHeads()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
    return net.eval()


@pytest.mark.slow
def test_every_target_returns_the_outputs_in_order_with_the_same_numbers(tmp_path):
    pytest.importorskip("keras")
    from cnnspec_keras import KerasBackend
    from cnnspec_keras.codegen import generate_model_keras_py

    graph = graph_of(HEADS)
    torch_backend, weights = _seeded(graph)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    module = torch_backend.compile(graph, weights=weights)
    expected = torch_backend.predict(module, x)
    assert isinstance(module(torch.from_numpy(x)), tuple) and len(expected) == 3
    keras_backend = KerasBackend()
    keras_model = keras_backend.compile(graph, weights=weights)
    got = {"keras": keras_backend.predict(keras_model, x),
           "onnx": ort.InferenceSession(model_bytes(graph, weights)).run(None, {"input": x})}
    with torch.no_grad():
        got["model.py"] = [y.numpy() for y in _generated_torch(graph, weights, tmp_path)(torch.from_numpy(x))]
    namespace = {"__name__": "model_keras_multi"}
    exec(compile(generate_model_keras_py(graph), "model_keras.py", "exec"), namespace)
    generated = namespace["build_model"]()
    keras_backend.set_weights(generated, graph, weights)
    got["model_keras.py"] = [np.asarray(y) for y in generated(x, training=False)]
    for target, outputs in got.items():
        assert len(outputs) == 3, target
        for name, want, have in zip(graph.outputs, expected, outputs):
            np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-6, err_msg=f"{target}: {name}")


def test_an_output_that_when_leaves_out_is_left_out_too(tmp_path):
    """A head behind a parameter (a block's 'when', or a spec parameter's where those exist) is an
    output only where it exists; leaving out every listed output is an error at 'outputs'."""
    doc = {"cnnspec": 1, "name": "t", "input": [2, 4, 4], "outputs": ["fc", "aux", "b"],
           "blocks": {"head": {"params": {"on": False}, "layers": [
               {"flatten": None, "name": "flat"}, {"dense": 2, "name": "fc2", "when": "$on"}]}},
           "layers": [{"conv2d": {"filters": 2, "kernel": 1}, "name": "stem"},
                      {"flatten": None, "name": "flat"}, {"dense": 3, "name": "fc"},
                      {"dense": 5, "in": "flat", "name": "aux", "when": False},
                      {"head": {"on": True}, "in": "stem", "name": "b"}]}
    assert graph_of(doc).outputs == ("fc", "b.fc2")
    assert graph_of({**doc, "outputs": ["aux", "b.fc2"]}).outputs == ("b.fc2",)
    off = {**doc, "layers": doc["layers"][:4] + [{"head": {"on": False}, "in": "stem", "name": "b"}],
           "outputs": ["fc", "b.fc2"]}
    assert graph_of(off).outputs == ("fc",)
    path = tmp_path / "net.yaml"
    path.write_text(json.dumps({**doc, "outputs": ["aux"]}))
    _, diagnostics = check_path(path)
    assert [d.message for d in diagnostics] == [
        "outputs: 'when' leaves out every layer listed here; keep one of them, or list another"]
