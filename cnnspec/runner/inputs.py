"""The user's files for ``cnnspec run``: .npy arrays or images, as one float32 [N, C, H, W] array
and where each sample came from. Every unusable file is one ``InputError`` line naming it.

Files are hostile input: only regular files are opened (a FIFO would block, ``/dev/zero`` never
ends); a .npy header is read and checked (magic, dtype, shape, declared size against the file's
real size and this machine's memory) before its data is touched; NaN and infinities are refused.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..files.atomic import NOT_REGULAR
from ..files.images import IMAGE_MODES, load_image
from ..files.npy import read_header
from ..graph.resources import require_fits

MAX_NPY_BYTES = 2 * 1024 ** 3
NPY_SUFFIXES = (".npy",)
# what ``--input DIR`` takes from a folder (Pillow reads these); other files there are left alone
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
FLOAT32 = 4


@dataclass(frozen=True)
class Sample:
    """Where a sample came from: a file, and its index within the file for a batched .npy array."""

    file: str
    index: int | None


def require_regular_input(path: Path, what: str = "input file") -> int:
    """The file's size; a missing file, a folder, a FIFO or a device is one line (a FIFO would
    block the read forever, /dev/zero would never end)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path}: is a directory, not an {what}")
    if not stat.S_ISREG(st.st_mode):
        kind = NOT_REGULAR.get(stat.S_IFMT(st.st_mode), "not a regular file")
        if path.suffix.lower() in NPY_SUFFIXES:
            raise InputError(f"{path}: not a .npy array ({kind}, not a regular file)")
        raise InputError(f"{path}: {kind}, not a regular file; give a .npy array or an image file")
    return st.st_size


def read_npy_header(path: Path, size: int):
    """The checked header of a .npy input (see :mod:`cnnspec.files.npy`), holding real numbers."""
    import numpy as np

    try:
        with open(path, "rb") as fh:
            header = read_header(fh, size, str(path))
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not (np.issubdtype(header.dtype, np.floating) or np.issubdtype(header.dtype, np.integer)):
        raise InputError(f"{path}: holds {header.dtype} values; cnnspec run needs real numbers (float32 preferred)")
    return header


def _count(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _fit_npy(path: Path, shape: tuple, chw) -> bool:
    """Whether the array is batched ([N, C, H, W]) rather than one sample ([C, H, W]); a shape that
    fits neither is one line."""
    if shape == tuple(chw):
        return False
    if len(shape) == 4 and shape[1:] == tuple(chw):
        if shape[0] == 0:
            raise InputError(f"{path}: the array holds no samples (shape {list(shape)})")
        return True
    raise InputError(f"{path}: array of shape {list(shape)} does not fit the model's input; it takes "
                     f"[N, {chw[0]}, {chw[1]}, {chw[2]}] or [{chw[0]}, {chw[1]}, {chw[2]}]")


def _load_npy(path: Path, chw):
    import numpy as np

    size = require_regular_input(path)
    if size > MAX_NPY_BYTES:
        raise InputError(f"{path}: larger than the {MAX_NPY_BYTES} bytes cnnspec run reads")
    header = read_npy_header(path, size)
    indexed = _fit_npy(path, header.shape, chw)
    require_fits(header.count * FLOAT32, f"{path}: its {list(header.shape)} values as float32", error=InputError)
    try:
        array = np.load(path, allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError, EOFError) as exc:
        text = str(exc)
        reason = text.splitlines()[0][:120] if text else type(exc).__name__
        raise InputError(f"{path}: not a readable .npy array ({reason})") from None
    if not indexed:
        array = array[None]
    data = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(data).all():
        raise InputError(f"{path}: holds NaN or infinite values")
    samples = [Sample(str(path), i if indexed else None) for i in range(data.shape[0])]
    return data, samples


def _load_image(path: Path, chw):
    import numpy as np

    c, h, w = chw
    if c not in IMAGE_MODES:
        raise InputError(f"{path}: the model takes {c} channels, and images give 1 (grey) or 3 (RGB); "
                         f"pass a .npy array instead")
    require_regular_input(path, "image file")
    return np.ascontiguousarray(load_image(path, c, h, w)[None]), [Sample(str(path), None)]


def expand_inputs(paths) -> list[str]:
    """``--input`` as files: a folder gives every image (and .npy array) directly in it, sorted by name
    (hidden files skipped); one line where a folder holds none."""
    out = []
    for name in paths:
        path = Path(name)
        if not path.is_dir():
            out.append(str(name))
            continue
        try:
            found = sorted(p for p in path.iterdir() if not p.name.startswith(".") and p.is_file()
                           and p.suffix.lower() in IMAGE_SUFFIXES + NPY_SUFFIXES)
        except OSError as exc:
            raise InputError(f"{path}: cannot list the folder: {exc.strerror or exc}") from None
        if not found:
            raise InputError(f"{path}: no images or .npy arrays in this folder (it takes "
                             f"{', '.join(IMAGE_SUFFIXES + NPY_SUFFIXES)})")
        out += [str(p) for p in found]
    return out


def load_inputs(paths, chw):
    """All samples from all files as one float32 [N, C, H, W] array, and where each came from; the
    running total is checked against memory before each file is decoded (and the joined copy)."""
    import numpy as np

    arrays, samples, total = [], [], 0
    sample_bytes = _count(chw) * FLOAT32
    for name in paths:
        path = Path(name)
        loader = _load_npy if path.suffix.lower() in NPY_SUFFIXES else _load_image
        data, found = loader(path, chw)
        total += data.shape[0] * sample_bytes
        require_fits(2 * total, f"the inputs up to {path} ({total // sample_bytes:,} samples of {list(chw)} as "
                     f"float32, and their joined copy)", error=InputError)
        arrays.append(data)
        samples.extend(found)
    return np.concatenate(arrays, axis=0), samples
