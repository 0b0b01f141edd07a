"""Initial weights drawn with numpy, by PyTorch's default rules, so a spec builds without a framework.

PyTorch initialises conv and dense weights with ``kaiming_uniform_(a=sqrt(5))`` and their biases
uniformly, both within +-1/sqrt(fan_in); batchnorm starts at scale 1, shift 0, mean 0, variance 1,
layernorm at scale 1, shift 0, and a layer scale at its ``init``.
The same rules give a trainable start of the same scale; the numbers are numpy's, not torch's.
"""
from __future__ import annotations

import math

import numpy as np

from cnnspec.graph.ir import Graph
from cnnspec.weights.neutral import expected_weights

BATCHNORM_START = {"weight": 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0}
# op -> (node, part) -> the constant its weights start at; other ops' weights are drawn
CONSTANT_START = {
    "batchnorm": lambda node, part: BATCHNORM_START[part],
    "layernorm": lambda node, part: BATCHNORM_START[part],
    "scale": lambda node, part: node.attrs["init"],
}


def initial_weights(graph: Graph, seed: int | None = 0) -> dict:
    """Every neutral key of the graph, float32, deterministic for a seed."""
    rng = np.random.default_rng(0 if seed is None else int(seed))
    nodes = {n.name: n for n in graph.nodes}
    out, fan_in = {}, {}
    for key, shape in expected_weights(graph).items():
        module, part = key.rsplit(".", 1)  # a layer's module, or a part of it (separable_conv2d's 'depthwise')
        layer = _layer_of(module, nodes)
        constant = CONSTANT_START.get(nodes[layer].op)
        if constant is not None:
            out[key] = np.full(shape, constant(nodes[layer], part), np.float32)
            continue
        if part == "weight":
            fan_in[module] = int(np.prod(shape[1:]))
        bound = 1.0 / math.sqrt(fan_in[module]) if fan_in.get(module) else 0.0
        out[key] = rng.uniform(-bound, bound, shape).astype(np.float32)
    return out


def _layer_of(module: str, nodes: dict) -> str:
    """The layer a weight's module path belongs to: itself, or the longest layer name before a dot."""
    while module not in nodes and "." in module:
        module = module.rsplit(".", 1)[0]
    return module
