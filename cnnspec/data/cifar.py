"""CIFAR-10 and CIFAR-100 in their binary form, read by the fixed record layout, never unpickled.

- CIFAR-10 (``cifar-10-binary.tar.gz``): ``data_batch_1.bin`` ... ``data_batch_5.bin`` and
  ``test_batch.bin``; each record is 1 label byte then 3072 pixel bytes (1024 red, 1024 green,
  1024 blue, 32x32 row-major). Class names from ``batches.meta.txt``.
- CIFAR-100 (``cifar-100-binary.tar.gz``): ``train.bin`` and ``test.bin``; each record is 2 label
  bytes (coarse, fine) then the same 3072. The fine label (100 classes) is used; names from
  ``fine_label_names.txt``.

Every file's length must be a whole number of records and every label in range; the folders of the
"python version" (pickles: ``data_batch_1``, ``batches.meta``; CIFAR-100's ``train``, ``meta``) are
refused with the name of the binary download instead.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError

PIXELS = 3 * 32 * 32
# name: (training files, test file, label bytes, the label byte used, classes, names file, download)
LAYOUTS = {
    "CIFAR-10": (tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin", 1, 0, 10,
                 "batches.meta.txt", "cifar-10-binary.tar.gz"),
    "CIFAR-100": (("train.bin",), "test.bin", 2, 1, 100, "fine_label_names.txt", "cifar-100-binary.tar.gz"),
}
PICKLED = {"CIFAR-10": ("data_batch_1", "batches.meta"), "CIFAR-100": ("train", "meta")}
MAX_RECORDS = 1_000_000


def cifar_layout(folder: Path) -> str | None:
    """'CIFAR-10' or 'CIFAR-100' where the folder holds that dataset's binary files."""
    for name, (train, test, *_rest) in LAYOUTS.items():
        if (folder / test).is_file() or any((folder / f).is_file() for f in train):
            return name
    return None


def refuse_pickled(folder: Path) -> None:
    """The python version of CIFAR is pickles: refused, naming the binary download to use."""
    for name, files in PICKLED.items():
        if all((folder / f).is_file() for f in files):
            download = LAYOUTS[name][-1]
            raise InputError(f"{folder}: this is the pickled 'python version' of {name}, which cnnspec never "
                             f"unpickles (a pickle can run code); download the {name} binary version "
                             f"({download}) and give its folder")


def read_records(path: Path, label_bytes: int, label_at: int, classes: int):
    """(uint8 images [N, 3, 32, 32], int64 labels [N]) from one binary batch, its size checked."""
    import numpy as np

    record = label_bytes + PIXELS
    try:
        size = path.stat().st_size
        if size == 0 or size % record:
            raise InputError(f"{path}: {size} bytes is not a whole number of {record}-byte CIFAR records "
                             f"({label_bytes} label byte(s) + {PIXELS} pixels); the file is truncated or not "
                             f"this dataset's binary batch")
        if size // record > MAX_RECORDS:
            raise InputError(f"{path}: {size // record:,} records is more than the {MAX_RECORDS:,} a batch may hold")
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    rows = raw.reshape(-1, record)
    labels = rows[:, label_at].astype(np.int64)
    if labels.max(initial=0) >= classes:
        raise InputError(f"{path}: label {int(labels.max())} is out of range for {classes} classes; not a "
                         f"{'CIFAR-10' if classes == 10 else 'CIFAR-100'} binary batch")
    return rows[:, label_bytes:].reshape(-1, 3, 32, 32), labels


def _names(path: Path, classes: int) -> tuple[str, ...]:
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError):
        names = []
    return tuple(names) if len(names) == classes else tuple(str(i) for i in range(classes))


def read_cifar(folder: Path):
    """(x_train, y_train, x_test, y_test, class names, dataset name) of the folder's binary batches,
    uint8 [N, 3, 32, 32] images and int64 labels (the source's own train/test split)."""
    import numpy as np

    name = cifar_layout(folder)
    train_files, test_file, label_bytes, label_at, classes, names_file, _ = LAYOUTS[name]
    missing = [f for f in (*train_files, test_file) if not (folder / f).is_file()]
    if missing:
        raise InputError(f"{folder}: the {name} binary folder is missing {', '.join(missing)}")
    parts = [read_records(folder / f, label_bytes, label_at, classes) for f in train_files]
    x_test, y_test = read_records(folder / test_file, label_bytes, label_at, classes)
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    return x_train, y_train, x_test, y_test, _names(folder / names_file, classes), name
