"""Keras weights files read with ``h5py`` alone: no model is deserialised and nothing in the file runs.

Three containers, one result (Keras-layout tensors ``<layer>.<kernel|bias|gamma|...>``, matched to
the spec by Keras layer name; our Keras build names its layers as the spec does):
- ``.weights.h5`` (Keras 3 ``save_weights``): ``layers/<group>/vars/<i>``; the layer's own name is
  the ``vars`` group's ``name`` attribute (the group is named after the class).
- ``.h5`` (Keras 2 ``save_weights``/``save``, Keras 3 legacy ``save``): the ``layer_names``
  attribute, at the root or under ``model_weights``; each layer's ``weight_names`` in order.
- ``.keras`` (Keras 3 ``save``): a zip holding ``model.weights.h5``; ``config.json`` is not read.
A layer's tensors take the names of the spec layer's parts in order, as Keras' own ``load_weights``
does; where the counts differ, the op's full list of parts names them (so a ``bias`` the spec turned
off shows as that, not as ``var1``). Links (soft or to other files), external and virtual datasets
are refused; a dataset is read only when the spec takes it at its declared shape.
"""
from __future__ import annotations

import io
import re
from pathlib import Path

from ..errors import InputError
from ..graph.ir import Graph
from .archive import ZIP_MAGIC, open_zip, read_entry
from .keras_layout import KERAS_PARTS, layer_parts
from .stored import MAX_TENSOR_BYTES, Stored, WeightsFile, declared_shape

KERAS_ZIP_WEIGHTS = "model.weights.h5"
# Keras 3 names a layer's group after its class (``dense_1``): the variables of a layer the spec
# lacks are named by it, so a renamed layer's closest name can be found (``fc2.kernel``, not ``fc2.var0``)
CLASS_PARTS = {"dense": ("kernel", "bias"), "conv2d": ("kernel", "bias"), "conv2d_transpose": ("kernel", "bias"),
               "depthwise_conv2d": ("kernel", "bias"), "grouped_conv2d": ("kernel", "bias"),
               "batch_normalization": ("gamma", "beta", "moving_mean", "moving_variance"),
               "layer_normalization": ("gamma", "beta"), "scale": ("gamma",)}
MAX_H5_BYTES = 4 * 1024 ** 3
MAX_DEPTH = 8  # nested models inside models


def _h5py():
    try:
        import h5py
    except ImportError:
        raise InputError("reading Keras weights needs h5py (pip install h5py, or cnnspec[keras])") from None
    return h5py


def _child(h5py, group, name: str, path):
    """A member by name, refusing links that lead elsewhere (soft links, other files)."""
    link = group.get(name, getlink=True)
    if link is None:
        return None
    if not isinstance(link, h5py.HardLink):
        raise InputError(f"{path}: '{group.name}/{name}' is a link ({type(link).__name__}); refused")
    return group[name]


def _stored(h5py, dataset, path, key: str) -> Stored:
    """A dataset declared by its header; ``load`` reads it once the spec has taken it."""
    if not isinstance(dataset, h5py.Dataset):
        raise InputError(f"{path}: '{dataset.name}' is a group where a weight tensor should be")
    if dataset.is_virtual or dataset.external:
        raise InputError(f"{path}: '{dataset.name}' keeps its data outside the file; refused")
    shape = declared_shape(dataset.shape or (), path, key)
    dtype = dataset.dtype
    if dtype.kind not in "fiub" or dtype.itemsize > 8:
        raise InputError(f"{path}: '{dataset.name}' holds {dtype}, not numbers")
    if dataset.size * dtype.itemsize > MAX_TENSOR_BYTES:
        raise InputError(f"{path}: '{dataset.name}' declares shape {list(shape)}, more than the "
                         f"{MAX_TENSOR_BYTES} bytes cnnspec reads for one tensor")

    def load():
        try:
            return dataset[()]
        except (OSError, ValueError, TypeError) as exc:
            raise InputError(f"{path}: '{dataset.name}' cannot be read ({str(exc)[:80]})") from None
    return Stored(shape, str(dtype), load)


def _keras3_layers(h5py, group, path, out: dict, depth: int = 0) -> None:
    """``layers/<group>/vars/<i>`` (and models nested in models), by the layer's own name."""
    if depth > MAX_DEPTH:
        raise InputError(f"{path}: layers nested more than {MAX_DEPTH} deep; refused")
    layers = _child(h5py, group, "layers", path)
    if layers is None:
        return
    for group_name in layers:
        layer = _child(h5py, layers, group_name, path)
        if not isinstance(layer, h5py.Group):
            continue
        variables = _child(h5py, layer, "vars", path)
        name = group_name
        if isinstance(variables, h5py.Group):
            own = variables.attrs.get("name")
            name = own.decode("utf-8", "replace") if isinstance(own, bytes) else str(own) if own is not None else name
            indices = sorted((int(k) for k in variables if k.isdigit()))
            hint = CLASS_PARTS.get(re.sub(r"_\d+$", "", group_name), ())
            if indices:
                if name in out:
                    raise InputError(f"{path}: two layers with weights are named '{name}'; refused")
                out[name] = [(hint[k] if len(hint) == len(indices) else None,
                              _stored(h5py, _child(h5py, variables, str(i), path), path, f"{name}.{i}"))
                             for k, i in enumerate(indices)]
        _keras3_layers(h5py, layer, path, out, depth + 1)


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _legacy_layers(h5py, root, path, out: dict) -> None:
    """Keras 2's layout: ``layer_names``, then each layer's ``weight_names`` (``conv1/kernel:0``)."""
    for layer_name in map(_text, root.attrs["layer_names"]):
        layer = _child(h5py, root, layer_name, path)
        if layer is None:
            raise InputError(f"{path}: lists layer '{layer_name}' but holds no group for it")
        names = [_text(n) for n in layer.attrs.get("weight_names", [])]
        if names:
            out[layer_name] = [(n.split("/")[-1].split(":")[0], _resolve(h5py, layer, n, path)) for n in names]


def _resolve(h5py, group, name: str, path) -> Stored:
    node = group
    for part in name.split("/"):
        if part in ("", ".", ".."):
            raise InputError(f"{path}: weight name '{name}' leaves its layer; refused")
        node = _child(h5py, node, part, path) if isinstance(node, h5py.Group) else None
        if node is None:
            raise InputError(f"{path}: lists weight '{name}' but does not hold it")
    return _stored(h5py, node, path, name)


def name_tensors(layers: dict, graph: Graph) -> dict[str, Stored]:
    """Each file layer's tensors under the Keras part names of the spec layer of that name."""
    parts = {name: [p.keras for p in ps] for name, ps in layer_parts(graph)}
    ops = {node.name: node.op for node in graph.nodes}
    out: dict[str, Stored] = {}
    for layer, variables in layers.items():
        own = parts.get(layer, [])
        full = [p.keras for p in KERAS_PARTS.get(ops.get(layer), ())]
        names = [n for n, _ in variables]
        for expected in (own, full):
            if expected and len(variables) == len(expected):  # by name where the file names them all alike
                chosen = names if None not in names and set(names) == set(expected) else expected
                break
        else:
            chosen = [n if n is not None else f"var{i}" for i, n in enumerate(names)]
        out.update({f"{layer}.{n}": stored for n, (_, stored) in zip(chosen, variables)})
    return out


def open_keras(path: Path, graph: Graph) -> WeightsFile:
    h5py = _h5py()
    with open(path, "rb") as fh:
        head = fh.read(8)
    name = path.name.lower()
    if name.endswith(".keras") or (head[:4] == ZIP_MAGIC and not name.endswith(".h5")):  # unnamed: by content
        if head[:4] != ZIP_MAGIC:
            raise InputError(f"{path}: not a .keras file (a zip archive holding {KERAS_ZIP_WEIGHTS})")
        archive, entries = open_zip(path)
        if KERAS_ZIP_WEIGHTS not in entries:
            raise InputError(f"{path}: a zip archive without {KERAS_ZIP_WEIGHTS}; not a Keras 3 .keras file")
        source = io.BytesIO(read_entry(archive, entries[KERAS_ZIP_WEIGHTS], path, MAX_H5_BYTES))
        fmt = "Keras .keras file"
    else:
        if head != b"\x89HDF\r\n\x1a\n":
            raise InputError(f"{path}: not an HDF5 file; Keras weights (.weights.h5, .h5) are HDF5")
        source, fmt = str(path), "Keras HDF5 weights"
    try:
        root = h5py.File(source, "r")
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: a damaged HDF5 file ({str(exc).splitlines()[0][:100]})") from None
    layers: dict = {}
    try:
        weights_root = _child(h5py, root, "model_weights", path) or root
        if "layer_names" in weights_root.attrs:
            _legacy_layers(h5py, weights_root, path, layers)
        elif "layers" in root:
            _keras3_layers(h5py, root, path, layers)
        else:
            raise InputError(f"{path}: an HDF5 file without Keras weights (no 'layers' group, no 'layer_names')")
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise InputError(f"{path}: a damaged HDF5 file ({str(exc).splitlines()[0][:100] or type(exc).__name__})") from None
    return WeightsFile(fmt, name_tensors(layers, graph), "keras")
