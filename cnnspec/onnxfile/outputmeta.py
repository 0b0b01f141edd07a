"""What a model's output means, as two metadata keys an export carries and ``cnnspec run`` reads.

``cnnspec.output_op`` is the op of the graph's output node, looking through ops that do nothing
at inference (dropout); ``cnnspec.output_activation`` is that node's fused activation, or "".
Read from the expanded graph, so a softmax inside a block counts: the raw spec only shows the
block's call.
"""
from __future__ import annotations

from ..graph.ir import INPUT, Graph, Node
from ..graph.ops import OPS

OUTPUT_OP = "cnnspec.output_op"
OUTPUT_ACTIVATION = "cnnspec.output_activation"


def scoring_node(graph: Graph) -> Node:
    """The node whose values the model outputs at inference."""
    node = graph.output
    while OPS[node.op].inference_identity and node.inputs and node.inputs[0] != INPUT:
        node = graph.node(node.inputs[0])
    return node


def output_metadata(graph: Graph) -> dict[str, str]:
    """The two keys for an exported model's metadata_props."""
    node = scoring_node(graph)
    return {OUTPUT_OP: node.op, OUTPUT_ACTIVATION: node.attrs.get("activation") or ""}


def ends_in_softmax(op: str, activation: str) -> bool:
    """Whether outputs described by these two keys are already probabilities."""
    return op == "softmax" or activation == "softmax"
