"""ONNX export with the TorchScript exporter, then ``cnnspec.onnxfile.boundary.finalize_and_save``: a cross-check
of the core writer (:mod:`cnnspec.onnxfile.writer`) in tests, no longer the product's path.

Each layer's output value in the file is named after the spec layer (``layer1.0.conv1``), so the
file reads like the spec in Netron and a test can match ONNX's shape inference to cnnspec's:
:func:`value_names` says which value holds which layer's output. During the trace every layer's
output passes through a marker op; afterwards the markers are removed and their inputs renamed.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

from cnnspec.onnxfile.boundary import BATCH_DIM, OPSET, finalize_and_save, rename_value
from cnnspec.onnxfile.writer import value_names

MARK_DOMAIN = "cnnspec"
MARK_OP = "Mark"
TRACE_BATCH = 1  # the tests run every export at batch 1 and 3, so nothing batch-sized is baked in


def _resolve_marks(model_proto, graph) -> None:
    """Drop the marker nodes, naming each marked value after its layer (see :func:`value_names`)."""
    import onnx

    g = model_proto.graph
    wanted = value_names(graph)
    graph_inputs = {v.name for v in g.input}
    named: set[str] = set()  # values already carrying a layer's name
    marks = [n for n in g.node if n.domain == MARK_DOMAIN and n.op_type == MARK_OP]
    for mark in marks:
        layer = onnx.helper.get_attribute_value(mark.attribute[0]).decode()
        source, marked = mark.input[0], mark.output[0]
        g.node.remove(mark)
        rename_value(g, marked, source)
        target = wanted[layer]
        if source in graph_inputs or source in named or target == "output":
            continue  # the graph input, an alias (dropout), or the output (finalize names it)
        rename_value(g, source, target)
        named.add(target)
    # the exporter's value_info carries dimension names from the removed markers; ONNX shape
    # inference recomputes it all from the input's `batch`
    del g.value_info[:]
    output = g.output[0].name
    if output in graph_inputs:  # a spec that computes nothing at inference: output must still be its own value
        g.node.append(onnx.helper.make_node("Identity", [output], ["output"], name="Identity_output"))
        g.output[0].name = "output"
    for i, opset in enumerate(model_proto.opset_import):
        if opset.domain == MARK_DOMAIN:
            del model_proto.opset_import[i]
            break


def export_module(module, graph, path: str | Path, backend: str = "torch") -> None:
    """Write ``module`` (a compiled SpecModule) as a self-contained ONNX file at ``path``."""
    import onnx
    import torch

    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dummy = torch.zeros((TRACE_BATCH,) + tuple(graph.input_shape), dtype=torch.float32, device=device)
    outputs = list(graph.output_names) if graph.several_outputs else ["output"]
    was_training = module.training
    module.eval()
    module.mark_outputs = True
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
            torch.onnx.export(
                module, (dummy,), buffer,
                dynamo=False,  # the TorchScript exporter: stable names, no onnxscript dependency
                external_data=False,
                opset_version=OPSET,
                input_names=["input"], output_names=outputs,
                dynamic_axes={"input": {0: BATCH_DIM}, **{name: {0: BATCH_DIM} for name in outputs}},
                do_constant_folding=True,
                custom_opsets={MARK_DOMAIN: 1},
            )
    finally:
        module.mark_outputs = False
        module.train(was_training)
    model_proto = onnx.load_model_from_string(buffer.getvalue())
    _resolve_marks(model_proto, graph)
    finalize_and_save(model_proto, graph, backend, path)
