"""The Python entry points: ``cnnspec.load("net.yaml")`` gives a checked :class:`Spec`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import SpecError, sort_diagnostics
from .graph.ir import Graph
from .spec.compiler import compile_checked, compile_document
from .spec.loader import load_document, parse_yaml


@dataclass(frozen=True)
class Spec:
    """A checked spec: its graph, and the way to a framework model."""

    graph: Graph
    path: str

    @property
    def name(self) -> str:
        return self.graph.name

    def to(self, backend: str = "torch", weights: str | Path | dict | None = None, seed: int | None = 0):
        """A framework model (``torch.nn.Module`` or ``keras.Model``) of this spec.

        ``weights`` is a weights file of any format ``--weights`` reads (safetensors, a PyTorch
        state_dict, Keras weights, an ONNX model's initializers) or a dict of neutral-layout arrays;
        without it the weights are initialised from ``seed``.
        """
        from .backend.plugins import load_backend
        from .graph.resources import require_memory

        require_memory(self.graph)
        backend_obj = load_backend(backend)
        if isinstance(weights, (str, Path)):
            from .backend.weightfiles import read_weights

            weights = read_weights(weights, self.graph)
        return backend_obj.compile(self.graph, weights=weights, seed=seed)


def check_path(path: str | Path):
    """Parse and compile, collecting diagnostics instead of raising on spec errors."""
    try:
        doc = load_document(path)
    except SpecError as exc:
        return None, list(exc.diagnostics)
    graph, diags = compile_document(doc)
    return graph, sort_diagnostics(diags)


def load(path: str | Path) -> Spec:
    """Load and check a spec file; raises :class:`SpecError` carrying every problem found."""
    return Spec(compile_checked(load_document(path)), str(path))


def loads(text: str, file: str = "<string>") -> Spec:
    return Spec(compile_checked(parse_yaml(text, file)), file)
