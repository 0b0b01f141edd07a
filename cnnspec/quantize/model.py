"""The model to quantise, read through :func:`cnnspec.onnxfile.boundary.read_model`, and what cnnspec needs
to know about it: input size, number of outputs, labels, whether it ends in softmax.

Only models cnnspec wrote are quantised. Calibration feeds the model images preprocessed the way
``train`` and ``run`` preprocess them (grey or RGB, resized, scaled to [0, 1], nothing else); a model
from elsewhere may expect ImageNet normalisation or another layout, and calibrating it on the wrong
distribution would give wrong int8 ranges and meaningless accuracy figures. Such a file is refused
with one line, as is a model that is already quantised.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from ..errors import InputError

SPEC_KEY, INPUT_SHAPE_KEY = "cnnspec.spec", "cnnspec.input_shape"
QUANTIZATION_KEY = "cnnspec.quantization"
QUANTIZED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
                           "MatMulInteger", "DynamicQuantizeLinear"})


@dataclass(frozen=True)
class ModelFace:
    """What the quantiser and its measurements need from the fp32 model."""

    path: str
    proto: object  # onnx.ModelProto
    chw: tuple[int, int, int]
    outputs: int | None  # class scores per image; None where the output is not a vector
    classes: tuple[str, ...] | None
    ends_in_softmax: bool | None
    metadata: dict
    output: str = "output"      # the ONNX output judged (``--output``; default: the first)
    output_layer: str = ""      # its layer name
    all_outputs: tuple[str, ...] = ()  # every output's layer name, in order

    @property
    def several_outputs(self) -> bool:
        return len(self.all_outputs) > 1


def read_face(path: str, output: str | None = None) -> ModelFace:
    """Read ``path`` and check it is an fp32 cnnspec model with one [N, C, H, W] float input.
    ``output``: the output the figures judge, by layer name (default: the first); calibration
    covers the whole graph whichever it is."""
    from ..onnxfile.boundary import metadata, read_model
    from ..runner.metadata import classes, output_is_softmax
    from ..runner.selection import choose_model_output, model_outputs

    model = read_model(path)
    meta = metadata(model)
    if SPEC_KEY not in meta:
        raise InputError(f"{path}: not a cnnspec model (no {SPEC_KEY} in its metadata); cnnspec quantize "
                         f"calibrates with cnnspec's preprocessing, which another tool's model may not expect "
                         f"(quantise it with onnxruntime.quantization directly)")
    if QUANTIZATION_KEY in meta or any(n.op_type in QUANTIZED_OPS for n in model.graph.node):
        raise InputError(f"{path}: already quantised; quantise the fp32 model it came from")
    chw = _input_chw(path, model, meta)
    onnx_names = [v.name for v in model.graph.output]
    if not onnx_names:
        raise InputError(f"{path}: the model has no outputs")
    layer, judged = choose_model_output(path, meta, None, output, path_option="-o/--out OUT.onnx", onnx_names=onnx_names)
    first = judged == onnx_names[0]  # the metadata's labels and softmax describe the first output
    out_dims = _dims(next(v for v in model.graph.output if v.name == judged))
    outputs = out_dims[1] if len(out_dims) == 2 and isinstance(out_dims[1], int) and out_dims[1] > 0 else None
    labels = classes(meta, outputs) if outputs and first else None
    return ModelFace(str(path), model, chw, outputs, tuple(labels) if labels else None,
                     output_is_softmax(meta) if first else None, meta, judged, layer,
                     tuple(name for name, _ in model_outputs(meta, onnx_names=onnx_names)))


def _dims(value) -> list:
    return [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]


def _input_chw(path: str, model, meta: dict) -> tuple[int, int, int]:
    import onnx

    initializers = {t.name for t in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializers]
    if len(inputs) != 1 or inputs[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise InputError(f"{path}: cnnspec quantize takes a model with one float32 input")
    dims = _dims(inputs[0])
    if len(dims) != 4:
        raise InputError(f"{path}: the model's input has {len(dims)} dimensions; expected [batch, C, H, W]")
    chw = dims[1:]
    if not all(isinstance(d, int) and d > 0 for d in chw):
        try:
            chw = [int(v) for v in json.loads(meta.get(INPUT_SHAPE_KEY, ""))]
        except (TypeError, ValueError):
            chw = []
    if len(chw) != 3 or not all(0 < d <= 1_000_000 for d in chw):
        raise InputError(f"{path}: the model's input size is not fixed (channels, height, width)")
    return tuple(chw)
