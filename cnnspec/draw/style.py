"""How a drawing looks: a fill per kind of op and a line per kind of arrow, shared by every format."""
from __future__ import annotations

from dataclasses import dataclass

from ..graph.ops import ACTIVATIONS


@dataclass(frozen=True)
class Line:
    colour: str
    dashed: bool
    legend: str


FILLS = {
    "input": "#ffffff",
    "call": "#e8e8e8",
    "conv2d": "#cfe2f3",
    "conv2d_transpose": "#cfe2f3",
    "dense": "#d9d2e9",
    "maxpool2d": "#d9ead3",
    "avgpool2d": "#d9ead3",
    "global_avgpool2d": "#d9ead3",
    "global_maxpool2d": "#d9ead3",
    "upsample2d": "#d9ead3",
    "batchnorm": "#fff2cc",
    "layernorm": "#fff2cc",
    "add": "#fce5cd",
    "multiply": "#fce5cd",
    "concat": "#f4cccc",
    **{name: "#f3f3f3" for name in ACTIVATIONS},
}
DEFAULT_FILL = "#eeeeee"

ARROW_STYLES = {
    "flow": Line("#555555", False, "data flow"),
    "skip": Line("#e69138", True, "skip connection (into add or multiply)"),
    "branch": Line("#3d85c6", True, "branch (into concat, or reading an earlier layer)"),
}
CLUSTER_STROKE = "#888888"
CLUSTER_FILL = "#fafafa"


def fill(kind: str) -> str:
    return FILLS.get(kind, DEFAULT_FILL)
