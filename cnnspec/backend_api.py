"""What a backend plugin provides. Backends live in ``backends/`` and are found by entry point.

The CLI and the trainer speak only this interface; a backend translates the frozen IR into its
framework, and the neutral weights layout (``cnnspec.weights``) into its own tensors. ``model.onnx``
is never a backend's job: the core writes it from the graph and the neutral weights
(:mod:`cnnspec.onnx_writer`), so every backend exports the same file.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

Progress = Callable[[str], None]
ONNX_FILE, WEIGHTS_FILE = "model.onnx", "weights.safetensors"


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

    def native_files(self, graph, model) -> list[tuple[str, Callable[[Path], None]]]:
        """The backend's own files for ``build`` beside model.onnx and the weights: (file name,
        a function writing it to a path), e.g. ``model.py``."""
        return []

    def export_onnx(self, model, graph, path: str | Path) -> None:
        """``model.onnx`` of this model's weights, through the core writer (the contract's interface)."""
        from .onnx_writer import write_onnx

        write_onnx(graph, self.get_weights(model, graph), path, backend=self.name)

    def build(self, graph, outdir: Path, weights: dict | None = None, seed: int | None = 0,
              progress: Progress = lambda _msg: None) -> list[Path]:
        """``cnnspec build``, the same sequence for every backend: compile, weights.safetensors,
        the backend's own files, then model.onnx from the graph and the neutral weights."""
        from .fsutil import ensure_dir
        from .onnx_writer import write_onnx
        from .onnxio import OPSET
        from .weights import write_weights

        outdir = ensure_dir(outdir)
        source = "the weights file" if weights is not None else f"seed {0 if seed is None else seed}"
        progress(f"compiling '{graph.name}' with {self.name} ({graph.params:,} parameters, weights from {source})")
        model = self.compile(graph, weights=weights, seed=seed)
        neutral = self.get_weights(model, graph)
        written = [outdir / WEIGHTS_FILE]
        progress(f"writing {WEIGHTS_FILE}")
        write_weights(written[0], neutral, graph)
        for filename, write in self.native_files(graph, model):
            progress(f"writing {filename}")
            write(outdir / filename)
            written.append(outdir / filename)
        progress(f"writing {ONNX_FILE} (ONNX opset {OPSET}, from the graph)")
        write_onnx(graph, neutral, outdir / ONNX_FILE, backend=self.name)
        written.append(outdir / ONNX_FILE)
        return written
