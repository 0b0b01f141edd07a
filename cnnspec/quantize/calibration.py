"""Images for calibration and for the held-out figures, from the same sources and with the same
preprocessing and split as ``cnnspec train`` (:mod:`cnnspec.data.sources`).

Calibration reads only the training part: ranges chosen on the held-out images would make the
held-out figures flatter the int8 model. It needs images only, so any source whose images fit the
model will do, a folder of unlabelled photos too; the held-out figures that need labels (accuracy)
are skipped, with the reason, where the source's labels do not fit the model's outputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

CALIBRATION_SEED = 20240523  # fixed: the same source and --samples calibrate on the same images
CALIBRATION_BATCH = 32


@dataclass(frozen=True)
class Images:
    """A source's training images (calibration reads these only) and held-out images, with labels
    where they fit the model (else None, and ``label_note`` says why)."""

    train: object  # float32 [N, C, H, W]
    held_out: object
    held_out_labels: object | None
    label_note: str
    source: str


def load_images(source: str, face) -> Images:
    """``source`` as ``train --data`` reads it, or a folder of images (labelled or not)."""
    from ..data import sources

    path = Path(source)
    if source == "digits":
        return _labelled(sources.load_digits_dataset(face.chw), face)
    if not path.exists():
        raise InputError(f"{source}: no such data source (expected 'digits', an MNIST .npz, a folder of MNIST "
                         f"IDX files, or a folder of images)")
    if path.is_file():
        if path.suffix.lower() != ".npz":
            raise InputError(f"{source}: a data file must be an MNIST-layout .npz; for images, give their folder")
        return _labelled(sources.load_npz(path, face.chw), face)
    if not path.is_dir():
        raise InputError(f"{source}: not a regular file or folder")
    if sources.is_idx_folder(path):
        return _labelled(sources.load_idx_folder(path, face.chw), face)
    return _image_folder(path, face)


def _labelled(dataset, face) -> Images:
    """A labelled dataset: its labels count where every one is one of the model's outputs."""
    import numpy as np

    labels = np.concatenate([dataset.y_train, dataset.y_test])
    if face.outputs is None:
        note = "the model's output is not one score per class"
    elif int(labels.max()) >= face.outputs:
        note = f"labels run to {int(labels.max())} but the model has {face.outputs} outputs"
    else:
        return Images(dataset.x_train, dataset.x_test, dataset.y_test, "", dataset.source)
    return Images(dataset.x_train, dataset.x_test, None, note, dataset.source)


def _image_folder(root: Path, face) -> Images:
    """Class subfolders named after the model's classes: labelled, read as train reads them.
    Anything else (loose photos, other folder names): unlabelled, with train's fixed 20% split."""
    from ..data import sources

    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose = _files(root)
    if folders and not loose and face.classes and all(p.name in face.classes for p in folders):
        return _labelled(sources.load_image_folder(root, face.chw, face.classes), face)
    if not folders:
        note = "the folder's images have no labels (no class subfolders)"
    elif loose:
        note = f"the folder holds images beside its subfolders (first: {loose[0].name}), so they have no labels"
    elif not face.classes:
        note = "the model names no classes, so class folders cannot be matched to its outputs"
    else:
        other = next(p.name for p in folders if p.name not in face.classes)
        note = f"class folder '{other}' is not one of the model's classes"
    files = loose + [f for folder in folders for f in _files(folder)]
    return _unlabelled(root, files, face, note)


def _files(folder: Path) -> list[Path]:
    from ..data.sources import IMAGE_SKIP

    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.name.lower() not in IMAGE_SKIP)


def _unlabelled(root: Path, files: list[Path], face, note: str) -> Images:
    import numpy as np

    from ..data.sources import stratified_split
    from ..files.images import load_image

    if len(files) < 2:
        raise InputError(f"{root}: needs at least 2 images (one to calibrate on, one held out), found {len(files)}")
    train, test = stratified_split(np.zeros(len(files), dtype=np.int64))  # train's split, one class

    def read(indices):
        return np.stack([load_image(files[i], *face.chw) for i in indices]).astype(np.float32)

    return Images(read(train), read(test), None, note, f"image folder {root}")


def pick(images, samples: int):
    """``samples`` images from ``images`` (all where there are fewer), by a fixed shuffle."""
    import numpy as np

    if samples >= len(images):
        return images
    order = np.random.RandomState(CALIBRATION_SEED).permutation(len(images))[:samples]
    return images[np.sort(order)]


def make_reader(images, input_name: str, batch: int = CALIBRATION_BATCH):
    """An ``onnxruntime.quantization.CalibrationDataReader`` over ``images`` (the training part)."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.start = 0

        def get_next(self):
            if self.start >= len(images):
                return None
            chunk = images[self.start:self.start + batch]
            self.start += batch
            return {input_name: chunk}

        def rewind(self):
            self.start = 0

    return Reader()
