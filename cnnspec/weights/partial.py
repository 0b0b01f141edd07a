"""Which layers are a graph's head: what ``train --init`` needs to start a spec with another head
from weights trained for one (fine-tuning). The file's names meet the spec's in ``weights.match``.

:func:`head_layers` names the classifier head: the last dense or conv layer on the way to the output
and the weighted layers after it (a batchnorm on its channels), which are all that change when the
number of classes does.
"""
from __future__ import annotations


from ..graph.ir import Graph

HEAD_OPS = ("dense", "conv2d", "conv2d_transpose", "depthwise_conv2d", "separable_conv2d", "conv1d")
MAX_LISTED = 10  # mismatches named in one error line; the rest are counted


def listed(problems: list[str]) -> str:
    """At most MAX_LISTED problems, then how many more."""
    more = len(problems) - MAX_LISTED
    return "; ".join(problems[:MAX_LISTED]) + (f"; and {more} more" if more > 0 else "")


def head_layers(graph: Graph) -> tuple[str, ...]:
    """The classifier head: the last dense or conv layer on the path to the output, and the weighted
    layers after it on that path (their channels are its outputs). Empty where there is none."""
    from .neutral import expected_weights

    weighted = {key.rsplit(".", 1)[0] for key in expected_weights(graph)}
    path, name = [], graph.output.name
    while name != "input":  # back along the first input from the output
        node = graph.node(name)
        path.append(node)
        if node.op in HEAD_OPS and node.name in weighted:
            return tuple(n.name for n in reversed(path) if n.name in weighted)
        if not node.inputs:
            break
        name = node.inputs[0]
    return ()
