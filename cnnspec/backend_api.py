"""What a backend plugin provides. Backends live in ``backends/`` and are found by entry point.

The CLI and the trainer speak only this interface; a backend translates the frozen IR into its
framework, and the neutral weights layout (``cnnspec.weights``) into its own tensors.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

Progress = Callable[[str], None]


class Backend(ABC):
    name: str = ""

    @abstractmethod
    def compile(self, graph, weights: dict | None = None, seed: int | None = 0):
        """A native model in inference mode; neutral-layout ``weights`` or weights drawn from ``seed``."""

    @abstractmethod
    def get_weights(self, model, graph) -> dict:
        """The model's weights as float32 numpy arrays in the neutral (PyTorch) layout."""

    @abstractmethod
    def set_weights(self, model, graph, weights: dict) -> None:
        """Load neutral-layout weights, transposing to the framework's layout."""

    @abstractmethod
    def predict(self, model, x_nchw):
        """Run on a float32 [N, C, H, W] numpy array; returns a numpy array."""

    @abstractmethod
    def export_onnx(self, model, graph, path: str | Path) -> None:
        """Write a self-contained ONNX file with the contract's interface (see ``cnnspec.onnxio``)."""

    @abstractmethod
    def build(self, graph, outdir: Path, weights: dict | None = None, seed: int | None = 0,
              progress: Progress = lambda _msg: None) -> list[Path]:
        """``cnnspec build``: write model.onnx, weights.safetensors and the backend's own files."""
