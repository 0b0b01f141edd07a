"""An ONNX model's initializers as weights, matched by name (``layer1.0.conv1.weight``: what our
writer, ``torch.onnx.export`` and ``cnnspec import`` name them).

The file is read through :func:`~cnnspec.onnxfile.boundary.read_model` (size limit, no external
data loaded, text checked); an initializer kept in external data is refused. Each initializer is
declared by its dims and converted only when the spec takes it, after its byte count is checked
against them. Initializers that are graph constants, not weights (integer shapes and axes, names
that no layer could have such as ``relu6/min`` or ``onnx::Mul_3``), are left out, and said.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError
from ..weights.stored import MAX_TENSOR_BYTES, Stored, WeightsFile, declared_shape, numel
from .boundary import read_model

WEIGHT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*\.[A-Za-z_][A-Za-z0-9_]*$")  # <layer name>.<part>


def _stored(tensor, path, numpy_helper, helper) -> Stored:
    shape = declared_shape(tensor.dims, path, tensor.name)
    try:
        dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type)
    except (KeyError, ValueError, TypeError):
        raise InputError(f"{path}: initializer '{tensor.name}' has ONNX data type {tensor.data_type}, which is "
                         f"not a number type") from None
    if numel(shape) * dtype.itemsize > MAX_TENSOR_BYTES:
        raise InputError(f"{path}: initializer '{tensor.name}' declares shape {list(shape)}, more than the "
                         f"{MAX_TENSOR_BYTES} bytes cnnspec reads for one tensor")

    def load():
        held = len(tensor.raw_data) if tensor.HasField("raw_data") else None
        if held is not None and held != numel(shape) * dtype.itemsize:
            raise InputError(f"{path}: initializer '{tensor.name}' declares shape {list(shape)} but holds "
                             f"{held} bytes")
        try:
            return numpy_helper.to_array(tensor).reshape(shape)
        except (ValueError, TypeError) as exc:
            raise InputError(f"{path}: initializer '{tensor.name}' cannot be read ({str(exc)[:80]})") from None
    return Stored(shape, str(dtype), load)


def open_onnx(path: Path, _graph=None) -> WeightsFile:
    import onnx
    from onnx import helper, numpy_helper

    model = read_model(path)
    tensors, constants = {}, 0
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise InputError(f"{path}: initializer '{tensor.name}' is kept in external data, which cnnspec does "
                             f"not read for weights; save the model with its data inside")
        if tensor.name in tensors:
            raise InputError(f"{path}: two initializers are named '{tensor.name}'")
        stored = _stored(tensor, path, numpy_helper, helper)
        if not WEIGHT_NAME.match(tensor.name) or stored.dtype not in ("float16", "float32", "float64"):
            constants += 1
            continue
        tensors[tensor.name] = stored
    notes = [f"left out {constants} initializer{'s' if constants != 1 else ''} that are graph constants, "
             f"not weights (integer shapes or names no layer has)"] if constants else []
    return WeightsFile("ONNX initializers", tensors, "neutral", notes=notes)
