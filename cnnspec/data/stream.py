"""Images read from their files batch by batch, never all decoded at once: what a backend's data
pipeline (a PyTorch ``DataLoader`` with worker processes, a Keras ``tf.data`` pipeline) wraps.

Framework-free on purpose: the core describes the data (the files, the labels, the per-image decode,
the augmentation of a batch) and a backend only runs it, in as many workers as it likes. A batch is
one call of :meth:`BatchReader.__getitem__` (decode every file of the step, drop the unreadable ones,
augment with the step's own generator), so it is the same array whichever worker makes it and
however many there are; a resumed run reads the same batches as the uninterrupted one.

An unreadable image (not an image, truncated, too large) is dropped from its batch and reported by
the batch (``kept``); the run counts it and names it in its summary. With ``strict`` it is the
batch's error instead, which the backend raises in the main process as one line.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from ..errors import InputError
from ..files.images import load_image

# a batch the data pipeline has not delivered in this many seconds is an error, not a hang
DATA_TIMEOUT_SECONDS = 300


@dataclass(frozen=True, eq=False)
class ImageFiles:
    """A lazy float32 [N, C, H, W] image array: element i is ``paths[i]`` decoded and resized by
    :func:`cnnspec.files.images.load_image` when asked for (so ``train`` and ``run`` preprocess alike).
    Indexing decodes strictly (an unreadable file is an :class:`InputError`); :meth:`take` skips."""

    paths: tuple[str, ...]
    chw: tuple[int, int, int]

    ndim = 4
    lazy = True  # what :func:`is_lazy` looks for

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), *self.chw)

    @property
    def dtype(self):
        import numpy as np

        return np.dtype(np.float32)

    def __len__(self) -> int:
        return len(self.paths)

    def decode(self, i: int):
        return load_image(self.paths[i], *self.chw)

    def __getitem__(self, index):
        import numpy as np

        if isinstance(index, (int, np.integer)):
            return self.decode(int(index))
        picks = range(len(self))[index] if isinstance(index, slice) else np.asarray(index).reshape(-1)
        out = np.empty((len(picks), *self.chw), np.float32)
        for row, i in enumerate(picks):
            out[row] = self.decode(int(i))
        return out

    def take(self, indices, strict: bool = False):
        """(images of the readable files, a bool mask of which were, the first error's text or "");
        shared with the masks' lazy array, which has its own ``shape``, ``dtype`` and ``decode``."""
        import numpy as np

        out = np.empty((len(indices), *self.shape[1:]), self.dtype)
        kept = np.ones(len(indices), bool)
        for row, i in enumerate(indices):
            try:
                out[row] = self.decode(int(i))
            except InputError as exc:
                if strict:
                    return out[:0], kept[:0], str(exc)
                kept[row] = False
        return (out if kept.all() else out[kept]), kept, ""

    def identity(self, hasher) -> None:
        """Feed each file's path, size and modification time to ``hasher`` (a resume on changed
        files is refused without reading every byte of a large folder)."""
        for p in self.paths:
            try:
                st = os.stat(p)
                hasher.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            except OSError:
                hasher.update(f"{p}\0missing\n".encode())


def is_lazy(x) -> bool:
    """True for a lazily decoded array (an :class:`ImageFiles`), False for a numpy array in memory."""
    return getattr(x, "lazy", False) is True


def take(x, indices, strict: bool = False):
    """(x[indices] of the readable items, kept mask, error text) for an array or an ImageFiles."""
    import numpy as np

    if is_lazy(x):
        return x.take(indices, strict)
    return x[indices], np.ones(len(indices), bool), ""


@dataclass(frozen=True, eq=False)
class BatchReader:
    """The steps of one pass as a sequence: item ``step`` is ``(images, targets, kept, error)`` for
    ``batches[step]``, images augmented by ``augment(step, images)`` where set. Picklable, so a
    worker process can make any step; each step depends on nothing but its index."""

    x: object
    y: object
    batches: tuple
    augment: Callable | None = None
    strict: bool = False

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, step: int):
        import numpy as np

        idx = np.asarray(self.batches[step])
        images, kept, error = take(self.x, idx, self.strict)
        if error:
            return images, np.zeros(0, np.int64), kept, error
        targets, also, error = take(self.y, idx[kept], self.strict)  # labels, or masks (read as images are)
        if error:
            return images[:0], np.zeros(0, np.int64), kept, error
        if not also.all():
            images = images[also]
            kept = kept.copy()
            kept[np.flatnonzero(kept)[~also]] = False
        if self.augment is not None and len(images):
            if targets.ndim == 1:
                images = self.augment(step, images)
            else:  # masks: the same crop and flip as their images
                images, targets = self.augment(step, images, targets)
        return np.ascontiguousarray(images, np.float32), np.asarray(targets, np.int64), kept, ""

    def skipped(self, step: int, kept) -> list[str]:
        """The paths of the files step ``step`` could not read (an image, or its mask)."""
        import numpy as np

        if kept.all() or not is_lazy(self.x):
            return []
        out = []
        for i in np.asarray(self.batches[step])[~np.asarray(kept)]:
            path = self.x.paths[int(i)]
            if is_lazy(self.y):
                path = f"{path} (or its mask {self.y.paths[int(i)]})"
            out.append(path)
        return out


def eval_batches(indices, size: int) -> tuple:
    """``indices`` cut into consecutive batches of ``size`` (held-out images, in order)."""
    return tuple(indices[start:start + size] for start in range(0, len(indices), size))
