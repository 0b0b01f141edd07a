"""Static quantisation with onnxruntime.quantization: fold batchnorms, calibrate (MinMax) on the
images given, write QDQ (or QOperator), and keep the model's final output in float.

onnxruntime's quantiser works on files, so it runs in a private temporary folder; what comes back
is a ModelProto, written by the caller through the one checked, atomic writer.
"""
from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path

from ..errors import InputError
from .fold import fold_batchnorms
from .recipes import Recipe

# what is quantised: every op that has an int8 kernel in ONNX Runtime's CPU provider. Softmax is left
# out: uint8 probabilities would round every score to 1/256.
QUANTIZED_OP_TYPES = ("Conv", "Gemm", "MatMul", "Add", "Mul", "Relu", "Clip", "LeakyRelu", "Sigmoid", "MaxPool",
                      "AveragePool", "GlobalAveragePool", "Concat", "Flatten", "Reshape", "Resize", "Pad",
                      "Transpose", "Squeeze", "Unsqueeze", "Split")
# ops a model's scores pass through unchanged in kind on their way to the output
OUTPUT_PASS_THROUGH = frozenset({"Softmax", "Identity", "Flatten", "Reshape"})


def quantize_static_model(model, reader, recipe: Recipe, where: str = "the model"):
    """``model`` (an fp32 ModelProto) quantised by ``recipe``, calibrated on what ``reader`` yields;
    returns (the quantised ModelProto, number of batchnorms folded). ``where`` names it in errors."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, quantize_static

    folded, count = fold_batchnorms(model)
    with tempfile.TemporaryDirectory(prefix="cnnspec-quantize-") as tmp:
        src, out = Path(tmp) / "folded.onnx", Path(tmp) / "int8.onnx"
        onnx.save_model(folded, str(src))
        args = recipe.ort_arguments()
        args["extra_options"] = {**args["extra_options"], "CalibMaxIntermediateOutputs": 16}
        with _quiet_onnxruntime(), warnings.catch_warnings():
            # numpy's overflow or invalid-value warnings in the quantiser's arithmetic mean scales
            # of inf or NaN, from weights or activations too large for it: a one-line refusal, not
            # warnings on the terminal and a broken file
            warnings.simplefilter("error", RuntimeWarning)
            try:
                quantize_static(str(src), str(out), reader, op_types_to_quantize=list(QUANTIZED_OP_TYPES),
                                calibrate_method=CalibrationMethod.MinMax, **args)
            except RuntimeWarning as problem:
                raise InputError(f"{where}: int8 scales cannot be computed ({problem}); its weights or "
                                 f"activations are too large or not finite") from None
        quantized = onnx.load_model(str(out))
    float_output(quantized)
    return quantized, count


def float_output(model) -> None:
    """Drop the QuantizeLinear -> DequantizeLinear pair right before the graph's output (through
    any softmax or reshape): the last layer then writes float scores (ONNX Runtime's QGemm takes a
    float output), so the logits are not rounded to 256 levels for nothing."""
    graph = model.graph
    for output in graph.output:
        # looked up afresh for each output: the node list is rebuilt (copied) after each removal
        producer = {o: n for n in graph.node for o in n.output}
        readers: dict[str, int] = {}
        for node in graph.node:
            for name in node.input:
                readers[name] = readers.get(name, 0) + 1
        value = output.name
        while value in producer and producer[value].op_type in OUTPUT_PASS_THROUGH:
            value = producer[value].input[0]
        dq = producer.get(value)
        q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        if q is None or q.op_type != "QuantizeLinear" or readers.get(q.output[0]) != 1:
            continue
        source = q.input[0]
        if dq.output[0] == output.name:  # the output's name must stay: the float value takes it
            _rename(graph, source, output.name)
        else:
            _rename(graph, dq.output[0], source, inputs_only=True)
        keep = [n for n in graph.node if n is not q and n is not dq]
        del graph.node[:]
        graph.node.extend(keep)


def _rename(graph, old: str, new: str, inputs_only: bool = False) -> None:
    for node in graph.node:
        node.input[:] = [new if i == old else i for i in node.input]
        if not inputs_only:
            node.output[:] = [new if o == old else o for o in node.output]
    if not inputs_only:  # the value's shape record follows it; the output's own entry is the graph's
        keep = [v for v in graph.value_info if v.name != new]
        for v in keep:
            if v.name == old:
                v.name = new
        keep = [v for v in keep if v.name != new or all(o.name != new for o in graph.output)]
        del graph.value_info[:]
        graph.value_info.extend(keep)


class _quiet_onnxruntime:
    """onnxruntime.quantization logs advice through the root logger ("consider pre-processing"):
    cnnspec folds the batchnorms itself, so the advice is noise on the user's terminal."""

    def __enter__(self):
        self.level = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)

    def __exit__(self, *exc):
        logging.getLogger().setLevel(self.level)
