"""Weights between the contract's neutral layout (PyTorch's) and Keras' own, with numpy alone.

The Keras layout is what each layer's ``get_weights()`` returns, keyed ``<layer>.<variable>``:
- conv2d: ``kernel`` [kh, kw, C_in/groups, filters] (grouped and depthwise alike), ``bias``
- dense: ``kernel`` [in, units], ``bias``. No row permutation after a flatten: the Keras model
  flattens in C-H-W order, as the contract does.
- batchnorm: ``gamma``, ``beta``, ``moving_mean``, ``moving_variance``.
Both directions are a table of (neutral part, Keras part, transform), not an if-chain.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from cnnspec.ir import Graph
from cnnspec.weights import expected_weights

KERAS_FORMAT = "cnnspec-keras"


def _oihw_to_hwio(t):
    return np.transpose(t, (2, 3, 1, 0))


def _hwio_to_oihw(t):
    return np.transpose(t, (3, 2, 0, 1))


def _swap(t):
    return np.transpose(t, (1, 0))


def _same(t):
    return t


@dataclass(frozen=True)
class Part:
    neutral: str
    keras: str
    to_keras: Callable
    to_neutral: Callable


# in each layer's get_weights() order
PARTS = {
    "conv2d": (Part("weight", "kernel", _oihw_to_hwio, _hwio_to_oihw), Part("bias", "bias", _same, _same)),
    "dense": (Part("weight", "kernel", _swap, _swap), Part("bias", "bias", _same, _same)),
    "batchnorm": (Part("weight", "gamma", _same, _same), Part("bias", "beta", _same, _same),
                  Part("running_mean", "moving_mean", _same, _same),
                  Part("running_var", "moving_variance", _same, _same)),
}


def layer_parts(graph: Graph) -> list[tuple[str, tuple[Part, ...]]]:
    """(layer name, the parts it holds) for every weighted layer, in graph order."""
    expected = expected_weights(graph)
    out = []
    for node in graph.nodes:
        parts = tuple(p for p in PARTS.get(node.op, ()) if f"{node.name}.{p.neutral}" in expected)
        if parts:
            out.append((node.name, parts))
    return out


def expected_keras_weights(graph: Graph) -> dict[str, tuple[int, ...]]:
    neutral = expected_weights(graph)
    out = {}
    for name, parts in layer_parts(graph):
        for p in parts:
            shape = neutral[f"{name}.{p.neutral}"]
            out[f"{name}.{p.keras}"] = tuple(p.to_keras(np.empty(shape, np.float32)).shape)
    return out


def to_keras(graph: Graph, neutral: dict) -> dict:
    return {f"{name}.{p.keras}": np.ascontiguousarray(p.to_keras(neutral[f"{name}.{p.neutral}"]))
            for name, parts in layer_parts(graph) for p in parts}


def to_neutral(graph: Graph, keras_tensors: dict) -> dict:
    return {f"{name}.{p.neutral}": np.ascontiguousarray(p.to_neutral(keras_tensors[f"{name}.{p.keras}"]))
            for name, parts in layer_parts(graph) for p in parts}


def check_tensors(tensors: dict, expected: dict, source: str, graph: Graph, layout: str) -> dict:
    """The core's check (missing, unexpected, misshapen, non-finite), naming the layout."""
    from cnnspec.weights import check_tensors as check

    return check(tensors, expected, source, f"{layout}-layout weights do not fit spec '{graph.name}'")


def detect_layout(tensors: dict, graph: Graph, meta: dict | None = None) -> str:
    """'neutral' or 'keras': the file's own tag where it has one, else whichever layout's keys it holds more of."""
    tagged = {v: k for k, v in FORMATS.items()}.get((meta or {}).get("format"))
    if tagged:
        return tagged
    keys = set(tensors)
    neutral_hits = len(keys & set(expected_weights(graph)))
    keras_hits = len(keys & set(expected_keras_weights(graph)))
    return "keras" if keras_hits > neutral_hits else "neutral"


LAYOUTS = ("neutral", "keras")
FORMATS = {"neutral": "cnnspec", "keras": KERAS_FORMAT}


def expected_for(layout: str, graph: Graph) -> dict:
    return expected_keras_weights(graph) if layout == "keras" else expected_weights(graph)


def write_tensors(path, tensors: dict, graph: Graph, layout: str) -> None:
    """Deterministic bytes, in graph order, tagged with the layout so readers need not guess."""
    from safetensors.numpy import save

    from cnnspec.fsutil import atomic_write_bytes
    from cnnspec.weights import canonical_safetensors

    order = list(expected_for(layout, graph))
    data = {k: np.ascontiguousarray(tensors[k], dtype=np.float32) for k in order}
    atomic_write_bytes(path, canonical_safetensors(save(data, metadata={"format": FORMATS[layout], "spec": graph.name})))


def convert(tensors: dict, graph: Graph, source_layout: str, target_layout: str, source: str) -> dict:
    """Checked in the source layout, returned in the target's."""
    checked = check_tensors(tensors, expected_for(source_layout, graph), source, graph, source_layout)
    if source_layout == target_layout:
        return checked
    return to_keras(graph, checked) if target_layout == "keras" else to_neutral(graph, checked)
