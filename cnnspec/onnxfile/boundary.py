"""The ONNX serialisation boundary: every exported file passes through :func:`finalize_and_save`,
and every file read for running passes through :func:`read_model`.

The contract: one input ``input`` float32 [batch, C, H, W] (dynamic batch), one output ``output``
(several outputs: one per listed layer, named as the layer, in order),
metadata ``cnnspec.spec``, ``cnnspec.backend`` and ``cnnspec.classes``; self-contained (no
external data), checked with ``onnx.checker`` full checks, deterministic bytes.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError
from ..files.atomic import atomic_write_bytes

OPSET = 17
BATCH_DIM = "batch"
MAX_MODEL_BYTES = 2 * 1024 ** 3
# metadata: the outputs, in the graph's order, each {"name": its layer, "shape": without the batch}
OUTPUTS_KEY = "cnnspec.outputs"


def rename_value(graph_proto, old: str, new: str) -> None:
    """Rename a value everywhere a graph mentions it: node inputs and outputs, graph inputs,
    outputs and value_info."""
    if old == new:
        return
    for node in graph_proto.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
    for coll in (graph_proto.input, graph_proto.output, graph_proto.value_info):
        for v in coll:
            if v.name == old:
                v.name = new


def finalize_and_save(model, graph, backend: str, path: str | Path) -> None:
    """For a framework exporter's model (the cross-checks in tests): the contract's names, batch
    dimension and metadata, checked and written atomically. cnnspec's own files come from
    :mod:`cnnspec.onnxfile.writer`, which needs none of this fixing up."""
    g = model.graph
    initializers = {t.name for t in g.initializer}
    real_inputs = [v for v in g.input if v.name not in initializers]
    names = list(graph.output_names) if graph.several_outputs else ["output"]
    if len(real_inputs) != 1 or len(g.output) != len(names):
        raise RuntimeError(f"exported graph has {len(real_inputs)} inputs and {len(g.output)} outputs; "
                           f"expected 1 and {len(names)}")
    rename_value(g, real_inputs[0].name, "input")
    for value, name in zip(list(g.output), names):
        rename_value(g, value.name, name)
    for value in (real_inputs[0], *g.output):
        dim0 = value.type.tensor_type.shape.dim[0]
        dim0.ClearField("dim_value")
        dim0.dim_param = BATCH_DIM
    c, h, w = graph.input_shape
    dims = real_inputs[0].type.tensor_type.shape.dim
    for d, size in zip(list(dims)[1:], (c, h, w)):
        d.dim_value = size
    apply_metadata(model, graph, backend)
    check_and_save(model, path)


def apply_metadata(model, graph, backend: str) -> None:
    """The contract's metadata, plus what ``run`` needs without re-parsing the spec: the expanded
    graph's output op and its fused activation."""
    import json

    from .outputmeta import output_metadata

    del model.metadata_props[:]
    meta = {"cnnspec.spec": graph.canonical_spec, "cnnspec.backend": backend, "cnnspec.name": graph.name,
            "cnnspec.input_shape": json.dumps(list(graph.input_shape)),
            "cnnspec.output_shape": json.dumps(list(graph.output_shape or ())), **output_metadata(graph),
            OUTPUTS_KEY: json.dumps([{"name": node.name, "shape": list(node.shape or ())}
                                     for node in graph.output_nodes], ensure_ascii=False)}
    if graph.classes:
        meta["cnnspec.classes"] = json.dumps(list(graph.classes), ensure_ascii=False)
    for key in sorted(meta):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, meta[key]
    model.producer_name = "cnnspec"
    from ..version import __version__
    model.producer_version = __version__
    model.doc_string = graph.description or ""
    model.graph.name = graph.name or "cnnspec"


def _refuse_external_data(model) -> None:
    import onnx

    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            raise RuntimeError("exported model has external data; cnnspec writes self-contained files")


def check_model(model) -> bytes:
    """``onnx.checker`` with full checks (strict shape inference included) on the deterministic
    bytes, which it returns: a large model is serialised once, not once more for the checker."""
    import onnx

    _refuse_external_data(model)
    blob = model.SerializeToString(deterministic=True)
    onnx.checker.check_model(blob, full_check=True)
    return blob


def check_and_save(model, path: str | Path) -> None:
    """The one serialisation boundary: checked, deterministic bytes, written atomically."""
    atomic_write_bytes(path, check_model(model))


def read_model(path: str | Path):
    """Parse an ONNX file for running, refusing what is not a model or reaches outside its folder."""
    import onnx
    from google.protobuf.message import DecodeError

    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise InputError(f"{path}: no such model file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if p.is_dir():
        raise InputError(f"{path}: is a directory, not an ONNX model")
    if not p.is_file():
        raise InputError(f"{path}: not a regular file (a device or pipe); give the model's .onnx file")
    if size > MAX_MODEL_BYTES:
        raise InputError(f"{path}: {size} bytes is larger than the {MAX_MODEL_BYTES} bytes cnnspec will load")
    try:
        model = onnx.load_model(str(p), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, TypeError, OSError) as exc:
        raise InputError(f"{path}: not an ONNX model ({type(exc).__name__})") from None
    if not model.graph.node and not model.graph.output:
        raise InputError(f"{path}: not an ONNX model (no graph)")
    _require_text(model, path)
    folder = p.resolve().parent
    from onnx.external_data_helper import _get_all_tensors
    for tensor in _get_all_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = {e.key: e.value for e in tensor.external_data}.get("location", "")
            target = (folder / location).resolve()
            if os.path.isabs(location) or folder not in target.parents:
                raise InputError(f"{path}: external data '{location}' lies outside the model's folder; refused")
    return model


def _require_text(model, path) -> None:
    """Every text field of the file is valid UTF-8. ONNX is proto2, so protobuf does not check, and
    its upb parser hands such a field out as ``bytes``: it would fail later, deep inside whatever
    reads it (onnxruntime's quantiser copying the producer's name, for one)."""
    where = _first_non_text(model)
    if where is not None:
        raise InputError(f"{path}: {where} holds text that is not valid UTF-8; not a model cnnspec will read")


def _first_non_text(message, prefix: str = "") -> str | None:
    """The path of the first string field that is not ``str`` (``graph.node[3].name``), or None."""
    for field, value in message.ListFields():
        repeated = getattr(field, "is_repeated", None)
        if repeated is None:
            repeated = field.label == field.LABEL_REPEATED
        items = list(value) if repeated else [value]
        if field.type == field.TYPE_STRING:
            bad = next((k for k, item in enumerate(items) if not isinstance(item, str)), None)
            if bad is not None:
                return _field_name(message, field, prefix, bad if repeated else None)
        elif field.type == field.TYPE_MESSAGE:
            for k, item in enumerate(items):
                found = _first_non_text(item, f"{prefix}{field.name}" + (f"[{k}]" if repeated else "") + ".")
                if found is not None:
                    return found
    return None


def _field_name(message, field, prefix: str, index: int | None) -> str:
    """A metadata entry by its key where it is readable; otherwise the field's path."""
    key = getattr(message, "key", None) if field.name == "value" else None
    if isinstance(key, str) and prefix.startswith("metadata_props"):
        return f"metadata '{key}'"
    return f"{prefix}{field.name}" + (f"[{index}]" if index is not None else "")


def metadata(model) -> dict:
    return {p.key: p.value for p in model.metadata_props}
