"""Data sources for ``cnnspec train``: each loads into [N, C, H, W] float32 in [0, 1] with int labels,
and each refuses, in one line naming the file, what does not fit the spec or is not what it claims."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path
from dataclasses import replace

import numpy as np
import pytest

import cnnspec
from cnnspec.data.sources import check_fits, load_image, load_source, read_idx, stratified_split
from cnnspec.errors import InputError, UsageError

SPEC_DIR = Path(__file__).resolve().parent.parent / "specs"

MNIST_SPEC = """
cnnspec: 1
name: tiny-mnist
input: [1, 28, 28]
layers:
  - conv2d: {filters: 2, kernel: 3}
  - global_avgpool2d
  - dense: 10
"""


def spec(input_shape=(1, 28, 28), units=10, classes=None, tail="dense"):
    c, h, w = input_shape
    text = f"cnnspec: 1\nname: t\ninput: [{c}, {h}, {w}]\n"
    if classes:
        text += "classes: [" + ", ".join(f'"{x}"' for x in classes) + "]\n"
    text += "layers:\n  - conv2d: {filters: 2, kernel: 1}\n  - global_avgpool2d\n"
    if tail == "dense":
        text += f"  - dense: {units}\n"
    return cnnspec.loads(text).graph


def make_mnist_arrays(n_train=30, n_test=10, size=28, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
        "y_train": np.arange(n_train, dtype=np.uint8) % 10,
        "x_test": rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
        "y_test": np.arange(n_test, dtype=np.uint8) % 10,
    }


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(">u1").tobytes()


def write_idx_folder(folder, arrays, gz=False):
    names = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
    folder.mkdir(exist_ok=True)
    for key, name in names.items():
        data = idx_bytes(arrays[key])
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return folder


def write_image_folder(root, classes=("cat", "dog"), per_class=5, size=(12, 10), mode="RGB"):
    from PIL import Image

    rng = np.random.default_rng(1)
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            pixels = rng.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(pixels, mode).save(root / name / f"{i}.png")
    return root


# ---------------------------------------------------------------- digits

def test_digits_is_scaled_split_and_stratified():
    data = load_source("digits", spec((1, 8, 8)))
    assert data.x_train.shape[1:] == (1, 8, 8) and data.x_train.dtype == np.float32
    assert len(data.y_train) + len(data.y_test) == 1797
    assert 0.18 < len(data.y_test) / 1797 < 0.22
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0
    assert data.labels == tuple(str(i) for i in range(10))
    counts = np.bincount(data.y_test, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38  # every digit held out in proportion
    again = load_source("digits", spec((1, 8, 8)))
    assert np.array_equal(again.y_test, data.y_test) and np.array_equal(again.x_test, data.x_test)


def test_digits_are_scikit_learns_read_without_importing_it():
    """The shipped CSV read directly equals load_digits (values, dtypes), and reading it imports
    neither scikit-learn nor SciPy (a second of start-up in every process, every torchrun rank)."""
    import subprocess
    import sys

    from sklearn.datasets import load_digits

    from cnnspec.data.sources import _digits_arrays

    images, labels = _digits_arrays()
    bunch = load_digits()
    assert images.dtype == bunch.images.dtype and np.array_equal(images, bunch.images)
    assert labels.dtype == bunch.target.dtype and np.array_equal(labels, bunch.target)
    probe = ("import sys; from cnnspec.data.sources import load_source; import cnnspec; "
             f"load_source('digits', cnnspec.load({str(SPEC_DIR / 'digits.yaml')!r}).graph); "
             "print(sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_shipped_digits_spec_fits_digits():
    data = load_source("digits", cnnspec.load("specs/digits.yaml").graph)
    assert data.num_classes == 10


@pytest.mark.parametrize("input_shape", [(1, 28, 28), (3, 8, 8)])
def test_digits_refuses_a_spec_of_another_shape(input_shape):
    with pytest.raises(InputError, match=r"\[1, 8, 8\]"):
        load_source("digits", spec(input_shape))


def test_stratified_split_keeps_every_class_and_is_fixed():
    labels = np.array([0] * 10 + [1] * 5 + [2] * 2 + [3])
    train, test = stratified_split(labels)
    assert sorted(set(train) | set(test)) == list(range(len(labels))) and not set(train) & set(test)
    assert [int((labels[test] == c).sum()) for c in range(4)] == [2, 1, 1, 0]
    assert np.array_equal(stratified_split(labels)[1], test)


# ---------------------------------------------------------------- mnist.npz

def test_npz_loads_in_keras_layout(tmp_path):
    arrays = make_mnist_arrays()
    path = tmp_path / "mnist.npz"
    np.savez_compressed(path, **arrays)
    data = load_source(str(path), spec())
    assert data.x_train.shape == (30, 1, 28, 28) and data.x_test.shape == (10, 1, 28, 28)
    assert np.allclose(data.x_train[3, 0], arrays["x_train"][3] / 255.0)
    assert data.y_train.dtype == np.int64 and data.labels == tuple(str(i) for i in range(10))


def test_npz_accepts_channels_last(tmp_path):
    arrays = make_mnist_arrays(size=8)
    arrays["x_train"] = np.repeat(arrays["x_train"][..., None], 3, axis=3)
    arrays["x_test"] = np.repeat(arrays["x_test"][..., None], 3, axis=3)
    path = tmp_path / "rgb.npz"
    np.savez(path, **arrays)
    data = load_source(str(path), spec((3, 8, 8)))
    assert data.x_train.shape == (30, 3, 8, 8)
    assert np.allclose(data.x_train[0, 2], arrays["x_train"][0, :, :, 2] / 255.0)


def _npz(tmp_path, **changes):
    arrays = {**make_mnist_arrays(), **changes}
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize("changes, graph_kw, message", [
    ({"y_test": None}, {}, "missing array.*y_test"),
    ({}, {"input_shape": (3, 28, 28)}, "1 channel.*spec's input has 3"),
    ({}, {"input_shape": (1, 32, 32)}, "28x28 but the spec's input is 32x32"),
    ({}, {"units": 5}, "10 classes.*only 5 units"),
    ({"y_train": np.arange(30) % 10 - 1}, {}, "label -1 is negative"),
    ({"y_train": np.arange(29) % 10}, {}, r"labels have shape \[29\]"),
    ({"y_train": np.full(30, 0.5)}, {}, "integer class indices"),
    ({"x_train": np.zeros((30, 28, 28, 2, 2))}, {}, "expected"),
    ({"x_test": np.full((10, 28, 28), np.nan, dtype=np.float32)}, {}, "NaN"),
])
def test_npz_that_does_not_fit_is_one_clear_error(tmp_path, changes, graph_kw, message):
    path = _npz(tmp_path, **changes)
    with pytest.raises(InputError, match=message) as info:
        load_source(path, spec(**graph_kw))
    assert "\n" not in str(info.value)
    assert "bad.npz" in str(info.value)


def test_npz_with_pickled_objects_is_refused_not_unpickled(tmp_path):
    arrays = make_mnist_arrays()
    arrays["y_train"] = np.array([object()] * 30, dtype=object)
    path = tmp_path / "evil.npz"
    np.savez(path, **arrays)
    with pytest.raises(InputError, match="evil.npz.*unpickling"):
        load_source(str(path), spec())


def test_npz_that_is_not_a_zip(tmp_path):
    path = tmp_path / "fake.npz"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(InputError, match="fake.npz: not an .npz"):
        load_source(str(path), spec())


# ---------------------------------------------------------------- IDX

@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_loads_plain_and_gzipped(tmp_path, gz):
    arrays = make_mnist_arrays()
    folder = write_idx_folder(tmp_path / "mnist", arrays, gz=gz)
    data = load_source(str(folder), spec())
    assert data.x_train.shape == (30, 1, 28, 28)
    assert np.allclose(data.x_test[4, 0], arrays["x_test"][4] / 255.0)
    assert np.array_equal(data.y_train, arrays["y_train"])


def _corrupt(good: bytes, how: str) -> bytes:
    return {
        "magic": b"\x01\x02" + good[2:],
        "type": good[:2] + b"\x42" + good[3:],
        "ndim": good[:3] + b"\x02" + good[4:],
        "truncated-header": good[:6],
        "truncated-data": good[:-5],
        "extra-data": good + b"\x00" * 3,
        "huge-dims": good[:4] + struct.pack(">3I", 0xFFFFFFFF, 0xFFFFFFFF, 28) + good[16:],
        "empty": b"",
    }[how]


@pytest.mark.parametrize("how, message", [
    ("magic", "bad magic"), ("type", "unknown IDX data type"), ("ndim", "2 dimension"),
    ("truncated-header", "header is truncated"), ("truncated-data", "holds less"),
    ("extra-data", "holds more"), ("huge-dims", "more than the"), ("empty", "bad magic"),
])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_corrupted_header_names_the_file(tmp_path, how, message, gz):
    good = idx_bytes(make_mnist_arrays()["x_train"])
    bad = _corrupt(good, how)
    path = tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(bad) if gz else bad)
    with pytest.raises(InputError, match=message) as info:
        read_idx(path, 3)
    assert str(path) in str(info.value)


def test_idx_label_count_must_match_images(tmp_path):
    arrays = make_mnist_arrays()
    arrays["y_test"] = arrays["y_test"][:7]
    folder = write_idx_folder(tmp_path / "m", arrays)
    with pytest.raises(InputError, match="7 labels for 10 images"):
        load_source(str(folder), spec())


def test_idx_folder_missing_a_file(tmp_path):
    folder = write_idx_folder(tmp_path / "m", make_mnist_arrays())
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(InputError, match="missing t10k-labels-idx1-ubyte"):
        load_source(str(folder), spec())


def test_gzip_that_is_not_gzip(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(idx_bytes(make_mnist_arrays()["x_train"]))
    with pytest.raises(InputError, match="unreadable"):
        read_idx(path, 3)


# ---------------------------------------------------------------- image folders

def test_image_folder_resizes_converts_and_labels_by_sorted_folder(tmp_path):
    root = write_image_folder(tmp_path / "pics", classes=("gangue", "coal"), per_class=5)
    data = load_source(str(root), spec((1, 6, 7), units=2))
    assert data.labels == ("coal", "gangue")
    assert data.x_train.shape[1:] == (1, 6, 7) and data.x_train.dtype == np.float32
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    assert len(data.y_train) + len(data.y_test) == 10 and sorted(set(data.y_test)) == [0, 1]


def test_image_folder_uses_the_spec_class_order(tmp_path):
    root = write_image_folder(tmp_path / "pics", classes=("cat", "dog"), per_class=3)
    data = load_source(str(root), spec((3, 4, 4), units=3, classes=("dog", "bird", "cat")))
    assert data.labels == ("dog", "bird", "cat")
    assert set(data.y_train) == {0, 2}


def test_image_folder_class_not_in_spec(tmp_path):
    root = write_image_folder(tmp_path / "pics", classes=("cat", "emu"), per_class=3)
    with pytest.raises(InputError, match="'emu' is not one of the spec's classes"):
        load_source(str(root), spec((3, 4, 4), units=2, classes=("cat", "dog")))


def test_load_image_matches_pil_preprocessing(tmp_path):
    from PIL import Image

    pixels = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3) * 2
    Image.fromarray(pixels, "RGB").save(tmp_path / "a.png")
    rgb = load_image(tmp_path / "a.png", 3, 4, 6)
    assert rgb.shape == (3, 4, 6) and np.allclose(rgb, pixels.transpose(2, 0, 1) / 255.0)
    gray = load_image(tmp_path / "a.png", 1, 2, 3)
    expected = np.asarray(Image.fromarray(pixels, "RGB").convert("L").resize((3, 2), Image.BILINEAR)) / 255.0
    assert gray.shape == (1, 2, 3) and np.allclose(gray[0], expected)


def test_training_and_cnnspec_run_preprocess_images_alike(tmp_path):
    """An exported model must see at run time what it was trained on."""
    from PIL import Image

    from cnnspec import runner

    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (13, 17, 3), dtype=np.uint8), "RGB").save(tmp_path / "p.png")
    Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), "L").save(tmp_path / "g.png")
    for name in ("p.png", "g.png"):
        for chw in ((1, 8, 8), (3, 9, 5)):
            ran, _ = runner._load_image(tmp_path / name, chw)
            assert np.array_equal(ran[0], load_image(tmp_path / name, *chw))


@pytest.mark.parametrize("problem, message", [
    ("text", "not an image file"),
    ("truncated", "unreadable or truncated"),
    ("empty-class", "holds no images"),
    ("stray", "beside the class subfolders"),
    ("too-few", "too few images"),
])
def test_image_folder_problems_name_the_file(tmp_path, problem, message):
    root = write_image_folder(tmp_path / "pics", per_class=1 if problem == "too-few" else 4)
    bad = None
    if problem == "text":
        bad = root / "dog" / "notes.png"
        bad.write_text("hello")
    elif problem == "truncated":
        bad = root / "cat" / "0.png"
        bad.write_bytes(bad.read_bytes()[:60])
    elif problem == "empty-class":
        bad = root / "emu"
        bad.mkdir()
    elif problem == "stray":
        (root / "readme.txt").write_text("x")
    with pytest.raises(InputError, match=message) as info:
        load_source(str(root), spec((3, 8, 8), units=3))
    if bad is not None:
        assert str(bad) in str(info.value)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    from PIL import Image

    import cnnspec.files.images

    Image.new("L", (100, 100)).save(tmp_path / "big.png")
    monkeypatch.setattr(cnnspec.files.images, "MAX_IMAGE_PIXELS", 5000)
    with pytest.raises(InputError, match="big.png.*decompression bomb"):
        load_image(tmp_path / "big.png", 1, 8, 8)


def test_image_folder_needs_one_or_three_channels(tmp_path):
    root = write_image_folder(tmp_path / "pics")
    with pytest.raises(InputError, match="1 or 3 input channels"):
        load_source(str(root), spec((2, 8, 8), units=2))


# ---------------------------------------------------------------- the front door

def test_unknown_source(tmp_path):
    with pytest.raises(InputError, match="no such data source"):
        load_source(str(tmp_path / "nope"), spec())
    (tmp_path / "x.txt").write_text("1,2")
    with pytest.raises(InputError, match="must be an MNIST-layout .npz or a path,label .csv"):
        load_source(str(tmp_path / "x.txt"), spec())


def test_spec_without_a_class_vector_cannot_train():
    graph = spec((1, 8, 8), tail=None)
    graph = replace(graph, nodes=graph.nodes[:1], outputs=(graph.nodes[0].name,))  # ends in a feature map
    data = load_source("digits", spec((1, 8, 8)))
    with pytest.raises(UsageError, match="one score per class"):
        check_fits(data, graph)
