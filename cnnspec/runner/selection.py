"""Which output a command that judges one output reads: ``--output NAME`` of ``train``, ``eval`` and
``quantize`` (default: the first), and the outputs an exported model has, by layer name.

``--output`` names a model output. Before the third edition ``train -o/--output`` named the run's
folder and ``quantize -o/--output`` the int8 file; those are ``-o``/``--out`` now, and a value of
``--output`` that names no output but looks like a path is a usage error that says so, rather than
a silent change of meaning.
"""
from __future__ import annotations

import re

from ..errors import UsageError
from ..onnxfile.boundary import OUTPUTS_KEY
from ..spec.suggestions import suggest
from .metadata import MAX_NAME_CHARS, read_json

_PATH_LIKE = re.compile(r"[/\\~]|\.(onnx|safetensors|ya?ml|json|npy|npz)$|^\.{1,2}$", re.IGNORECASE)


def looks_like_path(value: str) -> bool:
    """A folder or file someone meant for ``-o``: a separator, ``~``, ``.``/``..``, or a file suffix."""
    return bool(_PATH_LIKE.search(value))


def choose_output(names, wanted: str | None, where: str, path_option: str | None = None) -> str:
    """``wanted`` where it is one of ``names`` (the outputs, in order); the first where it is None.
    ``where`` says whose outputs they are; ``path_option`` is the option that takes a path instead
    (``"-o/--out DIR"``)."""
    names = list(names)
    if wanted is None:
        return names[0]
    if wanted in names:
        return wanted
    listed = ", ".join(names)
    if path_option and looks_like_path(wanted):
        raise UsageError(f"--output {wanted}: --output names one of the outputs of {where} ({listed}), and "
                         f"this looks like a path; to say where to write, use {path_option}")
    hint = suggest(wanted, names) or (f"; to say where to write, use {path_option}" if path_option else "")
    raise UsageError(f"--output {wanted}: {where} has no output '{wanted}' (its outputs: {listed}){hint}")


def model_outputs(meta: dict, session=None, onnx_names=None) -> list[tuple[str, str]]:
    """(layer name, ONNX output name) per output of a model (a session's, or ``onnx_names``), in
    order. The layer names come from the ``cnnspec.outputs`` metadata where it lists one readable
    name per output; otherwise (a model from elsewhere, hostile metadata) the ONNX names stand for them."""
    if onnx_names is None:
        onnx_names = [o.name for o in session.get_outputs()]
    onnx_names = list(onnx_names)
    listed = read_json(meta, OUTPUTS_KEY)
    if (isinstance(listed, list) and len(listed) == len(onnx_names)
            and all(isinstance(e, dict) and isinstance(e.get("name"), str) and 0 < len(e["name"]) <= MAX_NAME_CHARS
                    and e["name"].isprintable() for e in listed)
            and len({e["name"] for e in listed}) == len(listed)):
        return [(e["name"], o) for e, o in zip(listed, onnx_names)]
    return list(zip(onnx_names, onnx_names))


def choose_model_output(model_path: str, meta: dict, session, wanted: str | None,
                        path_option: str | None = None, onnx_names=None) -> tuple[str, str]:
    """(layer name, ONNX output name) of the output ``--output`` picks (the first by default)."""
    pairs = model_outputs(meta, session, onnx_names)
    by_onnx = {onnx_name: layer for layer, onnx_name in pairs}
    layer = by_onnx.get(wanted, wanted) if wanted is not None else None
    layer = choose_output([p[0] for p in pairs], layer, model_path, path_option)
    return layer, dict(pairs)[layer]
