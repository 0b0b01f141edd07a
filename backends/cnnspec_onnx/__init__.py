"""The ONNX backend: ``cnnspec build --backend onnx`` with only ``pip install 'cnnspec[onnx]'``.

No framework: the core's writer builds the model, ONNX Runtime runs it. Importing this package
imports neither onnx nor onnxruntime; the backend's methods do, when first used."""
from .backend import OnnxBackend

__all__ = ["OnnxBackend"]
