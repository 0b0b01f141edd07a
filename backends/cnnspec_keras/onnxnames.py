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


def sink_constant_nodes(graph) -> None:
    """Move each node that reads only constants (a Split of a grouped kernel, say) to just before
    its first reader. tf2onnx places such nodes wherever its traversal met them, which depends
    on what ran earlier in the process; next to their reader their place is fixed."""
    producers = {}
    constant = {t.name for t in graph.initializer} | {""}
    floating = set()
    for node in graph.node:  # a sorted graph: producers come first
        if all(name in constant for name in node.input):
            floating.add(id(node))
            constant.update(node.output)
        for name in node.output:
            producers[name] = node
    if not floating:
        return
    placed: set[int] = set()
    ordered = []

    def place(node):
        if id(node) in placed:
            return
        placed.add(id(node))
        for name in node.input:
            producer = producers.get(name)
            if producer is not None and id(producer) in floating:
                place(producer)
        ordered.append(node)

    for node in graph.node:
        if id(node) not in floating:
            place(node)
    for node in graph.node:  # constant nodes no one reads keep their relative order at the end
        place(node)
    copies = [type(n)() for n in ordered]
    for copy, node in zip(copies, ordered):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)


def canonical_names(proto, layer_names) -> None:
    """Rename in place; ``layer_names`` are the Keras model's layer names."""
    g = proto.graph
    sink_constant_nodes(g)
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
