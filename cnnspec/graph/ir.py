"""The graph IR: frozen, named nodes with explicit inputs. Passes return new graphs, never mutate.

A node's ``attrs`` are normalised once at the door (pairs for sizes, defaults filled in), so
backends read ``node.attrs["kernel"]`` as ``(kh, kw)`` and never re-parse user input. Shape
inference fills ``shape``, ``pads``, ``params`` and ``macs``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from types import MappingProxyType
from typing import Mapping

from ..errors import Location

Shape = tuple  # channels-first, no batch: (C, H, W) or (N,)
INPUT = "input"


def frozen_attrs(mapping: Mapping | None = None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: Mapping = field(default_factory=frozen_attrs, hash=False, compare=False)
    expect: Shape | None = None
    location: Location | None = None
    via: tuple = ()  # block calls that produced this node: ((block, Location), ...), innermost first
    call: str = ""   # the name prefix of the innermost call ('layer1.0.'): tells repeat copies apart
    # filled by shape inference
    shape: Shape | None = None
    # top, bottom, left, right as every target applies them: padding (a ceil-mode pool's reaches its
    # last window, so a floor-mode pool computes it), or cropping (conv2d_transpose, crop2d)
    pads: tuple[int, int, int, int] | None = None
    params: int = 0
    macs: int = 0

    def with_(self, **changes) -> "Node":
        return replace(self, **changes)


@dataclass(frozen=True)
class Graph:
    name: str
    input_shape: Shape
    nodes: tuple[Node, ...]
    classes: tuple[str, ...] | None = None
    # the layers the model returns, in order (the spec's ``outputs``); empty: the last layer alone
    outputs: tuple[str, ...] = ()
    description: str | None = None
    # where the spec says 'input:' (for warnings about it); not part of what the graph is
    input_location: Location | None = field(default=None, compare=False)
    canonical_spec: str = "{}"  # the expanded spec as canonical JSON, carried into exports
    file: str = "<spec>"
    scale: str | None = None  # the scale chosen (--scale), carried into exports as cnnspec.scale
    parameters: tuple = ()  # the spec's parameters as resolved: ((name, value), ...)

    @property
    def output(self) -> Node:
        """The first output's node (the one a single-output command judges by default)."""
        return self.node(self.output_names[0])

    @property
    def output_shape(self) -> Shape | None:
        """The first output's shape. None where unknown: no layer survived checking, or its shape
        could not be inferred."""
        return self.output.shape if self.nodes else None

    @property
    def several_outputs(self) -> bool:
        return len(self.output_names) > 1

    def with_outputs(self, names) -> "Graph":
        """The same graph returning ``names`` (layer names, in order)."""
        return replace(self, outputs=tuple(names))

    @property
    def output_names(self) -> tuple[str, ...]:
        """The output layers' names, in order: ``outputs``, or the last layer's name alone. A pass
        that drops layers sets ``outputs`` to what it keeps (``training.loss``)."""
        if self.outputs:
            return self.outputs
        return (self.nodes[-1].name,) if self.nodes else ()

    @property
    def output_nodes(self) -> tuple[Node, ...]:
        return tuple(self.node(name) for name in self.output_names)

    @cached_property
    def _by_name(self) -> Mapping[str, Node]:
        """Name -> node, built once: lookups by name stay O(1), so passes stay linear in the spec."""
        return MappingProxyType({n.name: n for n in self.nodes})

    def node(self, name: str) -> Node:
        return self._by_name[name]

    def shape_of(self, name: str) -> Shape | None:
        return self.input_shape if name == INPUT else self.node(name).shape

    @property
    def params(self) -> int:
        return sum(n.params for n in self.nodes)

    @property
    def macs(self) -> int:
        return sum(n.macs for n in self.nodes)

    @property
    def activation_bytes(self) -> int:
        """float32 bytes of the input and every layer's output for one sample."""
        total = _numel(self.input_shape)
        for n in self.nodes:
            total += _numel(n.shape or ())
        return 4 * total

    def is_sequential(self) -> bool:
        prev = INPUT
        for n in self.nodes:
            if n.inputs != (prev,):
                return False
            prev = n.name
        return True


def _numel(shape) -> int:
    out = 1
    for s in shape:
        out *= s
    return out if shape else 0
