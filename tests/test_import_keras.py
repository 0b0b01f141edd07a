"""A Keras model through tf2onnx with NCHW input (``inputs_as_nchw``): it imports with the Keras
layer names (a fused activation back on its convolution), checks, and rebuilt by cnnspec's own
writer gives ONNX Runtime the source's outputs within 1e-5 of their scale."""
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf2onnx = pytest.importorskip("tf2onnx")
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
ort = pytest.importorskip("onnxruntime")

import cnnspec  # noqa: E402
from cnnspec.importer.model import import_onnx  # noqa: E402
from cnnspec.onnxfile.writer import model_bytes  # noqa: E402

pytestmark = [pytest.mark.keras, pytest.mark.xdist_group("keras"), pytest.mark.slow]


def keras_model():
    keras.utils.set_random_seed(0)
    L = keras.layers
    inp = keras.Input((16, 16, 3), name="x")
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inp)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.Add(name="add")([x, L.DepthwiseConv2D(3, padding="same", name="dw")(x)])
    x = L.MaxPooling2D(2, name="pool")(x)
    x = L.Conv2D(16, 3, strides=2, activation="swish", name="conv2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(5, activation="softmax", name="fc")(x)
    model = keras.Model(inp, out)
    bn = model.get_layer("bn1")   # statistics off 0 and 1, so the normalisation is not folded away
    rng = np.random.default_rng(0)
    bn.set_weights([rng.uniform(0.5, 1.5, 8), rng.uniform(-0.3, 0.3, 8), rng.uniform(-0.3, 0.3, 8),
                    rng.uniform(0.5, 1.5, 8)])
    return model


def test_a_keras_model_through_tf2onnx_with_nchw_input_imports(tmp_path):
    import onnx

    spec = (tf.TensorSpec((None, 16, 16, 3), tf.float32, name="x"),)
    proto, _ = tf2onnx.convert.from_keras(keras_model(), input_signature=spec, opset=17, inputs_as_nchw=["x"])
    path = tmp_path / "keras.onnx"
    onnx.save(proto, str(path))
    imported = import_onnx(path)
    graph = cnnspec.loads(imported.text).graph
    names = {n.name: n for n in graph.nodes}
    assert {"conv1", "dw", "pool", "conv2", "fc"} <= set(names)
    assert names["conv1"].attrs["activation"] == "relu" and names["conv2"].attrs["activation"] == "silu"
    x = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)
    a = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    b = ort.InferenceSession(model_bytes(imported.graph, imported.weights),
                             providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert float(np.abs(a - b).max()) <= 1e-5 * float(np.abs(a).max())


def test_keras_upsampling2d_through_tf2onnx_is_upsample2d(tmp_path):
    """tf2onnx writes UpSampling2D (Keras 3's repeat per axis) as Unsqueeze -> Tile -> Transpose ->
    Reshape, then Unsqueeze -> Tile -> Reshape -> Transpose: one nearest upsample2d, proven on a probe."""
    import onnx

    keras.utils.set_random_seed(0)
    L = keras.layers
    inp = keras.Input((6, 5, 3), name="x")
    x = L.Conv2D(4, 3, padding="same", name="conv1")(inp)
    x = L.UpSampling2D(2, name="up")(x)
    x = L.Conv2D(3, 1, name="conv2")(x)
    x = L.UpSampling2D((1, 3), name="wide")(x)
    x = L.Conv2D(2, 3, name="conv3")(x)
    out = L.Dense(4, name="fc")(L.GlobalAveragePooling2D(name="gap")(x))
    spec = (tf.TensorSpec((None, 6, 5, 3), tf.float32, name="x"),)
    proto, _ = tf2onnx.convert.from_keras(keras.Model(inp, out), input_signature=spec, opset=17,
                                          inputs_as_nchw=["x"])
    assert "Tile" in {n.op_type for n in proto.graph.node} and "Resize" not in {n.op_type for n in proto.graph.node}
    path = tmp_path / "up.onnx"
    onnx.save(proto, str(path))
    imported = import_onnx(path, flat=True)
    ups = {n.name: n for n in cnnspec.loads(imported.text).graph.nodes if n.op == "upsample2d"}
    assert {k: (n.attrs["scale"], n.attrs["mode"]) for k, n in ups.items()} == {
        "up": ((2, 2), "nearest"), "wide": ((1, 3), "nearest")}
    x = np.random.default_rng(1).standard_normal((1, 3, 6, 5)).astype(np.float32)
    a = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    b = ort.InferenceSession(model_bytes(imported.graph, imported.weights),
                             providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert float(np.abs(a - b).max()) <= 1e-5 * float(np.abs(a).max())
