"""CIFAR-10/100 binary batches: read by their fixed record layout (sizes and labels checked), never
unpickled; the pickled 'python version' is refused, naming the binary download."""
from __future__ import annotations

import numpy as np
import pytest

import cnnspec
from cnnspec.cli import main
from cnnspec.data.sources import load_source
from cnnspec.errors import InputError

SPEC = """cnnspec: 1
name: cifar
input: [3, 32, 32]
layers:
  - conv2d: {filters: 4, kernel: 3, stride: 2, activation: relu}
  - global_avgpool2d
  - dense: UNITS
"""
NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def graph(units=10):
    return cnnspec.loads(SPEC.replace("UNITS", str(units))).graph


def records(n, label_bytes, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10 if label_bytes == 1 else 100, (n, label_bytes), dtype=np.uint8)
    labels[:, -1] = np.arange(n) % (10 if label_bytes == 1 else 100)
    pixels = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    return np.concatenate([labels, pixels], axis=1), labels, pixels


def write_cifar10(folder, n=12):
    folder.mkdir(parents=True, exist_ok=True)
    kept = {}
    for i, name in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
        rows, labels, pixels = records(n, 1, i)
        (folder / name).write_bytes(rows.tobytes())
        kept[name] = (labels[:, 0], pixels)
    (folder / "batches.meta.txt").write_text("\n".join(NAMES) + "\n\n")
    return kept


def test_cifar10_records_are_read_by_their_layout(tmp_path):
    kept = write_cifar10(tmp_path / "c10")
    data = load_source(str(tmp_path / "c10"), graph())
    assert data.x_train.shape == (60, 3, 32, 32) and data.x_test.shape == (12, 3, 32, 32)
    assert data.labels == tuple(NAMES) and "CIFAR-10 binary" in data.source
    labels, pixels = kept["data_batch_2.bin"]
    assert np.array_equal(data.y_train[12:24], labels)
    red_plane_of_first = pixels[0, :1024].reshape(32, 32) / 255.0  # 1024 red, then green, then blue
    assert np.allclose(data.x_train[12, 0], red_plane_of_first)
    assert np.allclose(data.x_train[12, 2], pixels[0, 2048:].reshape(32, 32) / 255.0)


def test_cifar100_uses_the_fine_label(tmp_path):
    folder = tmp_path / "c100"
    folder.mkdir()
    train, labels, _ = records(30, 2, 0)
    (folder / "train.bin").write_bytes(train.tobytes())
    (folder / "test.bin").write_bytes(records(10, 2, 1)[0].tobytes())
    data = load_source(str(folder), graph(100))
    assert np.array_equal(data.y_train, labels[:, 1]) and len(data.labels) == 30


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:-5], "not a whole number of 3073-byte CIFAR records"),
    (lambda b: bytes([12]) + b[1:], "label 12 is out of range for 10 classes"),
])
def test_a_damaged_batch_is_one_line_naming_it(tmp_path, damage, message):
    write_cifar10(tmp_path / "c10")
    bad = tmp_path / "c10" / "data_batch_3.bin"
    bad.write_bytes(damage(bad.read_bytes()))
    with pytest.raises(InputError, match=message) as info:
        load_source(str(tmp_path / "c10"), graph())
    assert str(bad) in str(info.value)


def test_a_missing_batch_is_named(tmp_path):
    write_cifar10(tmp_path / "c10")
    (tmp_path / "c10" / "test_batch.bin").unlink()
    with pytest.raises(InputError, match="missing test_batch.bin"):
        load_source(str(tmp_path / "c10"), graph())


@pytest.mark.parametrize("files, download", [(("data_batch_1", "batches.meta", "test_batch"), "cifar-10-binary.tar.gz"),
                                             (("train", "test", "meta"), "cifar-100-binary.tar.gz")])
def test_the_pickled_python_version_is_refused_never_unpickled(tmp_path, files, download):
    import pickle

    class Boom:
        def __reduce__(self):
            return (open, (str(tmp_path / "EXECUTED"), "w"))

    folder = tmp_path / "py"
    folder.mkdir()
    for name in files:
        (folder / name).write_bytes(pickle.dumps(Boom()))
    with pytest.raises(InputError, match=f"never unpickles.*binary version \\({download}\\)"):
        load_source(str(folder), graph())
    assert not (tmp_path / "EXECUTED").exists()


@pytest.mark.torch
@pytest.mark.slow
def test_train_on_a_cifar10_binary_folder(tmp_path):
    write_cifar10(tmp_path / "c10", n=8)
    (tmp_path / "spec.yaml").write_text(SPEC.replace("UNITS", "10"))
    assert main(["train", str(tmp_path / "spec.yaml"), "--data", str(tmp_path / "c10"), "--epochs", "1",
                 "--val-fraction", "0", "--quiet", "-o", str(tmp_path / "o")]) == 0
