"""Warnings: specs that check, but probably do not say what their author meant.

Each check is a small function over a checked graph that yields :class:`Diagnostic` objects of
severity ``warning`` at the layer's line (as jsonschema's checks yield errors). Warnings never change
the exit code or the JSON's ``valid``; ``cnnspec check`` prints them to stderr and lists them under
``warnings`` in ``--json``.
"""
from __future__ import annotations

from typing import Callable, Iterator

from ..errors import Diagnostic, plural
from .ir import Graph, Node

Check = Callable[[Graph], Iterator[Diagnostic]]


def _warn(node: Node, message: str) -> Diagnostic:
    return Diagnostic(message, node.location, node.via, severity="warning")


def _softmax_axis(node: Node) -> int | None:
    """The size softmax normalises over at this node: channels of a map, features of a vector."""
    return node.shape[0] if node.shape else None


def softmax_over_one_value(graph: Graph) -> Iterator[Diagnostic]:
    """A softmax over one value always gives 1: the author wanted sigmoid, or more outputs."""
    for node in graph.nodes:
        if node.op == "softmax" or node.attrs.get("activation") == "softmax":
            if _softmax_axis(node) == 1:
                what = "channel" if len(node.shape) == 3 else "value"
                yield _warn(node, f"{node.name}: softmax over a single {what} always gives 1; for one "
                                  f"yes/no output use sigmoid, for k classes give the layer before it k outputs")


def bias_before_batchnorm(graph: Graph) -> Iterator[Diagnostic]:
    """A batchnorm subtracts each channel's mean, so a bias right before it has no effect."""
    readers: dict[str, list[Node]] = {}
    for node in graph.nodes:
        for name in node.inputs:
            readers.setdefault(name, []).append(node)
    for node in graph.nodes:
        if node.op not in ("conv2d", "dense") or not node.attrs.get("bias") or node.attrs.get("activation"):
            continue
        after = readers.get(node.name, [])
        if after and all(r.op == "batchnorm" for r in after):
            units = node.attrs["filters"] if node.op == "conv2d" else node.attrs["units"]
            yield _warn(node, f"{node.name}: its bias is cancelled by the batchnorm after it ({after[0].name} "
                              f"subtracts the mean); 'bias: false' saves {plural(units, 'parameter')}")


def channels_last_input(graph: Graph) -> Iterator[Diagnostic]:
    """``input: [64, 64, 3]`` checks (a 3-wide, 64-channel image) but was meant as height, width,
    channels: cnnspec is channels-first, and the mistake would only show at training."""
    shape = graph.input_shape
    if len(shape) == 3 and shape[2] in (1, 3) and shape[0] > 4:
        fixed = [shape[2], shape[0], shape[1]]
        yield Diagnostic(f"input {list(shape)} reads as {shape[0]} channels of {shape[1]}x{shape[2]} pixels; "
                         f"cnnspec is channels-first [channels, height, width]: for a "
                         f"{'grey' if shape[2] == 1 else 'colour'} image write {fixed}",
                         graph.input_location, severity="warning")


CHECKS: tuple[Check, ...] = (channels_last_input, softmax_over_one_value, bias_before_batchnorm)


def lint(graph: Graph) -> list[Diagnostic]:
    """Every warning for a graph that checked without errors, in file order."""
    found = [d for check in CHECKS for d in check(graph)]
    return sorted(found, key=lambda d: (d.location.line, d.location.column) if d.location else (0, 0))
