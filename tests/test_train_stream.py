"""Image files streamed through the backends' data pipelines (a DataLoader with worker processes, a
tf.data pipeline): the same bytes as the in-memory path whatever the worker count, the three layouts
(class folders, train/ + val/ (+ test/), a path,label CSV), unreadable files skipped and named (or
refused with --strict), a dying worker as one error, a kill -9 resumed exactly, and memory that does
not grow with the folder."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import cnnspec
from cnnspec.cli import main
from cnnspec.data.sources import load_source
from cnnspec.data.stream import BatchReader, ImageFiles
from cnnspec.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
SPEC = """cnnspec: 1
name: stream
input: [3, 8, 8]
layers:
  - conv2d: {filters: 6, kernel: 3, padding: same, activation: relu}
  - batchnorm
  - maxpool2d: 2
  - flatten
  - dropout: 0.1
  - dense: 3
"""
CLASSES = ("blue", "green", "red")


def write_images(root: Path, n_per_class: int, size: int = 8, seed: int = 0) -> Path:
    """Small PNGs whose colour says the class (cheap to write: 8x8)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            pixels = (rng.random((size, size, 3)) * 90).astype(np.uint8)
            pixels[..., 2 - c] += 140
            Image.fromarray(pixels).save(root / name / f"{i:05d}.png")
    return root


@pytest.fixture(scope="session")
def pics(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("stream") / "pics", 40)


def _train(tmp_path, *args):
    (tmp_path / "spec.yaml").write_text(SPEC)
    out = tmp_path / ("out" + str(abs(hash(args)) % 10**8))
    code = main(["train", str(tmp_path / "spec.yaml"), "--epochs", "2", "--batch-size", "16", "--seed", "3",
                 "--quiet", "-o", str(out), *args])
    assert code == 0
    return out, json.loads((out / "metrics.json").read_text())


def test_image_files_stay_files_until_a_batch_reads_them(pics):
    graph = cnnspec.loads(SPEC).graph
    data = load_source(str(pics), graph, cache=False, strict=False)
    cached = load_source(str(pics), graph)
    assert isinstance(data.x_train, ImageFiles) and data.streamed and "streamed" in data.describe()
    assert data.x_train.shape == cached.x_train.shape
    assert np.array_equal(data.y_train, cached.y_train) and np.array_equal(data.y_test, cached.y_test)
    assert np.array_equal(data.x_test[np.arange(5)], cached.x_test[:5])
    images, targets, kept, error = BatchReader(data.x_train, data.y_train, (np.array([3, 1, 4]),))[0]
    assert error == "" and kept.all() and np.array_equal(images, cached.x_train[[3, 1, 4]])


@pytest.mark.torch
def test_streamed_is_the_cached_run_byte_for_byte_whatever_the_workers(tmp_path, pics):
    runs = [_train(tmp_path, "--data", str(pics), "--augment", "crop,flip", *extra)
            for extra in (["--cache"], ["--workers", "0"], ["--workers", "2"])]
    weights = {(out / "weights.safetensors").read_bytes() for out, _ in runs}
    assert len(weights) == 1
    assert runs[0][1]["history"][-1]["test_loss"] == runs[2][1]["history"][-1]["test_loss"]


@pytest.mark.keras
@pytest.mark.slow
@pytest.mark.xdist_group("keras")
def test_keras_reads_files_through_tf_data_with_the_cached_bytes(tmp_path, pics):
    runs = [_train(tmp_path, "--backend", "keras", "--data", str(pics), "--augment", "flip", *extra)
            for extra in (["--cache"], ["--workers", "2"])]
    assert len({(out / "weights.safetensors").read_bytes() for out, _ in runs}) == 1


@pytest.mark.torch
def test_train_val_test_folders_are_used_and_said(tmp_path, pics, capsys):
    root = tmp_path / "split"
    for split, n in (("train", 24), ("val", 8), ("test", 8)):
        for name in CLASSES:
            (root / split / name).mkdir(parents=True)
            for f in sorted((pics / name).iterdir())[:n]:
                shutil.copy(f, root / split / name / f.name)
    graph = cnnspec.loads(SPEC).graph
    data = load_source(str(root), graph, cache=False)
    assert len(data.y_train) == 72 + 24 and len(data.y_test) == 24 and len(data.val_index) == 24
    assert "val/ chooses the best epoch" in data.describe()
    _, metrics = _train(tmp_path, "--data", str(root), "--val-fraction", "0.2")
    assert metrics["validation_images"] == 24 and metrics["train_images"] == 72 and metrics["test_images"] == 24
    shutil.rmtree(root / "test")  # train/ + val/: val/ is the held-out split, validation carved from train/
    data = load_source(str(root), graph, cache=False)
    assert len(data.y_test) == 24 and data.val_index is None and "val/ is the held-out split" in data.describe()


def test_a_csv_of_paths_and_labels(tmp_path, pics):
    rows = ["path,label"] + [f"{pics}/{name}/{i:05d}.png,{name}" for name in CLASSES for i in range(10)]
    (tmp_path / "rel").mkdir()
    shutil.copy(pics / "red" / "00000.png", tmp_path / "rel" / "a.png")
    rows.append("rel/a.png,red")
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    data = load_source(str(tmp_path / "data.csv"), cnnspec.loads(SPEC).graph, cache=False)
    assert data.labels == CLASSES and len(data.y_train) + len(data.y_test) == 31
    assert str(tmp_path / "rel" / "a.png") in data.x_train.paths + data.x_test.paths
    (tmp_path / "bad.csv").write_text("a.png,red,extra\n")
    with pytest.raises(InputError, match="row 1 .*every row is path,label"):
        load_source(str(tmp_path / "bad.csv"), cnnspec.loads(SPEC).graph)


@pytest.fixture()
def broken(tmp_path, pics):
    root = tmp_path / "broken"
    shutil.copytree(pics, root)
    (root / "red" / "00003.png").write_text("not a png")
    truncated = root / "green" / "00007.png"
    truncated.write_bytes(truncated.read_bytes()[:50])
    return root, [str(root / "green" / "00007.png"), str(root / "red" / "00003.png")]


@pytest.mark.torch
@pytest.mark.parametrize("mode", ["--workers=2", "--cache"])
def test_unreadable_images_are_skipped_counted_and_named(tmp_path, broken, mode):
    root, bad = broken
    _, metrics = _train(tmp_path, "--data", str(root), mode)
    assert metrics["unreadable_images"] == 2 and metrics["unreadable_files"] == bad


@pytest.mark.torch
@pytest.mark.parametrize("mode", ["--workers=2", "--cache"])
def test_strict_refuses_an_unreadable_image_in_one_line(tmp_path, broken, capsys, mode):
    root, bad = broken
    (tmp_path / "spec.yaml").write_text(SPEC)
    code = main(["train", str(tmp_path / "spec.yaml"), "--data", str(root), "--epochs", "1", "--strict", mode,
                 "--quiet", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and any(b in err for b in bad), err


@pytest.mark.torch
def test_a_dying_worker_is_one_error(tmp_path, pics, capsys, monkeypatch):
    import torch.utils.data

    real = ImageFiles.decode

    def dying(self, i):
        if torch.utils.data.get_worker_info() is not None:
            os._exit(3)
        return real(self, i)

    monkeypatch.setattr(ImageFiles, "decode", dying)
    (tmp_path / "spec.yaml").write_text(SPEC)
    code = main(["train", str(tmp_path / "spec.yaml"), "--data", str(pics), "--epochs", "1", "--workers", "2",
                 "--quiet", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "data pipeline failed" in err and "--workers 0" in err and len(err.splitlines()) == 1


@pytest.mark.torch
@pytest.mark.slow
def test_streamed_run_killed_in_epoch_3_resumes_to_the_same_bytes(tmp_path, pics):
    from test_train_resume import _kill_and_resume

    args = ["--data", str(pics), "--epochs", "4", "--batch-size", "12", "--optimizer", "sgd", "--lr", "0.05",
            "--schedule", "cosine", "--augment", "crop,flip", "--workers", "2", "--seed", "2", "--quiet"]
    _kill_and_resume(tmp_path, "torch", args=args, spec=SPEC)


PEAK = textwrap.dedent("""
    import resource, sys
    from cnnspec.cli import main
    code = main(sys.argv[1:])
    print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
    sys.exit(code)
""")


def peak_rss_kb(tmp_path, folder, workers=2) -> int:
    (tmp_path / "peak.py").write_text(PEAK)
    (tmp_path / "spec.yaml").write_text(SPEC)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "backends")])}
    proc = subprocess.run([sys.executable, "peak.py", "train", "spec.yaml", "--data", str(folder), "--epochs", "1",
                           "--batch-size", "64", "--workers", str(workers), "--val-fraction", "0", "--quiet",
                           "-o", str(tmp_path / f"peak-{folder.name}")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return int(proc.stdout.split("PEAK")[1].split()[0])


@pytest.mark.torch
@pytest.mark.slow
def test_peak_memory_is_flat_in_the_folder_size(tmp_path):
    """6,000 images against 600 here (bench/bench_data.py --rss runs 20,000 against 2,000)."""
    small = write_images(tmp_path / "small", 200)
    large = write_images(tmp_path / "large", 2000)
    a, b = peak_rss_kb(tmp_path, small), peak_rss_kb(tmp_path, large)
    assert b <= 1.25 * a + 200 * 1024, (a, b)


@pytest.mark.torch
@pytest.mark.slow
def test_torchrun_streams_each_rank_its_share_with_the_cached_bytes(tmp_path, pics):
    (tmp_path / "spec.yaml").write_text(SPEC)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "backends")])}
    for name, extra in (("cached", ["--cache"]), ("streamed", ["--workers", "1"])):
        proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                               "-m", "cnnspec.cli", "train", "spec.yaml", "--data", str(pics), "--epochs", "2",
                               "--batch-size", "16", "--augment", "flip", "--quiet", "-o", name, *extra],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "cached" / "weights.safetensors").read_bytes() == \
        (tmp_path / "streamed" / "weights.safetensors").read_bytes()


@pytest.mark.torch
def test_eval_streams_the_held_out_files_to_the_runs_test_accuracy(tmp_path, pics):
    from cnnspec.training.evaluate import evaluate_model

    out, metrics = _train(tmp_path, "--data", str(pics), "--epochs", "1")
    result = evaluate_model(out / "model.onnx", str(pics), batch_size=7)  # chunks of 28 images
    assert result["images"] == metrics["test_images"] and result["unreadable_images"] == 0
    assert abs(result["accuracy"] - metrics["test_accuracy"]) < 1e-9


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF"])
def test_an_exif_orientation_is_still_applied(tmp_path, fmt):
    """load_image skips exif_transpose where no orientation can be (its cost per small image is
    more than the decode); where one is, it is applied."""
    from PIL import Image

    from cnnspec.files.images import load_image

    pixels = np.zeros((4, 8, 3), np.uint8)
    pixels[:, :4] = 255  # left half white: a landscape image
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees clockwise to view
    path = tmp_path / f"a.{fmt.lower()}"
    Image.fromarray(pixels).save(path, fmt, exif=exif.tobytes(), **({"quality": 100} if fmt == "JPEG" else {}))
    out = load_image(path, 1, 8, 4)  # portrait after the rotation: 8 high, 4 wide
    assert out.shape == (1, 8, 4) and out[0, :4].mean() > 0.8 and out[0, 4:].mean() < 0.2


@pytest.mark.torch
@pytest.mark.slow
def test_a_stuck_worker_is_one_error_not_a_hang(tmp_path, pics, capsys, monkeypatch):
    import time

    import cnnspec_torch.training
    import torch.utils.data

    real = ImageFiles.decode

    def stuck(self, i):
        if torch.utils.data.get_worker_info() is not None:
            time.sleep(3)
        return real(self, i)

    monkeypatch.setattr(ImageFiles, "decode", stuck)
    monkeypatch.setattr(cnnspec_torch.training, "DATA_TIMEOUT_SECONDS", 1)
    (tmp_path / "spec.yaml").write_text(SPEC)
    code = main(["train", str(tmp_path / "spec.yaml"), "--data", str(pics), "--epochs", "1", "--workers", "1",
                 "--quiet", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "timed out after 1 seconds" in err and len(err.splitlines()) == 1, err
