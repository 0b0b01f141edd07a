"""What a backend plugin provides. Backends live in ``backends/`` and are found by entry point.

The CLI and the trainer speak only this interface; a backend translates the frozen IR into its
framework, and the neutral weights layout (``cnnspec.weights``) into its own tensors. ``model.onnx``
is never a backend's job: the core writes it from the graph and the neutral weights
(:mod:`cnnspec.onnxfile.writer`), so every backend exports the same file.

A plugin declares what it needs on its class (``requires``, ``extra``), so ``cnnspec backends``
can say what is missing by importing the plugin package alone, never its framework: a plugin
package must import its framework only inside its methods.
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from ..errors import BackendUnavailable
from .trainconfig import TrainConfig
from .world import World

Progress = Callable[[str], None]
ONNX_FILE, WEIGHTS_FILE = "model.onnx", "weights.safetensors"


@dataclass(frozen=True)
class EpochStats:
    """One epoch of training: mean loss and accuracy over ``images`` images, already summed over
    every process of a distributed run, so every rank takes the same decisions."""

    loss: float
    accuracy: float
    images: int


class BatchBar(Protocol):
    """The progress bar a trainer advances once per batch (``cnnspec.training.progress.EpochBar``)."""

    def update(self, loss: float, accuracy: float) -> None: ...


class Trainer(Protocol):
    """A backend's inner training loop. The framework-free orchestrator (``cnnspec.training``) owns
    the data, the batches, the learning rate of every step, augmentation, the epochs, checkpoints and
    the choice of the best epoch; a trainer only steps."""

    def train_epoch(self, x, y, plan, bar: BatchBar) -> EpochStats:
        """One pass over ``plan.batches`` (index arrays into ``x``, ``y``; a
        :class:`cnnspec.training.EpochPlan`): step i uses learning rate ``plan.lrs[i]`` and, where
        ``plan.augment`` is set, the images ``plan.augment(i, x[batch])``. Advances ``bar`` per batch."""

    def evaluate(self, x, y, indices) -> tuple:
        """(loss, accuracy, confusion matrix: classes x classes counts, rows true) on ``x[indices]``,
        in fp32 and summed over every process."""

    def weights(self) -> dict:
        """The current weights as float32 numpy arrays in the neutral layout."""

    def state(self) -> tuple[dict, dict]:
        """(numpy arrays, JSON-ready dict): everything the next step depends on (weights, buffers,
        optimizer slots, random generators), for the checkpoint. A collective under torchrun."""

    def load_state(self, tensors: dict, meta: dict) -> None:
        """Restore what :meth:`state` gave, so training carries on exactly."""

    def close(self) -> None:
        """Release what the trainer holds (threads, process groups); called once, even after an error."""


class Backend(ABC):
    name: str = ""
    # importable modules the backend needs, checked (without importing them) before it is used
    requires: tuple[str, ...] = ()
    # the pip extra that installs them: ``pip install 'cnnspec[<extra>]'``; "" when there is none
    extra: str = ""

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
        """Run on a float32 [N, C, H, W] numpy array; returns a numpy array, or a list of them (one
        per output, in the spec's order) for a graph with several outputs."""

    def native_files(self, graph, model) -> list[tuple[str, Callable[[Path], None]]]:
        """The backend's own files for ``build`` beside model.onnx and the weights: (file name,
        a function writing it to a path), e.g. ``model.py``."""
        return []

    def export_onnx(self, model, graph, path: str | Path) -> None:
        """``model.onnx`` of this model's weights, through the core writer (the contract's interface)."""
        from ..onnxfile.writer import write_onnx

        write_onnx(graph, self.get_weights(model, graph), path, backend=self.name)

    def build(self, graph, outdir: Path, weights: dict | None = None, seed: int | None = 0,
              progress: Progress = lambda _msg: None) -> list[Path]:
        """``cnnspec build``, the same sequence for every backend: compile, weights.safetensors,
        the backend's own files, then model.onnx from the graph and the neutral weights."""
        from ..files.atomic import ensure_dir
        from ..onnxfile.boundary import OPSET
        from ..onnxfile.writer import write_onnx
        from ..weights.safetensors_io import write_weights

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

    def make_trainer(self, graph, weights: dict | None, config: TrainConfig, world: World) -> Trainer:
        """The one way training reaches a backend: a :class:`Trainer` for ``graph`` (the graph the
        loss sees), starting from neutral-layout ``weights`` or from ``config.seed``.

        By default the loop lives apart from the backend class, in ``<backend package>.training``
        as ``make_trainer(backend, graph, weights, config, world)``, so importing the backend never
        pays for it; a backend may override this instead.
        """
        return training_module(self).make_trainer(self, graph, weights, config, world)


def training_module(backend):
    """``<backend package>.training``, where a backend keeps its training loop."""
    package = type(backend).__module__.partition(".")[0]
    try:
        return importlib.import_module(f"{package}.training")
    except ModuleNotFoundError as exc:
        if exc.name != f"{package}.training":
            raise
        raise BackendUnavailable(f"backend '{backend.name or package}' does not support training") from None
