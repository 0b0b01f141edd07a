"""Training data sources for ``cnnspec train --data SOURCE``, each checked against the spec first.

A source is ``digits`` (scikit-learn's 8x8 digits, shipped with it, no download), a Keras-layout
``mnist.npz``, a folder of MNIST IDX files (optionally gzipped), a folder of CIFAR binary batches,
or image files (a folder of class subfolders, ``train/`` + ``val/`` folders, or a path,label CSV:
:mod:`.folders`). Every source becomes the same :class:`Dataset`: float32 [N, C, H, W] in [0, 1]
(image files possibly still files, decoded batch by batch: :mod:`.stream`), int64 labels, and a
fixed stratified held-out split where the source has none of its own.

Nothing here imports a framework; numpy, PIL and scikit-learn are imported where used, so
``cnnspec check`` stays fast. Files are parsed defensively: sizes in headers are checked against
the file's length before anything is allocated, and no pickle is ever loaded.
"""
from __future__ import annotations

import gzip
from dataclasses import replace
from pathlib import Path

from ..errors import InputError, UsageError
from ..files.images import load_image  # noqa: F401  (re-exported: the one image preprocessing)
from ..graph.resources import require_fits
from .dataset import HELD_OUT_FRACTION, SPLIT_SEED, Dataset, stratified_split  # noqa: F401  (re-exported)
from .folders import IMAGE_SKIP  # noqa: F401  (re-exported)

MAX_ARRAY_BYTES = 4 * 1024 ** 3  # refuse data files that would decompress to more than this
MAX_CLASSES = 1_000_000  # a dense layer's own bound on units: no label can be larger
FLOAT32 = 4
# float32 copies of the images held at the peak: the converted array and the one scaling or the
# split makes from it
FLOAT32_COPIES = 2


# ---------------------------------------------------------------- images

def load_image_folder(root: Path, input_shape, spec_classes=None) -> Dataset:
    """Every image of a folder source decoded into memory, an unreadable one an error (what
    ``cnnspec quantize --calibrate`` reads); see :mod:`.folders` for the layouts."""
    from .folders import image_dataset

    return image_dataset(Path(root), input_shape, spec_classes, cache=True, strict=True)


# ---------------------------------------------------------------- arrays (npz, IDX, digits)

def _as_nchw(x, input_shape, where: str):
    """Arrays of [N, H, W], [N, C, H, W] or [N, H, W, C] to float32 [N, C, H, W] in [0, 1];
    integer images are divided by 255. The size must already be the spec's: arrays are not resized."""
    import numpy as np

    c, h, w = input_shape
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] != c and x.shape[3] == c:
        x = x.transpose(0, 3, 1, 2)
    elif x.ndim != 4:
        raise InputError(f"{where}: images have shape {list(x.shape)}; expected [N, H, W] or [N, C, H, W]")
    if x.shape[1] != c:
        raise InputError(f"{where}: images have {x.shape[1]} channel(s) but the spec's input has {c} "
                         f"(shape {list(x.shape[1:])} vs spec {list(input_shape)})")
    if tuple(x.shape[2:]) != (h, w):
        raise InputError(f"{where}: images are {x.shape[2]}x{x.shape[3]} but the spec's input is {h}x{w}; "
                         f"arrays are not resized (use an image folder, or change the spec's input)")
    if np.issubdtype(x.dtype, np.integer):
        scale = 255.0 if x.max(initial=0) <= 255 else float(np.iinfo(x.dtype).max)
        return np.ascontiguousarray(x, dtype=np.float32) / np.float32(scale)
    if np.issubdtype(x.dtype, np.floating) or x.dtype == np.bool_:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not np.isfinite(x).all():
            raise InputError(f"{where}: images hold NaN or infinite values")
        return x
    raise InputError(f"{where}: images hold {x.dtype}, not numbers")


def _as_labels(y, n: int, where: str):
    import numpy as np

    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n:
        raise InputError(f"{where}: labels have shape {list(y.shape)}; expected [{n}] (one per image)")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise InputError(f"{where}: labels hold {y.dtype}; expected integer class indices")
    if n and y.min() < 0:
        raise InputError(f"{where}: label {int(y.min())} is negative; labels are class indices 0, 1, ...")
    return y.astype(np.int64)


def _require_labels_fit(y_train, y_test, units: int | None, where: str) -> int:
    """The number of classes the labels name, checked against the spec's output before any image is
    converted (a label of 10^9 named a billion classes, and allocated for them, before this)."""
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    limit = MAX_CLASSES if units is None else units
    if num_classes > limit:
        bound = f"the spec's output has only {units} units" if units is not None else \
            f"cnnspec takes at most {MAX_CLASSES:,} classes"
        raise InputError(f"{where}: {num_classes:,} classes (labels 0..{num_classes - 1:,}) but {bound}; labels out "
                         f"of range" + (f" (or change the last dense layer to {num_classes})" if units else ""))
    return num_classes


def _require_float32_memory(where: str, *arrays) -> None:
    """The images as float32, the conversion's copy included, against this machine's memory."""
    count = sum(int(a.size) for a in arrays)
    require_fits(FLOAT32_COPIES * count * FLOAT32, f"{where}: {count:,} pixel values as float32 "
                 f"({FLOAT32} bytes each, and a copy)", error=InputError)


def _array_dataset(x_train, y_train, x_test, y_test, input_shape, where: str, units: int | None = None) -> Dataset:
    """Labels first (cheap, and they bound everything else), then memory, then the float32 images."""
    y_train = _as_labels(y_train, len(x_train), where)
    y_test = _as_labels(y_test, len(x_test), where)
    if len(y_train) == 0 or len(y_test) == 0:
        raise InputError(f"{where}: needs at least one training and one held-out image")
    num_classes = _require_labels_fit(y_train, y_test, units, where)
    _require_float32_memory(where, x_train, x_test)
    x_train = _as_nchw(x_train, input_shape, where)
    x_test = _as_nchw(x_test, input_shape, where)
    return Dataset(x_train, y_train, x_test, y_test, tuple(str(i) for i in range(num_classes)), where)


def load_digits_dataset(input_shape) -> Dataset:
    """scikit-learn's 1797 8x8 digits (values 0..16 scaled to [0, 1]) with a fixed stratified split."""
    import numpy as np

    images, target = _digits_arrays()
    x = (images.astype(np.float32) / np.float32(16.0))[:, None]
    y = target.astype(np.int64)
    train, test = stratified_split(y)
    c, h, w = input_shape
    if (c, h, w) != (1, 8, 8):
        raise InputError(f"digits: the images are [1, 8, 8] but the spec's input is {list(input_shape)}")
    return Dataset(x[train], y[train], x[test], y[test], tuple(str(i) for i in range(10)), "digits")


DIGITS_ROWS, DIGITS_COLUMNS = 1797, 65  # 8x8 pixels then the label, in scikit-learn's digits.csv.gz


def _digits_arrays():
    """(images [1797, 8, 8] float64 in 0..16, labels [1797]) as scikit-learn's ``load_digits`` gives
    them, read from the CSV file scikit-learn ships without importing scikit-learn: its import pulls
    in SciPy's compiled modules, a second of start-up in every process (each torchrun rank and
    DataLoader worker), and the one import a rank was seen to fail under load. Where the file is
    not where scikit-learn 1.x keeps it, ``load_digits`` itself."""
    import gzip
    import importlib.util

    import numpy as np

    found = importlib.util.find_spec("sklearn")
    if found is None:
        raise UsageError("--data digits needs scikit-learn; pip install 'cnnspec[train]'")
    for folder in found.submodule_search_locations or ():
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt") as text:
                data = np.loadtxt(text, delimiter=",")
            labels = data[:, -1] if data.ndim == 2 else np.empty(0)
            if data.shape == (DIGITS_ROWS, DIGITS_COLUMNS) and np.isin(labels, np.arange(10)).all():
                return data[:, :-1].reshape(-1, 8, 8), labels.astype(int)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target


NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def npz_headers(path: Path) -> dict:
    """The checked .npy header of each member of an .npz (shape, dtype, declared size against the
    member's size), read before any array is: a header declaring 10^12 values is one line, not a
    MemoryError. Keys are member names without '.npy'."""
    import zipfile

    from ..files.npy import read_header

    try:
        with zipfile.ZipFile(path) as zf:
            infos = [i for i in zf.infolist() if i.filename.endswith(".npy")]
            declared = sum(info.file_size for info in zf.infolist())
            if declared > MAX_ARRAY_BYTES:
                raise InputError(f"{path}: would unpack to {declared} bytes, more than the {MAX_ARRAY_BYTES} allowed")
            headers = {}
            for info in infos:
                key = info.filename[:-len(".npy")]
                if key in NPZ_ARRAYS:
                    with zf.open(info) as fh:
                        headers[key] = read_header(fh, info.file_size, f"{path} ({key})")
            return headers
    except InputError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise InputError(f"{path}: not an .npz file ({str(exc).splitlines()[0][:100] or 'not a zip archive'})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def load_npz(path: Path, input_shape, units: int | None = None) -> Dataset:
    """Keras' mnist.npz layout: x_train, y_train, x_test, y_test. Never unpickles; every member's
    header and the float32 images' memory are checked before any array is loaded."""
    import zipfile

    import numpy as np

    headers = npz_headers(path)
    images = [h for k, h in headers.items() if k.startswith("x_")]
    raw = sum(h.nbytes for h in headers.values())
    require_fits(raw + FLOAT32_COPIES * FLOAT32 * sum(h.count for h in images),
                 f"{path}: its arrays ({raw:,} bytes) and their images as float32 ({FLOAT32} bytes a value, and a copy)",
                 error=InputError)
    needed = NPZ_ARRAYS
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in needed if k not in npz.files]
            if missing:
                raise InputError(f"{path}: missing array(s) {', '.join(missing)}; an MNIST .npz holds "
                                 f"x_train, y_train, x_test, y_test (found: {', '.join(npz.files) or 'none'})")
            arrays = [npz[k] for k in needed]
    except InputError:
        raise
    except ValueError as exc:
        raise InputError(f"{path}: cannot load without unpickling or malformed ({str(exc).splitlines()[0][:100]})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: unreadable .npz ({str(exc).splitlines()[0][:100]})") from None
    return _array_dataset(*arrays, input_shape, str(path), units)


# IDX: magic 0x00 0x00 TYPE NDIM, then NDIM big-endian uint32 sizes, then the data, big-endian
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_NAMES = {
    "x_train": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "y_train": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "x_test": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "y_test": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def _find_idx(folder: Path, names) -> Path | None:
    for name in names:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def is_idx_folder(folder: Path) -> bool:
    return any(_find_idx(folder, names) for names in IDX_NAMES.values())


def read_idx(path: Path, expect_ndim: int):
    """Parse one IDX file strictly: magic, type and dimensions must match the file's length exactly.
    Gzipped files are read in bounded chunks, so a lying header cannot make us allocate or inflate."""
    import numpy as np

    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0:
                raise InputError(f"{path}: not an IDX file (bad magic number {head.hex() or 'empty'})")
            dtype_code, ndim = head[2], head[3]
            if dtype_code not in IDX_TYPES:
                raise InputError(f"{path}: unknown IDX data type 0x{dtype_code:02x}")
            if ndim != expect_ndim:
                raise InputError(f"{path}: IDX file has {ndim} dimension(s); expected {expect_ndim}")
            dims_raw = fh.read(4 * ndim)
            if len(dims_raw) != 4 * ndim:
                raise InputError(f"{path}: IDX header is truncated")
            dims = tuple(int(d) for d in np.frombuffer(dims_raw, dtype=">u4"))
            dtype = np.dtype(IDX_TYPES[dtype_code])
            count = 1
            for d in dims:
                count *= d
            expected = count * dtype.itemsize
            if expected > MAX_ARRAY_BYTES:
                raise InputError(f"{path}: header declares {list(dims)} ({expected} bytes), "
                                 f"more than the {MAX_ARRAY_BYTES} allowed")
            payload = fh.read(expected + 1)
    except InputError:
        raise
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"{path}: unreadable ({str(exc).splitlines()[0][:100]})") from None
    if len(payload) != expected:
        more = "more" if len(payload) > expected else "less"
        raise InputError(f"{path}: header declares {list(dims)} ({expected} data bytes) but the file holds "
                         f"{more}; the file is truncated or not IDX")
    return np.frombuffer(payload, dtype=dtype).reshape(dims)


def load_idx_folder(folder: Path, input_shape, units: int | None = None) -> Dataset:
    found = {key: _find_idx(folder, names) for key, names in IDX_NAMES.items()}
    missing = [IDX_NAMES[k][0] for k, p in found.items() if p is None]
    if missing:
        raise InputError(f"{folder}: MNIST IDX folder is missing {', '.join(missing)} (or its .gz)")
    arrays = {k: read_idx(p, 3 if k.startswith("x") else 1) for k, p in found.items()}
    for split in ("train", "test"):
        n_x, n_y = len(arrays[f"x_{split}"]), len(arrays[f"y_{split}"])
        if n_x != n_y:
            raise InputError(f"{found[f'y_{split}']}: {n_y} labels for {n_x} images in {found[f'x_{split}'].name}")
    return _array_dataset(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                          input_shape, f"MNIST IDX {folder}", units)


# ---------------------------------------------------------------- the front door

def load_source(source: str, graph, cache: bool = True, strict: bool = True) -> Dataset:
    """Parse ``--data SOURCE`` and load it for this graph; then :func:`check_fits`. The spec's
    output is checked first: it bounds the labels before any image is converted. Image files are
    decoded now with ``cache`` (arrays), else streamed (:class:`.stream.ImageFiles`); an unreadable
    one is an error with ``strict``, else skipped and named."""
    from .cifar import cifar_layout, read_cifar, refuse_pickled
    from .folders import image_dataset
    from .segmentation import is_segmentation_folder, load_segmentation

    if is_map_output(graph):
        path = Path(source)
        if not path.is_dir() or not is_segmentation_folder(path):
            raise InputError(f"{source}: the spec's output is a {list(graph.output_shape)} map (segmentation), which "
                             f"trains on a folder holding images/ and masks/ (the same file stems, masks of class "
                             f"indices)")
        data = load_segmentation(path, graph.input_shape, graph.output_shape, cache, strict)
        if tuple(data.x_train.shape[1:]) != tuple(graph.input_shape):
            raise InputError(f"{data.source}: images are {list(data.x_train.shape[1:])} but the spec's input is "
                             f"{list(graph.input_shape)}")
        return data
    units = class_units(graph)
    if source == "digits":
        data = load_digits_dataset(graph.input_shape)
    else:
        path = Path(source)
        if not path.exists():
            raise InputError(f"{source}: no such data source (expected 'digits', an MNIST .npz, "
                             f"a folder of MNIST IDX files, an image folder or a path,label .csv)")
        if not path.is_file() and not path.is_dir():
            raise InputError(f"{source}: not a regular file or folder (a device or pipe?)")
        if path.is_file() and path.suffix.lower() == ".csv":
            data = image_dataset(path, graph.input_shape, graph.classes, cache, strict)
        elif path.is_file():
            if path.suffix.lower() != ".npz":
                raise InputError(f"{source}: a data file must be an MNIST-layout .npz or a path,label .csv; "
                                 f"for IDX files or images, give their folder")
            data = load_npz(path, graph.input_shape, units)
        elif cifar_layout(path):
            *arrays, names, name = read_cifar(path)
            data = _array_dataset(*arrays, graph.input_shape, f"{name} binary {path}", units)
            data = replace(data, labels=names[:len(data.labels)])
        elif is_idx_folder(path):
            data = load_idx_folder(path, graph.input_shape, units)
        else:
            refuse_pickled(path)
            if is_segmentation_folder(path):
                raise InputError(f"{source}: holds images/ and masks/ (a segmentation source), but the spec's output "
                                 f"is {list(graph.output_shape)}, not a [K, H, W] map of class scores")
            data = image_dataset(path, graph.input_shape, graph.classes, cache, strict)
    check_fits(data, graph)
    return data


def is_map_output(graph) -> bool:
    """True for a spec whose output is a [K, H, W] map of class scores (K >= 2): a segmentation."""
    out = graph.output_shape
    return out is not None and len(out) == 3 and out[0] >= 2


def class_units(graph) -> int:
    """The spec's number of class scores; one line where its output is not a vector of two or more."""
    out = graph.output_shape
    if out is None or len(out) != 1:
        shape = "?" if out is None else "[" + ", ".join(map(str, out)) + "]"
        raise UsageError(f"{graph.file}: the spec's output is {shape}; training needs one score per class "
                         f"(end with flatten or global_avgpool2d, then dense), or a [K, H, W] map of them "
                         f"(segmentation)")
    units = out[0]
    if units < 2:
        raise UsageError(f"{graph.file}: the spec's output has {units} unit; classification needs at least 2")
    return units


def check_fits(data: Dataset, graph) -> None:
    """The data must fit the spec before a single step is taken: one line naming what does not;
    and it must hold two classes or more (one class trains to an accuracy of 1.0 that means nothing)."""
    import numpy as np

    units = class_units(graph)
    present = np.unique(data.y_train)
    if len(present) < 2:
        label = data.labels[int(present[0])] if len(present) and int(present[0]) < len(data.labels) else "?"
        raise InputError(f"{data.source}: every training image is of one class ('{label}'); a classifier needs "
                         f"images of at least two (with one, accuracy 1.0 means nothing)")
    if tuple(data.x_train.shape[1:]) != tuple(graph.input_shape):
        raise InputError(f"{data.source}: images are {list(data.x_train.shape[1:])} but the spec's input is "
                         f"{list(graph.input_shape)}")
    if data.num_classes > units:
        raise InputError(f"{data.source}: {data.num_classes} classes (labels 0..{data.num_classes - 1}) but the "
                         f"spec's output has only {units} units; labels out of range (or change the last "
                         f"dense layer to {data.num_classes})")
