"""The ONNX backend: the graph and neutral weights written by the core, run by ONNX Runtime."""
from __future__ import annotations

from dataclasses import dataclass

from cnnspec.backend.interface import Backend
from cnnspec.errors import InputError
from cnnspec.weights.neutral import check_tensors, expected_weights


@dataclass
class OnnxModel:
    """An in-memory ONNX Runtime session and the neutral weights it was built from."""

    graph: object
    weights: dict
    session: object = None

    def refresh(self) -> None:
        import onnxruntime as ort

        from cnnspec.onnxfile.writer import model_bytes

        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(model_bytes(self.graph, self.weights, "onnx"), sess_options=options,
                                            providers=["CPUExecutionProvider"])


class OnnxBackend(Backend):
    name = "onnx"
    requires = ("onnx", "onnxruntime")
    extra = "onnx"

    def compile(self, graph, weights: dict | None = None, seed: int | None = 0):
        from .init import initial_weights

        model = OnnxModel(graph, initial_weights(graph, seed))
        if weights is not None:
            self.set_weights(model, graph, weights)
        else:
            model.refresh()
        return model

    def get_weights(self, model, graph) -> dict:
        return {key: value.copy() for key, value in model.weights.items()}

    def set_weights(self, model, graph, weights: dict) -> None:
        model.weights = check_tensors(weights, expected_weights(graph), "weights", f"do not fit spec '{graph.name}'")
        model.refresh()

    def predict(self, model, x_nchw):
        import numpy as np

        x = np.ascontiguousarray(x_nchw, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        if x.shape[1:] != tuple(model.graph.input_shape):
            raise InputError(f"input has shape {list(x.shape)} but the model takes "
                             f"[N, {', '.join(map(str, model.graph.input_shape))}]")
        outputs = model.session.run(None, {"input": x})
        return outputs if model.graph.several_outputs else outputs[0]  # one array per output, in order
