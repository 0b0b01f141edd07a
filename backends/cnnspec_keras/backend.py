"""The Keras 3 backend (TensorFlow): compile, weights in the neutral layout, predict, ONNX export
through tf2onnx, and ``cnnspec build``. Keras and TensorFlow are imported inside the methods, so
``cnnspec check`` and plugin discovery never pay for them."""
from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from pathlib import Path

from cnnspec.backend.interface import Backend
from cnnspec.errors import InputError
from cnnspec.files.atomic import atomic_write_text
from cnnspec.weights import keras_layout
from cnnspec.weights.neutral import check_tensors, expected_weights

from .plan import make_plan

PREDICT_CHUNK = 256  # largest batch one compiled call sees; bounds memory on big inputs
_compiled_calls: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _compiled_call(model):
    """One traced ``model(x, training=False)`` per model, for any batch size: Model.predict costs
    tens of milliseconds per call in set-up alone."""
    fn = _compiled_calls.get(model)
    if fn is None:
        import tensorflow as tf

        spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)

        @tf.autograph.experimental.do_not_convert
        def call(x):
            return model(x, training=False)

        fn = tf.function(call, input_signature=[spec])
        _compiled_calls[model] = fn
    return fn


class KerasBackend(Backend):
    name = "keras"
    requires = ("keras", "tensorflow", "onnx")
    extra = "keras"

    def compile(self, graph, weights: dict | None = None, seed: int | None = 0):
        """A functional keras.Model taking NCHW input; trainable (dropout and batchnorm follow
        ``training=``). Seeded initialisation is deterministic."""
        _quiet_tensorflow()
        import keras

        from .model import build_model

        if seed is not None:
            keras.utils.set_random_seed(int(seed))
        model = build_model(make_plan(graph))
        if weights is not None:
            self.set_weights(model, graph, weights)
        return model

    def get_weights(self, model, graph) -> dict:
        import numpy as np

        keras_tensors = {}
        for name, parts in keras_layout.layer_parts(graph):
            values = model.get_layer(name).get_weights()
            for part, value in zip(parts, values):
                keras_tensors[f"{name}.{part.keras}"] = np.asarray(value, dtype=np.float32)
        return keras_layout.to_neutral(graph, keras_tensors)

    def set_weights(self, model, graph, weights: dict) -> None:
        """Checked by the core (missing, unexpected, misshapen, non-finite), then transposed to Keras'."""
        neutral = check_tensors(weights, expected_weights(graph), "weights", f"do not fit spec '{graph.name}'")
        keras_tensors = keras_layout.to_keras(graph, neutral)
        for name, parts in keras_layout.layer_parts(graph):
            model.get_layer(name).set_weights([keras_tensors[f"{name}.{p.keras}"] for p in parts])

    def predict(self, model, x_nchw):
        import numpy as np

        x = np.asarray(x_nchw, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        expected = tuple(model.input_shape[1:])
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise InputError(f"input has shape {list(x.shape)} but the model takes [N, {', '.join(map(str, expected))}]")
        fn = _compiled_call(model)
        chunks = [fn(x[i:i + PREDICT_CHUNK]) for i in range(0, len(x), PREDICT_CHUNK)]
        if isinstance(model.output, (list, tuple)):  # several outputs: one array each, in order
            return [np.concatenate([np.asarray(c[k]) for c in chunks]) if chunks else np.zeros((0,), np.float32)
                    for k in range(len(model.output))]
        chunks = [np.asarray(c) for c in chunks]
        return np.concatenate(chunks) if chunks else np.zeros((0,), np.float32)

    def onnx_proto(self, model, graph):
        """tf2onnx's conversion of ``model(x, training=False)``: a cross-check of the core writer in
        tests, not the product's path."""
        _quiet_tensorflow()
        from cnnspec.onnxfile.boundary import OPSET

        from .export import convert

        return convert(model, graph.input_shape, OPSET)

    def export_onnx_native(self, model, graph, path) -> None:
        from cnnspec.onnxfile.boundary import finalize_and_save

        finalize_and_save(self.onnx_proto(model, graph), graph, self.name, path)

    def save_keras(self, model, path) -> None:
        """``model.keras`` written atomically (Keras insists on the suffix, so the temp file keeps it)."""
        path = Path(path)
        tmpdir = tempfile.mkdtemp(prefix=".model-keras-", dir=path.parent)
        try:
            tmp = Path(tmpdir) / "model.keras"
            model.save(tmp)
            os.replace(tmp, path)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)

    def native_files(self, graph, model):
        from .codegen import generate_model_keras_py

        return [("model.keras", lambda path: self.save_keras(model, path)),
                ("model_keras.py", lambda path: atomic_write_text(path, generate_model_keras_py(graph)))]
