"""Image files as a training source, in the three layouts datasets ship in:

- one folder with a subfolder per class (a fixed stratified 20% is held out, as for every source
  without its own split);
- ``train/`` and ``val/`` (or ``test/``) folders, each with the class subfolders (ImageNet's and most
  Kaggle sets' layout): the given split is used, and said. With ``train/``, ``val/`` and ``test/``,
  ``val/`` chooses the best epoch and ``test/`` reports it; with two of them the second is the held-out
  (test) split and the validation images are carved from ``train/`` as usual;
- a CSV file of ``path,label`` rows (paths relative to the CSV's folder; an optional header row;
  labels are class names, or class indices where every label is a whole number).

By default the images stay files (:class:`cnnspec.data.stream.ImageFiles`) that the backend's data
pipeline decodes batch by batch, so memory does not grow with the folder; ``cache`` decodes them all
up front (today's in-memory path, checked against the machine's memory first). Unreadable images are
skipped and named (``Dataset.skipped``) unless ``strict``.
"""
from __future__ import annotations

import csv
from pathlib import Path

from ..errors import InputError
from ..graph.resources import require_fits
from .stream import ImageFiles

IMAGE_SKIP = {"thumbs.db", "desktop.ini"}
SPLIT_NAMES = ("train", "val", "test")
FLOAT32 = 4
# float32 copies of the images held at the peak when cached: the stacked array and the split's copy
FLOAT32_COPIES = 2
MAX_CSV_BYTES = 512 * 1024 ** 2


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.name.lower() not in IMAGE_SKIP)


def _class_folders(root: Path) -> list[Path]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise InputError(f"{root}: no class subfolders (an image folder needs one subfolder per class)")
    stray = [p.name for p in root.iterdir() if p.is_file() and not p.name.startswith(".")
             and p.name.lower() not in IMAGE_SKIP]
    if stray:
        raise InputError(f"{root}: holds files beside the class subfolders (first: {stray[0]}); "
                         f"put every image inside its class's subfolder")
    return folders


def _label_names(names, spec_classes, where) -> tuple[str, ...]:
    if spec_classes:
        unknown = [n for n in names if n not in spec_classes]
        if unknown:
            raise InputError(f"{where}: class folder '{unknown[0]}' is not one of the spec's classes "
                             f"({', '.join(spec_classes)})")
        return tuple(spec_classes)
    return tuple(sorted(names))


def _scan(root: Path, labels: tuple[str, ...]):
    """(paths, label indices) of one folder of class subfolders, in sorted order."""
    paths, targets = [], []
    for folder in _class_folders(root):
        if folder.name not in labels:
            raise InputError(f"{folder}: class folder '{folder.name}' is not among the training classes "
                             f"({', '.join(labels)})")
        found = _image_files(folder)
        if not found:
            raise InputError(f"{folder}: class folder '{folder.name}' holds no images")
        paths += [str(f) for f in found]
        targets += [labels.index(folder.name)] * len(found)
    return paths, targets


def split_layout(root: Path) -> tuple[str, ...] | None:
    """The split folders of a ``train/`` + ``val/`` (+ ``test/``) layout, or None for class folders."""
    names = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    if "train" in names and names & {"val", "test"} and names <= set(SPLIT_NAMES):
        return tuple(n for n in SPLIT_NAMES if n in names)
    return None


def _need_two_classes(targets, labels, where: str) -> None:
    present = sorted(set(targets))
    if len(present) < 2:
        raise InputError(f"{where}: only one class ('{labels[present[0]] if present else '?'}'); a classifier "
                         f"needs images of at least two (with one, every answer is right and accuracy 1.0 "
                         f"means nothing)")


def scan_folder(root: Path, spec_classes=None):
    """What a folder source holds, before any image is decoded: (train paths, train labels, test paths,
    test labels, label names, given validation indices or None, a note saying which split is used)."""
    import numpy as np

    from .dataset import stratified_split

    splits = split_layout(root)
    if splits is None:
        folders = _class_folders(root)
        labels = _label_names([p.name for p in folders], spec_classes, root)
        paths, targets = _scan(root, labels)
        _need_two_classes(targets, labels, root)
        y = np.asarray(targets, np.int64)
        train, test = stratified_split(y)
        if len(test) == 0:
            raise InputError(f"{root}: too few images for a held-out split; every class needs at least 2")
        pick = lambda idx: [paths[i] for i in idx]  # noqa: E731
        return pick(train), y[train], pick(test), y[test], labels, None, "a fixed stratified 20% held out"
    labels = _label_names([p.name for p in _class_folders(root / "train")], spec_classes, root / "train")
    scanned = {name: _scan(root / name, labels) for name in splits}
    _need_two_classes(scanned["train"][1], labels, root / "train")
    if len(splits) == 3:
        (tp, ty), (vp, vy), (sp, sy) = scanned["train"], scanned["val"], scanned["test"]
        val = np.arange(len(tp), len(tp) + len(vp))
        return (tp + vp, np.asarray(ty + vy, np.int64), sp, np.asarray(sy, np.int64), labels, val,
                "the given split: train/ trains, val/ chooses the best epoch, test/ reports it")
    held = splits[1]
    (tp, ty), (hp, hy) = scanned["train"], scanned[held]
    return (tp, np.asarray(ty, np.int64), hp, np.asarray(hy, np.int64), labels, None,
            f"the given split: train/ trains (its validation images carved from it), {held}/ is the held-out split")


def scan_csv(path: Path, spec_classes=None):
    """A CSV of ``path,label`` rows as :func:`scan_folder` returns it (stratified 20% held out)."""
    import numpy as np

    from .dataset import stratified_split

    try:
        if path.stat().st_size > MAX_CSV_BYTES:
            raise InputError(f"{path}: {path.stat().st_size:,} bytes is more than the {MAX_CSV_BYTES:,} a "
                             f"path,label CSV may have")
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file (a CSV of path,label rows)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    rows = [r for r in csv.reader(text.splitlines()) if r and any(c.strip() for c in r)]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
        rows = rows[1:]
    paths, names = [], []
    for line, row in enumerate(rows, 1):
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise InputError(f"{path}: row {line} is {','.join(row)[:80]!r}; every row is path,label")
        file = Path(row[0].strip())
        paths.append(str(file if file.is_absolute() else path.parent / file))
        names.append(row[1].strip())
    if not paths:
        raise InputError(f"{path}: no path,label rows")
    if all(n.isdigit() for n in names) and not spec_classes:
        y = np.asarray([int(n) for n in names], np.int64)
        labels = tuple(str(i) for i in range(int(y.max()) + 1))
    else:
        labels = _label_names(sorted(set(names)), spec_classes, path)
        y = np.asarray([labels.index(n) for n in names], np.int64)
    _need_two_classes(y.tolist(), labels, path)
    train, test = stratified_split(y)
    if len(test) == 0:
        raise InputError(f"{path}: too few images for a held-out split; every class needs at least 2")
    pick = lambda idx: [paths[i] for i in idx]  # noqa: E731
    return pick(train), y[train], pick(test), y[test], labels, None, "a fixed stratified 20% held out"


def _decode_all(files: ImageFiles, strict: bool):
    """Every image in memory (``--cache``); unreadable ones dropped (or, strict, an error)."""
    images, kept, error = files.take(range(len(files)), strict)
    if error:
        raise InputError(error)
    return images, kept


def image_dataset(path: Path, input_shape, spec_classes=None, cache: bool = False, strict: bool = False):
    """A :class:`~cnnspec.data.sources.Dataset` of an image folder or a path,label CSV: lazy files,
    or with ``cache`` every image decoded now."""
    import numpy as np

    from .dataset import Dataset

    c, h, w = input_shape
    if c not in (1, 3):
        raise InputError(f"{path}: an image folder can feed a spec with 1 or 3 input channels, "
                         f"but the spec's input has {c}")
    scan = scan_csv if path.is_file() else scan_folder
    tr_paths, y_train, te_paths, y_test, labels, val, note = scan(path, spec_classes)
    kind = "CSV" if path.is_file() else "image folder"
    x_train, x_test = ImageFiles(tuple(tr_paths), (c, h, w)), ImageFiles(tuple(te_paths), (c, h, w))
    if not cache:
        return Dataset(x_train, y_train, x_test, y_test, labels, f"{kind} {path}", val_index=val, split_note=note)
    count = len(tr_paths) + len(te_paths)
    require_fits((FLOAT32_COPIES + 1) * count * c * h * w * FLOAT32,
                 f"{path}: {count:,} images of {list(input_shape)} as float32 (decoded, stacked and split)",
                 error=InputError)
    xs, ks = zip(*(_decode_all(files, strict) for files in (x_train, x_test)))
    skipped = tuple(p for files, kept in zip((x_train, x_test), ks) for p, k in zip(files.paths, kept) if not k)
    if val is not None:  # the given validation indices, renumbered past the dropped images
        val = np.flatnonzero(np.isin(np.flatnonzero(ks[0]), val))
    return Dataset(xs[0], y_train[ks[0]], xs[1], y_test[ks[1]], labels, f"{kind} {path}", val_index=val,
                   skipped=skipped, split_note=note)
