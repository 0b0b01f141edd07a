"""The user's files for ``cnnspec run``: .npy arrays or images, as one float32 [N, C, H, W] array
and where each sample came from. Every unusable file is one ``InputError`` line naming it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..images import IMAGE_MODES, load_image

MAX_NPY_BYTES = 2 * 1024 ** 3
NPY_SUFFIXES = (".npy",)


@dataclass(frozen=True)
class Sample:
    """Where a sample came from: a file, and its index within the file for a batched .npy array."""

    file: str
    index: int | None


def _load_npy(path: Path, chw):
    import numpy as np

    try:
        if path.stat().st_size > MAX_NPY_BYTES:
            raise InputError(f"{path}: larger than the {MAX_NPY_BYTES} bytes cnnspec run reads")
        array = np.load(path, allow_pickle=False, mmap_mode="r")
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{path}: no such input file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not an input file") from None
    except (ValueError, OSError, EOFError) as exc:
        text = str(exc)
        if "pickle" in text or "Python objects" in text:
            reason = "it holds Python objects, which cnnspec never unpickles"
        else:
            reason = text.splitlines()[0][:120] if text else type(exc).__name__
        raise InputError(f"{path}: not a readable .npy array ({reason})") from None
    if not isinstance(array, np.ndarray):
        raise InputError(f"{path}: holds several arrays (an .npz?); pass one [N, C, H, W] array per .npy file")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise InputError(f"{path}: holds {array.dtype} values; cnnspec run needs real numbers (float32 preferred)")
    shape = tuple(array.shape)
    if shape == tuple(chw):
        array, indexed = array[None], False
    elif len(shape) == 4 and shape[1:] == tuple(chw):
        indexed = True
    else:
        raise InputError(f"{path}: array of shape {list(shape)} does not fit the model's input; it takes "
                         f"[N, {chw[0]}, {chw[1]}, {chw[2]}] or [{chw[0]}, {chw[1]}, {chw[2]}]")
    if array.shape[0] == 0:
        raise InputError(f"{path}: the array holds no samples (shape {list(shape)})")
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
    return np.ascontiguousarray(load_image(path, c, h, w)[None]), [Sample(str(path), None)]


def load_inputs(paths, chw):
    """All samples from all files as one float32 [N, C, H, W] array, and where each came from."""
    import numpy as np

    arrays, samples = [], []
    for name in paths:
        path = Path(name)
        loader = _load_npy if path.suffix.lower() in NPY_SUFFIXES else _load_image
        data, found = loader(path, chw)
        arrays.append(data)
        samples.extend(found)
    return np.concatenate(arrays, axis=0), samples
