"""The Python entry points: ``cnnspec.load("net.yaml")`` gives a checked :class:`Spec`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import SpecError, sort_diagnostics
from .graph.ir import Graph
from .spec.compiler import compile_checked, compile_document
from .spec.loader import load_document, parse_yaml
from .spec.parameters import NO_CHOICE, Choice


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


def choice(scale: str | None = None, sets: dict | None = None) -> Choice:
    """A spec's scale and parameter values, as ``--scale`` and ``--set`` give them."""
    return Choice(scale, tuple((sets or {}).items()))


def check_path(path: str | Path, choice: Choice = NO_CHOICE):
    """Parse and compile, collecting diagnostics instead of raising on spec errors. A ``choice`` the
    spec does not offer (an unknown scale or parameter) raises UsageError."""
    try:
        doc = load_document(path)
    except SpecError as exc:
        return None, list(exc.diagnostics)
    graph, diags = compile_document(doc, choice)
    return graph, sort_diagnostics(diags)


def load(path: str | Path, scale: str | None = None, sets: dict | None = None, *,
         choice: Choice | None = None) -> Spec:
    """Load and check a spec file; raises :class:`SpecError` carrying every problem found.
    ``scale``/``sets`` (or a ready ``choice``) pick the spec's parameter values, as ``--scale``/``--set``."""
    return Spec(compile_checked(load_document(path), choice or _choice(scale, sets)), str(path))


def loads(text: str, file: str = "<string>", scale: str | None = None, sets: dict | None = None) -> Spec:
    return Spec(compile_checked(parse_yaml(text, file), _choice(scale, sets)), file)


_choice = choice
