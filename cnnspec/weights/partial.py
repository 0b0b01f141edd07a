"""How a weights file fits a graph, tensor by tensor, and which layers are the graph's head: what
``train --init`` needs to start a spec with another head from weights trained for one (fine-tuning),
and what a strict reader's error lists.

:func:`compare_weights` only compares (it never decides); :func:`head_layers` names the classifier
head: the last dense or conv layer on the way to the output and the weighted layers after it (a
batchnorm on its channels), which are all that change when the number of classes does.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..graph.ir import Graph

HEAD_OPS = ("dense", "conv2d", "conv2d_transpose", "depthwise_conv2d", "separable_conv2d", "conv1d")
MAX_LISTED = 10  # mismatches named in one error line; the rest are counted


@dataclass(frozen=True)
class WeightsMatch:
    """A file's tensors against the graph's expected ones, by neutral name."""

    fits: tuple[str, ...]  # present with the expected shape
    missing: tuple[str, ...]  # expected, absent from the file
    unexpected: tuple[str, ...]  # in the file, no place in the graph
    misshapen: tuple[tuple[str, tuple, tuple], ...]  # (key, the file's shape, the graph's shape)

    @property
    def exact(self) -> bool:
        return not (self.missing or self.unexpected or self.misshapen)

    def problems(self, keys=None) -> list[str]:
        """Each mismatch as a phrase (restricted to ``keys`` where given), misshapen first."""
        keep = (lambda k: True) if keys is None else (lambda k: k in keys)  # noqa: E731
        out = [f"'{k}' is {list(was)} in the file, {list(want)} in the spec" for k, was, want in self.misshapen
               if keep(k)]
        out += [f"'{k}' is missing from the file" for k in self.missing if keep(k)]
        out += [f"'{k}' in the file has no place in the spec" for k in self.unexpected if keep(k)]
        return out


def compare_weights(tensors: dict, expected: dict) -> WeightsMatch:
    """Compare by name and shape (PyTorch's ``num_batches_tracked`` counters are not weights)."""
    import numpy as np

    fits, misshapen = [], []
    for key, shape in expected.items():
        if key in tensors:
            have = tuple(np.shape(tensors[key]))
            (fits.append(key) if have == tuple(shape) else misshapen.append((key, have, tuple(shape))))
    missing = tuple(k for k in expected if k not in tensors)
    unexpected = tuple(k for k in tensors if k not in expected and not k.endswith("num_batches_tracked"))
    return WeightsMatch(tuple(fits), missing, unexpected, tuple(misshapen))


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
