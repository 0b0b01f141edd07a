"""What the pattern table produces: one :class:`Layer` per op of the language, still keyed by ONNX
values (``inputs``, ``output``); :mod:`.naming` gives each its name, :mod:`.writer` its YAML."""
from __future__ import annotations

from dataclasses import dataclass, field

from .reader import ONode


@dataclass
class Layer:
    """``args`` are the spec's arguments, defaults left out; ``weights`` the neutral parts
    (``weight``, ``bias``, ``running_mean``...) as numpy arrays; ``weight_name`` the initializer the
    layer's name may come from (``layer1.0.conv1.weight``); ``nodes`` every ONNX node it stands for."""

    op: str
    args: dict
    inputs: tuple
    output: str
    node: ONode
    weights: dict = field(default_factory=dict)
    weight_name: str | None = None
    nodes: tuple = ()
    name: str = ""
    hint: str = ""   # a name for a layer no node names (a flatten the importer adds)

    def spec_entry(self) -> dict:
        """The op and its arguments as a layer of the language: ``{conv2d: {...}}``, ``relu``."""
        return {self.op: dict(self.args) if self.args else None}
