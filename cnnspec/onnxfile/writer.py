"""``model.onnx`` straight from the checked graph and neutral weights, with the ``onnx`` package alone.

No torch, no TensorFlow: every backend's ``build`` and ``train`` write the same file through here,
so the exported numbers are the contract's and not a converter's. Node and value names are the
spec's layer names (helper values are ``<layer>/<what>``), every value carries its shape in
``value_info`` (Netron shows them), initializers are named by their neutral weight keys, and the
same graph and weights give the same bytes. Cost is linear in the number of layers.
"""
from __future__ import annotations

from pathlib import Path

from ..graph.ir import INPUT, Graph
from .boundary import BATCH_DIM, OPSET, apply_metadata, check_and_save, check_model
from .lowering import ALIAS, Emitter, lowering

IR_VERSION = 8  # what ONNX Runtime 1.x reads at opset 17


def value_names(graph: Graph) -> dict[str, str]:
    """Spec layer name -> the ONNX value holding its output.

    A layer's value is named after it; a layer that computes nothing at inference (dropout)
    shares its input's value. With one output, the output layer's value is ``output``; with
    several, each output layer has a value of its own named after it (an output that computes
    nothing is an ``Identity`` of its input, see :func:`build_proto`). A name already taken by
    a weight or by ``input``/``output`` gets ``_value`` appended.
    """
    from ..weights.neutral import expected_weights

    several = graph.several_outputs
    outputs = set(graph.output_names)
    taken = set(expected_weights(graph)) | {"input"} | (set() if several else {"output"})
    names: dict[str, str] = {INPUT: "input"}
    for node in graph.nodes:
        if lowering(node.op, node.name) is ALIAS and not (several and node.name in outputs):
            names[node.name] = names[node.inputs[0]]
            continue
        name = node.name
        while name in taken:
            name += "_value"
        taken.add(name)
        names[node.name] = name
    del names[INPUT]
    if several:
        return names
    final = names.get(graph.output.name, "input")
    return {layer: ("output" if value == final and final != "input" else value) for layer, value in names.items()}


def output_values(graph: Graph, values: dict[str, str]) -> list[str]:
    """The graph outputs' value names, in the spec's order."""
    if not graph.several_outputs:
        return ["output"]
    return [values[name] for name in graph.output_names]


def _tensor_info(name: str, shape, batched: bool = True):
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH_DIM, *shape] if batched else list(shape))


def build_proto(graph: Graph, weights: dict, backend: str = "onnx"):
    """The complete ModelProto (checked by the caller): contract interface, shapes, metadata."""
    from onnx import helper, numpy_helper

    emitter = Emitter(weights=weights)
    emitter.shapes["input"] = tuple(graph.input_shape)
    values = value_names(graph)
    values_of = {INPUT: "input", **values}
    for node in graph.nodes:
        lower = lowering(node.op, node.name)
        if lower is ALIAS:
            if values_of[node.inputs[0]] != values[node.name]:  # an output of its own (several outputs)
                emitter.node("Identity", [values_of[node.inputs[0]]], values[node.name], node.name, node.shape)
            continue
        lower(emitter, node, [values_of[i] for i in node.inputs], values[node.name])
    if values[graph.output.name] == "input":  # a spec that computes nothing at inference
        emitter.node("Identity", ["input"], "output", "output", graph.output_shape)
    outputs = output_values(graph, values)
    inner = [_tensor_info(name, shape, name not in emitter.unbatched)
             for name, shape in emitter.shapes.items() if name != "input" and name not in outputs]
    onnx_graph = helper.make_graph(
        emitter.nodes, graph.name or "cnnspec",
        [_tensor_info("input", graph.input_shape)],
        [_tensor_info(name, node.shape) for name, node in zip(outputs, graph.output_nodes)],
        initializer=[numpy_helper.from_array(array, name) for name, array in emitter.initializers],
        value_info=inner)
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    apply_metadata(model, graph, backend)
    return model


def model_bytes(graph: Graph, weights: dict, backend: str = "onnx") -> bytes:
    """The serialised, checked model (for an in-memory ONNX Runtime session)."""
    return check_model(build_proto(graph, weights, backend))


def write_onnx(graph: Graph, weights: dict, path: str | Path, backend: str = "onnx") -> None:
    """Check ``weights`` against the graph, then write ``path`` atomically (all old or all new)."""
    from ..weights.neutral import check_tensors, expected_weights

    checked = check_tensors(weights, expected_weights(graph), "weights", f"do not fit spec '{graph.name}'")
    check_and_save(build_proto(graph, checked, backend), path)
