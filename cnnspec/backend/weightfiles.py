"""The one reader of weights files, whatever their format: the weights a backend is handed.

:data:`READERS` is the table, one entry per format, picked by the file's suffix: safetensors (ours),
PyTorch ``state_dict`` (``.pt``/``.pth``/``.bin``, read without PyTorch or unpickling), Keras
(``.weights.h5``/``.h5``/``.keras``, read with h5py) and an ONNX model's initializers. It sits in
this layer, not in ``weights/``, because the ONNX entry reads through :mod:`cnnspec.onnxfile`'s
boundary, which stands above ``weights/``; every caller (``build``, ``convert``, ``train --init``,
``Spec.to``) may import this layer.

:func:`open_weights` declares a file's tensors (names, shapes) without loading them;
:func:`read_weights` is the strict load: the file's names and shapes are compared with the spec's
(:func:`cnnspec.weights.match.compare`: one error listing every difference), then only the tensors
the spec takes are read, checked and converted to the layout asked for. :func:`read_matching` is
the partial load: what matches, and the same comparison to report the rest.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..errors import InputError
from ..onnxfile.initializers import open_onnx
from ..weights import keras_layout
from ..weights.kerash5 import open_keras
from ..weights.match import Comparison, compare, require_fit
from ..weights.safetensors_io import open_safetensors
from ..weights.stored import WeightsFile
from ..weights.torchzip import open_torch

if TYPE_CHECKING:
    from ..graph.ir import Graph


@dataclass(frozen=True)
class Reader:
    """A weights format: the suffixes that name it and its reader ``(path, graph) -> WeightsFile``."""

    format: str
    suffixes: tuple[str, ...]
    open: Callable[[Path, "Graph"], WeightsFile]


READERS: tuple[Reader, ...] = (
    Reader("safetensors", (".safetensors",), open_safetensors),
    Reader("PyTorch state_dict", (".pt", ".pth", ".bin"), open_torch),
    Reader("Keras weights", (".weights.h5", ".h5", ".keras"), open_keras),
    Reader("ONNX initializers", (".onnx",), open_onnx),
)
SUFFIXES = tuple(s for r in READERS for s in r.suffixes)


def reader_for(path: str | Path) -> Reader:
    """The reader its suffix names; a file without a known suffix is recognised by its first bytes
    (a zip holding ``data.pkl``, HDF5's signature, a safetensors header), never by running it."""
    name = Path(path).name.lower()
    for reader in READERS:
        if name.endswith(reader.suffixes):
            return reader
    suffix = sniff(path)
    if suffix is None:
        raise InputError(f"{path}: not a weights format cnnspec reads; it reads {', '.join(SUFFIXES)} "
                         f"(a pickle is never loaded)")
    return next(r for r in READERS if suffix in r.suffixes)


def sniff(path: str | Path) -> str | None:
    """The suffix a file's content says it should have, or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return None
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return ".h5"
    if head.startswith(b"PK\x03\x04"):
        import zipfile

        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            return None
        return ".keras" if "model.weights.h5" in names else ".pt" if any(
            n.endswith("data.pkl") for n in names) else None
    if len(head) >= 9 and head[8:9] == b"{":
        return ".safetensors"
    return None


def open_weights(path: str | Path, graph: "Graph") -> WeightsFile:
    """The file's tensors, declared (name, shape, dtype) and not yet loaded."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{path}: no such weights file")
    if not p.is_file():
        raise InputError(f"{path}: not a regular file (a folder, device or pipe); weights are read from files")
    reader = reader_for(path)
    try:
        return reader.open(p, graph)
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _opened(path, graph: "Graph", say) -> tuple[WeightsFile, str, dict]:
    """The file declared, its layout (its own word, else guessed from its names), the spec's
    tensors in that layout; what the reader understood is said."""
    found = open_weights(path, graph)
    for note in found.notes:
        (say or (lambda _m: None))(f"{path}: {note}")
    layout = found.layout or keras_layout.detect_layout(found.tensors, graph, found.meta)
    return found, layout, keras_layout.expected_for(layout, graph)


def load(path: str | Path, graph: "Graph", layout: str = "neutral",
         say: Callable[[str], None] | None = None) -> tuple[dict, str, WeightsFile]:
    """The strict load: (every tensor the spec needs, float32, in ``layout``; the file's own layout;
    the file as declared), or one error listing what does not fit. ``say`` hears what the reader
    understood (a checkpoint unwrapped, a ``module.`` prefix dropped, constants left out)."""
    found, source_layout, expected = _opened(path, graph, say)
    where = "" if source_layout == "neutral" else " (in Keras' layout)"
    require_fit(found.shapes, expected, str(path), f"does not fit spec '{graph.name}'{where}", graph)
    arrays = {key: found.tensors[key].load() for key in expected}
    return keras_layout.convert(arrays, graph, source_layout, layout, str(path)), source_layout, found


def read_weights(path: str | Path, graph: "Graph", say: Callable[[str], None] | None = None) -> dict:
    """Neutral-layout float32 arrays for every tensor the spec needs, from a file of any format."""
    return load(path, graph, "neutral", say)[0]


def read_matching(path: str | Path, graph: "Graph", say: Callable[[str], None] | None = None
                  ) -> tuple[dict, Comparison]:
    """A partial load (``train --init --allow-partial``): neutral float32 arrays of the tensors whose
    name and shape match the spec's, and the comparison (in the file's layout) that says what was
    left out, for the caller to report or refuse. Only the matched tensors are read."""
    from ..weights.neutral import check_tensors

    found, layout, expected = _opened(path, graph, say)
    comparison = compare(found.shapes, expected, graph)
    neutral_shapes = keras_layout.expected_for("neutral", graph)
    arrays = {}
    for key in comparison.matched:
        array = found.tensors[key].load()
        if layout == "keras":
            layer, part = _keras_part(graph, key)
            key, array = f"{layer}.{part.neutral}", part.to_neutral(array)
        arrays[key] = array
    checked = check_tensors(arrays, {k: neutral_shapes[k] for k in arrays}, str(path),
                            f"does not fit spec '{graph.name}'", graph)
    return checked, comparison


def _keras_part(graph: "Graph", key: str):
    for layer, parts in keras_layout.layer_parts(graph):
        for part in parts:
            if key == f"{layer}.{part.keras}":
                return layer, part
    raise KeyError(key)
