"""Weights between the contract's neutral layout (PyTorch's) and Keras' own, with numpy alone.

In the core, not the Keras backend, so ``cnnspec convert`` needs no framework and no plugin. The
Keras layout is what each layer's ``get_weights()`` returns, keyed ``<layer>.<variable>``:
- conv2d: ``kernel`` [kh, kw, C_in/groups, filters] (grouped and depthwise alike), ``bias``
- conv2d_transpose: ``kernel`` [kh, kw, filters, C_in] (Conv2DTranspose's), ``bias``
- separable_conv2d: ``depthwise_kernel`` [kh, kw, C, m], ``pointwise_kernel`` [1, 1, C*m, filters],
  ``bias`` (SeparableConv2D's)
- dense: ``kernel`` [in, units], ``bias``. No row permutation after a flatten: the Keras model
  flattens in C-H-W order, as the contract does.
- batchnorm: ``gamma``, ``beta``, ``moving_mean``, ``moving_variance`` (without ``gamma`` / ``beta``
  where ``scale`` / ``center`` is false); layernorm: ``gamma``, ``beta``; scale: ``gamma``.
Each op's parts are one entry of :data:`KERAS_PARTS` (neutral part, Keras part, axes), not an
if-chain; an op with weights and no entry is :class:`~cnnspec.errors.LoweringMissing`.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import LoweringMissing
from ..graph.ir import Graph
from ..graph.ops import OPS
from .neutral import check_tensors, expected_weights

NEUTRAL_FORMAT, KERAS_FORMAT = "cnnspec", "cnnspec-keras"
LAYOUTS = ("neutral", "keras")
FORMATS = {"neutral": NEUTRAL_FORMAT, "keras": KERAS_FORMAT}  # each file's ``format`` tag


@dataclass(frozen=True)
class Part:
    """One weight tensor in both layouts; ``axes`` is the transpose from neutral to Keras (None: as is).
    ``per_channel``: after the transpose, the last axis (C*m) splits into [C, m] by the layer's
    ``depth_multiplier`` m (a depthwise kernel: Keras' [kh, kw, C, m], the neutral [C*m, 1, kh, kw])."""

    neutral: str
    keras: str
    axes: tuple[int, ...] | None = None
    per_channel: bool = False

    def keras_shape(self, shape, multiplier: int = 1) -> tuple:
        out = tuple(shape) if self.axes is None else tuple(shape[i] for i in self.axes)
        return self._split(out, multiplier) if self.per_channel else out

    @staticmethod
    def _split(shape, multiplier: int) -> tuple:
        *head, _, last = shape  # [kh, kw, 1, C*m] -> [kh, kw, C, m]
        return (*head, last // multiplier, multiplier)

    def to_keras(self, tensor, multiplier: int = 1):
        out = tensor if self.axes is None else tensor.transpose(self.axes)
        return out.reshape(self._split(out.shape, multiplier)) if self.per_channel else out

    def to_neutral(self, tensor, multiplier: int = 1):
        if self.per_channel:  # [kh, kw, C, m] -> [kh, kw, 1, C*m], channel-major as PyTorch's groups
            *head, c, m = tensor.shape
            tensor = tensor.reshape((*head, 1, c * m))
        if self.axes is None:
            return tensor
        return tensor.transpose(tuple(self.axes.index(axis) for axis in range(len(self.axes))))  # the inverse


OIHW_TO_HWIO = (2, 3, 1, 0)
IOHW_TO_HWOI = (2, 3, 1, 0)  # transposed: [C_in, filters, kh, kw] -> [kh, kw, filters, C_in]

# op -> its parts in the Keras layer's get_weights() order; parts a layer lacks (no bias) are skipped
KERAS_PARTS: dict[str, tuple[Part, ...]] = {
    "conv2d": (Part("weight", "kernel", OIHW_TO_HWIO), Part("bias", "bias")),
    "conv2d_transpose": (Part("weight", "kernel", IOHW_TO_HWOI), Part("bias", "bias")),
    # Keras' SeparableConv2D: depthwise_kernel [kh, kw, C, m], pointwise_kernel [1, 1, C*m, filters], bias
    "separable_conv2d": (Part("depthwise.weight", "depthwise_kernel", OIHW_TO_HWIO, per_channel=True),
                         Part("pointwise.weight", "pointwise_kernel", OIHW_TO_HWIO), Part("pointwise.bias", "bias")),
    "dense": (Part("weight", "kernel", (1, 0)), Part("bias", "bias")),
    "batchnorm": (Part("weight", "gamma"), Part("bias", "beta"),
                  Part("running_mean", "moving_mean"), Part("running_var", "moving_variance")),
    "layernorm": (Part("weight", "gamma"), Part("bias", "beta")),
    "scale": (Part("weight", "gamma"),),
}


def keras_parts(op: str, layer: str | None = None) -> tuple[Part, ...]:
    """The table's entry for an op with weights (an op without any has none)."""
    if not OPS[op].has_weights:
        return ()
    try:
        return KERAS_PARTS[op]
    except KeyError:
        raise LoweringMissing(op, "keras", layer) from None


def layer_parts(graph: Graph) -> list[tuple[str, tuple[Part, ...]]]:
    """(layer name, the parts it holds) for every weighted layer, in graph order."""
    expected = expected_weights(graph)
    out = []
    for node in graph.nodes:
        parts = tuple(p for p in keras_parts(node.op, node.name) if f"{node.name}.{p.neutral}" in expected)
        if parts:
            out.append((node.name, parts))
    return out


def multiplier(graph: Graph, layer: str) -> int:
    """A layer's ``depth_multiplier`` (1 for ops without one): how a depthwise kernel's channels split."""
    return graph.node(layer).attrs.get("depth_multiplier", 1)


def expected_keras_weights(graph: Graph) -> dict[str, tuple[int, ...]]:
    neutral = expected_weights(graph)
    return {f"{name}.{p.keras}": p.keras_shape(neutral[f"{name}.{p.neutral}"], multiplier(graph, name))
            for name, parts in layer_parts(graph) for p in parts}


def to_keras(graph: Graph, neutral: dict) -> dict:
    import numpy as np

    return {f"{name}.{p.keras}": np.ascontiguousarray(p.to_keras(neutral[f"{name}.{p.neutral}"], multiplier(graph, name)))
            for name, parts in layer_parts(graph) for p in parts}


def to_neutral(graph: Graph, keras_tensors: dict) -> dict:
    import numpy as np

    return {f"{name}.{p.neutral}": np.ascontiguousarray(p.to_neutral(keras_tensors[f"{name}.{p.keras}"],
                                                                     multiplier(graph, name)))
            for name, parts in layer_parts(graph) for p in parts}


def expected_for(layout: str, graph: Graph) -> dict:
    return expected_keras_weights(graph) if layout == "keras" else expected_weights(graph)


def detect_layout(tensors: dict, graph: Graph, meta: dict | None = None) -> str:
    """'neutral' or 'keras': the file's own tag where it has one, else whichever layout's keys it holds more of."""
    tagged = {v: k for k, v in FORMATS.items()}.get((meta or {}).get("format"))
    if tagged:
        return tagged
    keys = set(tensors)
    neutral_hits = len(keys & set(expected_weights(graph)))
    keras_hits = len(keys & set(expected_keras_weights(graph)))
    return "keras" if keras_hits > neutral_hits else "neutral"


def convert(tensors: dict, graph: Graph, source_layout: str, target_layout: str, source: str) -> dict:
    """Checked in the source layout by the core's one check, returned in the target's."""
    checked = check_tensors(tensors, expected_for(source_layout, graph), source,
                            f"{source_layout}-layout weights do not fit spec '{graph.name}'", graph)
    if source_layout == target_layout:
        return checked
    return to_keras(graph, checked) if target_layout == "keras" else to_neutral(graph, checked)
