"""Images with per-pixel class masks: a folder holding ``images/`` and ``masks/``, the same file
stems in each (``images/0001.jpg`` with ``masks/0001.png``), for a spec whose output is a [K, H, W]
map of class scores.

A mask is a PNG of class indices: a palette PNG is read as its indices (never its colours), a
greyscale one as its values; 255 marks pixels no loss or metric counts (VOC's and Cityscapes'
convention). Masks are resized to the output's size with nearest neighbour only: a bilinear resize
invents class ids between two classes. Like image files, masks are read batch by batch
(:class:`MaskFiles`) unless cached. A fixed 20% of the pairs is held out.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import InputError
from ..files.images import decoded
from .folders import IMAGE_SKIP
from .stream import ImageFiles

IGNORE = 255  # a mask value no loss or metric counts
MASK_MODES = ("P", "L", "1", "I", "I;16")


def load_mask(path, height: int, width: int, classes: int):
    """uint8 [H, W] class indices (nearest-neighbour resized), every value below ``classes`` or 255."""
    import numpy as np
    from PIL import Image

    with decoded(path, "mask") as img:
        if img.mode not in MASK_MODES:
            raise InputError(f"{path}: a mask is a PNG of class indices (palette or greyscale), but this one "
                             f"is {img.mode}; map its colours to class indices first")
        if img.size != (width, height):
            img = img.resize((width, height), Image.Resampling.NEAREST)
        mask = np.asarray(img)
    bad = (mask >= classes) & (mask != IGNORE)
    if bad.any():
        raise InputError(f"{path}: holds class {int(mask[bad].max())} but the spec's output has {classes} classes "
                         f"(0..{classes - 1}; {IGNORE} is ignored)")
    return mask.astype(np.uint8)


@dataclass(frozen=True, eq=False)
class MaskFiles:
    """A lazy uint8 [N, H, W] array of masks, decoded when asked for (as :class:`ImageFiles`)."""

    paths: tuple[str, ...]
    hw: tuple[int, int]
    classes: int

    ndim = 3
    lazy = True

    @property
    def shape(self):
        return (len(self.paths), *self.hw)

    @property
    def dtype(self):
        import numpy as np

        return np.dtype(np.uint8)

    def __len__(self) -> int:
        return len(self.paths)

    def decode(self, i: int):
        return load_mask(self.paths[i], *self.hw, self.classes)

    def __getitem__(self, index):
        import numpy as np

        if isinstance(index, (int, np.integer)):
            return self.decode(int(index))
        picks = range(len(self))[index] if isinstance(index, slice) else np.asarray(index).reshape(-1)
        return np.stack([self.decode(int(i)) for i in picks]) if len(picks) else np.zeros((0, *self.hw), np.uint8)

    take = ImageFiles.take  # skips unreadable masks as the images' array skips unreadable images

    def identity(self, hasher) -> None:
        ImageFiles.identity(self, hasher)


def is_segmentation_folder(root) -> bool:
    return (root / "images").is_dir() and (root / "masks").is_dir()


def _by_stem(folder):
    files = {}
    for name in sorted(os.listdir(folder)):
        path = folder / name
        if name.startswith(".") or name.lower() in IMAGE_SKIP or not path.is_file():
            continue
        stem = path.stem
        if stem in files:
            raise InputError(f"{folder}: two files share the stem '{stem}' ({files[stem].name}, {name}); "
                             f"images and masks are paired by stem")
        files[stem] = path
    return files


def load_segmentation(root, input_shape, output_shape, cache: bool = False, strict: bool = False):
    """The pairs of ``root/images`` and ``root/masks`` as a Dataset: x images, y masks (uint8 class
    indices at the output's size), lazy or (``cache``) decoded now."""
    import numpy as np

    from .dataset import Dataset, stratified_split

    c, h, w = input_shape
    classes, oh, ow = output_shape
    if c not in (1, 3):
        raise InputError(f"{root}: images can feed a spec with 1 or 3 input channels, but the spec's input has {c}")
    if classes > IGNORE:
        raise InputError(f"{root}: masks hold at most {IGNORE} classes (0..{IGNORE - 1}; {IGNORE} is ignored), "
                         f"but the spec's output has {classes}")
    images, masks = _by_stem(root / "images"), _by_stem(root / "masks")
    lonely = sorted(set(images) - set(masks))
    orphans = sorted(set(masks) - set(images))
    if lonely:
        raise InputError(f"{root / 'images'}: {len(lonely)} image(s) without a mask of the same stem in masks/ "
                         f"(first: {images[lonely[0]].name})")
    if orphans:
        raise InputError(f"{root / 'masks'}: {len(orphans)} mask(s) without an image of the same stem in images/ "
                         f"(first: {masks[orphans[0]].name})")
    stems = sorted(images)
    if len(stems) < 2:
        raise InputError(f"{root}: needs at least 2 image/mask pairs (one to train on, one held out)")
    train, test = stratified_split(np.zeros(len(stems), np.int64))

    def part(idx):
        return (ImageFiles(tuple(str(images[stems[i]]) for i in idx), (c, h, w)),
                MaskFiles(tuple(str(masks[stems[i]]) for i in idx), (oh, ow), classes))

    (x_train, y_train), (x_test, y_test) = part(train), part(test)
    labels = tuple(str(i) for i in range(classes))
    source = f"segmentation folder {root}"
    note = "images/ and masks/ paired by stem; a fixed 20% held out"
    if not cache:
        return Dataset(x_train, y_train, x_test, y_test, labels, source, split_note=note, task="segment")
    arrays, skipped = [], []
    for x, y in ((x_train, y_train), (x_test, y_test)):
        xs, kept, error = x.take(range(len(x)), strict)
        ys, mkept, merror = (y.take(np.flatnonzero(kept), strict) if not error else (None, None, ""))
        if error or merror:
            raise InputError(error or merror)
        kept_idx = np.flatnonzero(kept)
        skipped += [x.paths[i] for i in np.flatnonzero(~kept)] + [y.paths[i] for i in kept_idx[~mkept]]
        arrays += [xs[mkept], ys]
    return Dataset(arrays[0], arrays[1], arrays[2], arrays[3], labels, source, skipped=tuple(skipped),
                   split_note=note, task="segment")
