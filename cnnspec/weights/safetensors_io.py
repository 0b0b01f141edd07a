"""Weights files: safe reading and writing of safetensors, in either layout.

Safetensors holds raw tensors and a JSON header, so nothing in a user's file is ever executed; it
is what cnnspec writes. Other formats (PyTorch, Keras, ONNX) come in through the reader table of
:mod:`cnnspec.backend.weightfiles`, which uses :func:`open_safetensors` for this one. Every file
is checked against :func:`~cnnspec.weights.neutral.expected_weights` before anything uses it.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..files.atomic import atomic_write_bytes
from ..graph.ir import Graph
from .keras_layout import FORMATS, expected_for
from .neutral import check_tensors, expected_weights
from .stored import Stored, WeightsFile


def read_safetensors(path: str | Path) -> tuple[dict, dict]:
    """A safetensors file's arrays and metadata, memory-mapped (a 550 MB VGG file is not read twice).
    Never a pickle or a framework file: those are refused by name, before anything is opened."""
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    if p.suffix in (".pt", ".pth", ".ckpt", ".pkl", ".bin", ".h5", ".keras", ".onnx"):
        raise InputError(f"{path}: not read as safetensors (a pickle or framework file is never opened here); "
                         f"--weights reads it through its own format's reader")
    if not p.exists():
        raise InputError(f"{path}: no such weights file")
    if not p.is_file():
        raise InputError(f"{path}: not a regular file (a folder, device or pipe); weights are read from "
                         f"safetensors files")
    try:
        with safe_open(str(p), framework="numpy") as fh:
            meta = dict(fh.metadata() or {})
            tensors = {key: fh.get_tensor(key) for key in fh.keys()}
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except (SafetensorError, ValueError, OverflowError, KeyError, TypeError, OSError) as exc:
        raise InputError(f"{path}: not a valid safetensors file ({str(exc).splitlines()[0][:120]})") from None
    return tensors, meta


def open_safetensors(path: Path, _graph: Graph | None = None) -> WeightsFile:
    """A safetensors file for the reader table: either layout, named by its ``format`` tag where it
    has one (else guessed from its names)."""
    tensors, meta = read_safetensors(path)
    tagged = {v: k for k, v in FORMATS.items()}.get(meta.get("format"))
    stored = {k: Stored(tuple(a.shape), str(a.dtype), lambda a=a: a) for k, a in tensors.items()}
    return WeightsFile("safetensors", stored, tagged, meta)


def read_weights(path: str | Path, graph: Graph) -> dict:
    """Read and check a safetensors file against the graph: missing, unexpected and misshapen keys
    are named, as is a file that is not safetensors at all. Returns float32 numpy arrays."""
    tensors, _meta = read_safetensors(path)
    return check_tensors(tensors, expected_weights(graph), str(path), f"does not fit spec '{graph.name}'")


def write_weights(path: str | Path, tensors: dict, graph: Graph | None = None, layout: str = "neutral") -> None:
    """The one safetensors writer (``build``, ``train``, ``convert``): float32, in the layout's graph
    order (sorted without a graph), tagged with the layout's format so readers need not guess, and
    the same bytes for the same numbers."""
    import numpy as np
    from safetensors.numpy import save

    order = list(expected_for(layout, graph)) if graph is not None else sorted(tensors)
    data = {k: np.ascontiguousarray(tensors[k], dtype=np.float32) for k in order if k in tensors}
    meta = {"format": FORMATS[layout], **({"spec": graph.name} if graph is not None else {})}
    atomic_write_bytes(path, canonical_safetensors(save(data, metadata=meta)))


def canonical_safetensors(blob: bytes) -> bytes:
    """safetensors writes ``__metadata__`` from a hash map, in a random order on every call: sort it."""
    import json
    import struct

    (length,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + length])
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the format aligns the data to 8 bytes
    return struct.pack("<Q", len(text)) + text + blob[8 + length:]
