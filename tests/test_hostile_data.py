"""Hostile corpus for training data (issue 13): one class is refused, labels are bounded by the
spec before anything large exists, every .npz member's header is checked before its array is
loaded, and memory is counted as float32 (four bytes a value, and a copy), with the figure."""
import io
import os
import tracemalloc
import zipfile

import numpy as np
import pytest
from PIL import Image

import cnnspec
import cnnspec.data.sources
import cnnspec.graph.resources
from cnnspec.data.sources import load_source
from cnnspec.errors import InputError


def graph(units=10, input_shape=(1, 8, 8)):
    c, h, w = input_shape
    return cnnspec.loads(f"cnnspec: 1\nname: t\ninput: [{c}, {h}, {w}]\nlayers:\n  - flatten\n  - dense: {units}\n").graph


def arrays(n=20, labels=None, size=8):
    rng = np.random.default_rng(0)
    y = np.arange(n) % 10 if labels is None else np.asarray(labels)
    return {"x_train": rng.integers(0, 256, (n, size, size), dtype=np.uint8), "y_train": y.astype(np.int64),
            "x_test": rng.integers(0, 256, (n // 2, size, size), dtype=np.uint8),
            "y_test": (np.arange(n // 2) % 10).astype(np.int64) if labels is None else y[: n // 2].astype(np.int64)}


def npz(path, members: dict):
    """An .npz written member by member: arrays through numpy, bytes as they are (a lying header)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, value in members.items():
            if isinstance(value, bytes):
                zf.writestr(f"{name}.npy", value)
            else:
                buf = io.BytesIO()
                np.save(buf, value, allow_pickle=True)
                zf.writestr(f"{name}.npy", buf.getvalue())
    return path


def header(shape, descr="<f4", payload=b"\0" * 64) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue() + payload


# ---------------------------------------------------------------- one class

def test_an_image_folder_with_one_class_is_refused_before_decoding(tmp_path, monkeypatch):
    (tmp_path / "pics" / "cat").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "pics" / "cat" / f"{i}.png")
    monkeypatch.setattr(cnnspec.data.sources, "load_image", lambda *a: pytest.fail("decoded before refusing"))
    with pytest.raises(InputError) as info:
        load_source(str(tmp_path / "pics"), graph(units=2))
    assert str(info.value) == (f"{tmp_path}/pics: only one class ('cat'); a classifier needs images of at least two "
                               f"(with one, every answer is right and accuracy 1.0 means nothing)")


@pytest.mark.parametrize("label", [0, 5])
def test_arrays_of_one_class_are_refused(tmp_path, label):
    path = npz(tmp_path / "one.npz", arrays(labels=[label] * 20))
    with pytest.raises(InputError) as info:
        load_source(str(path), graph())
    assert str(info.value) == (f"{path}: every training image is of one class ('{label}'); a classifier needs "
                               f"images of at least two (with one, accuracy 1.0 means nothing)")


# ---------------------------------------------------------------- labels before anything large

@pytest.mark.parametrize("units,label,words", [
    (10, 10 ** 9, "1,000,000,001 classes (labels 0..1,000,000,000) but the spec's output has only 10 units"),
    (10, 10, "11 classes (labels 0..10) but the spec's output has only 10 units"),
])
def test_labels_are_checked_against_the_output_before_anything_is_allocated(tmp_path, monkeypatch, units, label, words):
    data = arrays()
    data["y_train"][3] = label
    path = npz(tmp_path / "labels.npz", data)
    monkeypatch.setattr(cnnspec.data.sources, "_as_nchw", lambda *a: pytest.fail("images converted before labels checked"))
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as info:
            load_source(str(path), graph(units))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert words in str(info.value) and "\n" not in str(info.value)
    assert peak < 20 * 2 ** 20  # a label of 10^9 named a billion classes: gigabytes, before


def test_labels_without_a_spec_are_bounded_too(tmp_path):
    data = arrays()
    data["y_train"][0] = 10 ** 9
    with pytest.raises(InputError, match=r"cnnspec takes at most 1,000,000 classes"):
        cnnspec.data.sources._array_dataset(*(data[k] for k in cnnspec.data.sources.NPZ_ARRAYS), (1, 8, 8), "labels")


# ---------------------------------------------------------------- .npz member headers

def _good():
    return arrays()


NPZ_MEMBERS = [
    # (id, members replaced, the words of the one line)
    ("x-declares-1e12", {"x_train": header((10 ** 12, 8, 8))},
     "(x_train): the .npy header declares [1000000000000, 8, 8] float32 (256,000,000,000,000 bytes) but the file "
     "holds less (64 bytes)"),
    ("y-declares-1e12", {"y_train": header((10 ** 12,), "<i8")}, "(y_train): the .npy header declares [1000000000000]"),
    ("declares-more-than-there-is", {"x_test": header((10, 8, 8), "|u1")}, "the file holds less (64 bytes)"),
    ("declares-less-than-there-is", {"x_test": header((1, 8, 8), "|u1", b"\0" * 100)}, "the file holds more (100 bytes)"),
    ("not-npy-at-all", {"x_train": b"hello, I am text"}, "(x_train): not a .npy array (no .npy header)"),
    ("malformed-header", {"x_train": b"\x93NUMPY\x01\x00\x10\x00{'descr': 1}    \n"}, "(x_train): not a .npy array ("),
    ("python-objects", {"y_train": np.array([object()] * 20, dtype=object)},
     "(y_train): holds Python objects: loading them means unpickling, and cnnspec never unpickles"),
]


@pytest.mark.parametrize("members,words", [c[1:] for c in NPZ_MEMBERS], ids=[c[0] for c in NPZ_MEMBERS])
def test_npz_member_headers_are_checked_before_loading(tmp_path, members, words):
    path = npz(tmp_path / "bad.npz", {**_good(), **members})
    with pytest.raises(InputError) as info:
        load_source(str(path), graph())
    text = str(info.value)
    assert text.startswith(f"{path}") and words in text and "\n" not in text, text


# ---------------------------------------------------------------- memory, as float32

def test_npz_memory_counts_float32_and_a_copy(tmp_path, monkeypatch):
    path = npz(tmp_path / "big.npz", arrays(n=2000, size=8))  # 192,000 uint8 values
    monkeypatch.setattr(cnnspec.graph.resources, "physical_memory", lambda: 2_000_000)
    # the raw arrays alone (192 KB and labels) fit in half of 2 MB; as float32 with a copy they do not
    with pytest.raises(InputError) as info:
        load_source(str(path), graph())
    assert str(info.value) == (f"{path}: its arrays (216,000 bytes) and their images as float32 (4 bytes a value, "
                               f"and a copy) need 1.67 MiB, more than half of this machine's 1.91 MiB of memory; "
                               f"refused before allocating")


def test_image_folder_memory_is_checked_before_decoding(tmp_path, monkeypatch):
    for name in ("cat", "dog"):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "pics" / name / f"{i}.png")
    monkeypatch.setattr(cnnspec.graph.resources, "physical_memory", lambda: 10_000)
    monkeypatch.setattr(cnnspec.data.sources, "load_image", lambda *a: pytest.fail("decoded before the memory check"))
    with pytest.raises(InputError, match=r"pics: 6 images of \[3, 64, 64\] as float32 \(decoded, stacked and split\) "
                                         r"need 864.00 KiB, more than half"):
        load_source(str(tmp_path / "pics"), graph(2, (3, 64, 64)))


def test_a_nan_image_in_a_folder_is_refused(tmp_path):
    for name in ("cat", "dog"):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for i in range(2):
            pixels = np.zeros((8, 8), np.float32)
            if name == "dog" and i == 1:
                pixels[2, 2] = np.nan
            Image.fromarray(pixels, mode="F").save(tmp_path / "pics" / name / f"{i}.tiff")
    with pytest.raises(InputError) as info:
        load_source(str(tmp_path / "pics"), graph(2))
    assert str(info.value) == f"{tmp_path}/pics/dog/1.tiff: the image holds NaN or infinite values"


def test_a_fifo_as_data_is_refused_not_read(tmp_path):
    fifo = tmp_path / "data.npz"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file or folder"):
        load_source(str(fifo), graph())
