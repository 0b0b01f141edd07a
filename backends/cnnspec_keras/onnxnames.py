"""Stable names for a tf2onnx graph, so the same spec and weights give the same bytes.

tf2onnx names constants from a process-wide counter (``pad_const__21``, then ``__64`` on the next
export) and TensorFlow scopes carry call counters (``net_1/conv2d_1_1/...``). Both depend on what
ran before in the process. Here every node is renamed ``<spec layer>/<OpType>`` (the Keras layer it
came from), every intermediate value after the node that makes it, and every constant after its
first reader, in graph order. The graph's own input and output keep theirs (``finalize_and_save``
names them).
"""
from __future__ import annotations

import re


def _layer_of(tf_name: str, layer_names: list[str]) -> str | None:
    """The Keras layer a TF node name belongs to: ``model_1/conv2d_3_1/Conv`` -> ``conv2d_3``."""
    for scope in tf_name.split("/"):
        for layer in layer_names:  # longest first: 'conv2d_1_pad' before 'conv2d_1'
            if scope == layer or re.fullmatch(re.escape(layer) + r"_\d+", scope):
                return layer
    return None


def canonical_names(proto, layer_names) -> None:
    """Rename in place; ``layer_names`` are the Keras model's layer names."""
    g = proto.graph
    g.doc_string = ""  # tf2onnx writes the TF graph's per-process name here
    layers = sorted(set(layer_names), key=len, reverse=True)
    keep = {v.name for v in g.input} | {v.name for v in g.output}
    initializers = {t.name: t for t in g.initializer}
    renamed: dict[str, str] = {}
    used: set[str] = set(keep)

    def unique(base: str) -> str:
        name, k = base, 1
        while name in used:
            k += 1
            name = f"{base}_{k}"
        used.add(name)
        return name

    ordered_initializers = []
    for node in g.node:
        node.doc_string = ""
        layer = _layer_of(node.name, layers)
        node.name = unique(f"{layer}/{node.op_type}" if layer else node.op_type)
        for i, name in enumerate(node.input):
            if name in initializers and name not in renamed:
                renamed[name] = unique(f"{node.name}/const{i}")
                ordered_initializers.append(initializers[name])
            if name in renamed:
                node.input[i] = renamed[name]
        for k, name in enumerate(node.output):
            if name and name not in keep:
                renamed[name] = unique(f"{node.name}:{k}")
                node.output[k] = renamed[name]
    for tensor in ordered_initializers:
        tensor.name = renamed[tensor.name]
    del g.initializer[:]  # constants no node reads are dropped
    g.initializer.extend(ordered_initializers)
    for value in g.value_info:
        value.name = renamed.get(value.name, value.name)
    for node in g.node:  # inputs read before their producer was renamed (none in a sorted graph)
        for i, name in enumerate(node.input):
            node.input[i] = renamed.get(name, name)
