"""PyTorch backend for cnnspec: compile a checked graph to an ``nn.Module``, export ONNX, write a
standalone ``model.py``. Imported only when the torch backend is asked for."""
from .backend import TorchBackend

__all__ = ["TorchBackend"]
