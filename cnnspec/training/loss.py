"""Which graph the cross-entropy loss sees: logits, even when the spec ends in softmax."""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..graph.ir import Graph, frozen_attrs
from ..graph.ops import ACTIVATIONS


@dataclass(frozen=True)
class Head:
    """The graph the loss sees, and the line that tells the user why."""

    train_graph: Graph
    note: str


def training_head(graph: Graph) -> Head:
    """Cross-entropy wants logits. A spec ending in softmax (a softmax layer, or ``activation:
    softmax`` on its last layer) is trained on the scores before it; the exported model keeps it."""
    out = graph.output
    if out.op == "softmax":
        keep = _ancestors(graph, out.inputs[0])
        nodes = tuple(n for n in graph.nodes if n.name in keep)
        return Head(replace(graph, nodes=nodes, outputs=(out.inputs[0],)),
                    f"the spec ends in softmax: training '{out.inputs[0]}' logits with cross-entropy "
                    f"(softmax applied once, inside the loss); the exported model keeps the softmax")
    if out.attrs.get("activation") == "softmax":
        plain = out.with_(attrs=frozen_attrs({**out.attrs, "activation": None}))
        return Head(replace(graph, nodes=tuple(plain if n.name == out.name else n for n in graph.nodes)),
                    f"'{out.name}' ends in softmax: training its pre-softmax logits with cross-entropy "
                    f"(softmax applied once, inside the loss); the exported model keeps the softmax")
    if out.op in ACTIVATIONS or out.attrs.get("activation"):
        return Head(graph, f"the spec ends in {out.attrs.get('activation') or out.op}: its outputs are used as "
                           f"scores for softmax cross-entropy (logits train best: end with a plain dense)")
    return Head(graph, "the spec outputs logits: softmax cross-entropy loss")


def judged_graph(graph: Graph, output: str) -> Graph:
    """The graph a command that judges one output (``train --output``) runs: the layers ``output``
    reads from, ending in it. The other outputs' layers drop out; their weights keep their initial
    values, and the exported model still has every output."""
    if graph.output_names == (output,) and graph.nodes[-1].name == output:
        return graph
    keep = _ancestors(graph, output)
    return replace(graph, nodes=tuple(n for n in graph.nodes if n.name in keep), outputs=(output,))


def _ancestors(graph: Graph, name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        n = todo.pop()
        if n == "input" or n in seen:
            continue
        seen.add(n)
        todo.extend(graph.node(n).inputs)
    return seen
