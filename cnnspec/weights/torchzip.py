"""PyTorch ``state_dict`` files (``torch.save``: ``.pt``, ``.pth``, ``.bin``) read without PyTorch
and without running anything from the file.

``torch.save`` writes a zip archive: ``<name>/data.pkl`` (a pickle of the dict) and one raw entry per
storage (``<name>/data/<key>``). The pickle is never unpickled: :mod:`.pickleops` walks its opcodes
and builds plain values, refusing by name any global but PyTorch's tensor functions. The dict found
is unwrapped from a checkpoint and a ``DataParallel`` prefix where needed, and said. Each tensor
is first a declaration (storage, offset, shape, strides) checked against its storage's real size;
its bytes are read only when the spec takes it.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .archive import ZIP_MAGIC, open_zip, read_entry
from .pickleops import ITEMSIZE, Machine, Refused, TensorRef, short
from .stored import MAX_TENSOR_BYTES, Stored, WeightsFile, numel

PICKLE_MAGIC = b"\x80"
MAX_PICKLE_BYTES = 64 * 1024 ** 2
WRAPPERS = ("state_dict", "model_state_dict", "model")  # checkpoint dicts holding the state_dict
DATAPARALLEL_PREFIX = "module."


def _pickle_entry(entries: dict, path) -> str:
    """The archive's folder (``<name>/``) holding ``data.pkl``."""
    pickles = [n for n in entries if n.endswith("/data.pkl") and n.count("/") == 1] or \
              [n for n in entries if n == "data.pkl"]
    if len(pickles) != 1:
        raise InputError(f"{path}: a zip archive but not a PyTorch state_dict file (no single data.pkl inside)")
    return pickles[0][: -len("data.pkl")]


def unwrap(obj, path, notes: list) -> dict:
    """The state_dict inside what was saved: the dict itself, or a checkpoint's ``state_dict`` /
    ``model`` entry; a ``module.`` prefix on every key (``nn.DataParallel``) is dropped. Each is said."""
    if not isinstance(obj, dict):
        raise InputError(f"{path}: holds a {type(obj).__name__}, not a state_dict (a dict of tensors)")
    if not any(isinstance(v, TensorRef) for v in obj.values()):
        inner = next((k for k in WRAPPERS if isinstance(obj.get(k), dict)
                      and any(isinstance(v, TensorRef) for v in obj[k].values())), None)
        if inner is None:
            keys = ", ".join(short(k) for k in list(obj)[:6])
            raise InputError(f"{path}: holds a dict without tensors (keys: {keys}); expected a state_dict or a "
                             f"checkpoint with one of {', '.join(WRAPPERS)}")
        others = [short(k) for k in list(obj)[:7] if k != inner][:6]
        notes.append(f"read the '{inner}' entry of a checkpoint dict (also holding {', '.join(others) or 'nothing else'}"
                     f"{', ...' if len(obj) > 7 else ''})")
        obj = obj[inner]
    tensors = {k: v for k, v in obj.items() if isinstance(v, TensorRef) and isinstance(k, str)}
    skipped = len(obj) - len(tensors)
    if skipped:
        notes.append(f"skipped {skipped} {'entry' if skipped == 1 else 'entries'} that are not tensors")
    if tensors and all(k.startswith(DATAPARALLEL_PREFIX) for k in tensors):
        tensors = {k[len(DATAPARALLEL_PREFIX):]: v for k, v in tensors.items()}
        notes.append(f"dropped the '{DATAPARALLEL_PREFIX}' prefix of every key (a DataParallel model's state_dict)")
    return tensors


def _materialise(archive, entries, prefix, ref: TensorRef, path, key, byteorder: str):
    """A tensor's bytes, checked against its declaration before anything is allocated."""
    import numpy as np

    info = entries.get(f"{prefix}data/{ref.storage.key}")
    if info is None:
        raise InputError(f"{path}: tensor '{key}' lives in storage '{ref.storage.key}', which the archive lacks")
    raw = read_entry(archive, info, path, MAX_TENSOR_BYTES, stored_only=True)
    item = ITEMSIZE[ref.dtype]
    count = len(raw) // item
    if len(raw) != ref.storage.numel * ITEMSIZE[ref.storage.dtype]:
        raise InputError(f"{path}: tensor '{key}': its storage declares {ref.storage.numel} elements but holds "
                         f"{len(raw)} bytes")
    numpy_dtype = "<u2" if ref.dtype == "bfloat16" else ref.dtype
    if byteorder == "big":
        numpy_dtype = numpy_dtype.replace("<", ">")
    flat = np.frombuffer(raw, dtype=numpy_dtype, count=count)
    array = np.lib.stride_tricks.as_strided(flat[ref.offset:], shape=ref.shape,
                                            strides=tuple(s * item for s in ref.stride), writeable=False)
    array = np.array(array)  # a copy: the view's memory is the entry's bytes
    if ref.dtype == "bfloat16":
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _check_extent(ref: TensorRef, path, key) -> None:
    """Every element the shape and strides reach lies inside the storage (no reading past its end)."""
    count = numel(ref.shape)
    item = ITEMSIZE[ref.dtype]
    storage_items = ref.storage.numel * ITEMSIZE[ref.storage.dtype] // item
    if count * item > MAX_TENSOR_BYTES:
        raise InputError(f"{path}: tensor '{key}' declares shape {list(ref.shape)}, more than the "
                         f"{MAX_TENSOR_BYTES} bytes cnnspec reads for one tensor")
    if count == 0:
        return
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride))
    if last >= storage_items or count > storage_items:
        raise InputError(f"{path}: tensor '{key}' (shape {list(ref.shape)}, offset {ref.offset}) reaches past "
                         f"its storage of {storage_items} elements")


def open_torch(path: Path, _graph=None) -> WeightsFile:
    """The state_dict in a ``torch.save`` file, declared; tensors load on demand."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if head != ZIP_MAGIC:
        legacy = head[:1] == PICKLE_MAGIC
        raise InputError(f"{path}: not a PyTorch zip file" + (
            " (a bare pickle: PyTorch's legacy format before 1.6, or pickle.dump); re-save it with torch.save in "
            "PyTorch 1.6 or later, or convert it to .safetensors" if legacy else "; .pt/.pth/.bin files are read "
            "as torch.save archives"))
    archive, entries = open_zip(path)
    prefix = _pickle_entry(entries, path)
    data = read_entry(archive, entries[prefix + "data.pkl"], path, MAX_PICKLE_BYTES, stored_only=True)
    order = entries.get(prefix + "byteorder")
    byteorder = read_entry(archive, order, path, 16).decode("ascii", "replace").strip() if order else "little"
    if byteorder not in ("little", "big"):
        raise InputError(f"{path}: byteorder '{byteorder[:20]}' is neither little nor big")
    try:
        obj = Machine().run(data)
    except Refused as exc:
        raise InputError(f"{path}: refused: {exc}; only state_dicts (tensors in dicts) are read, and nothing in "
                         f"the file was run") from None
    except (ValueError, KeyError, IndexError, EOFError, UnicodeDecodeError, OverflowError, RecursionError,
            MemoryError, TypeError, AttributeError) as exc:
        raise InputError(f"{path}: a damaged pickle in the archive ({type(exc).__name__}); nothing was run") from None
    import numpy as np

    notes: list[str] = []
    refs = unwrap(obj, path, notes)
    stored = {}
    for key, ref in refs.items():
        _check_extent(ref, path, key)
        dtype = "float32" if ref.dtype == "bfloat16" else str(np.dtype(ref.dtype))
        stored[key] = Stored(ref.shape, dtype, lambda ref=ref, key=key: _materialise(
            archive, entries, prefix, ref, path, key, byteorder))
    return WeightsFile("PyTorch state_dict", stored, "neutral", notes=notes)
