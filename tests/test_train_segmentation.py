"""Segmentation: images/ + masks/ (palette PNGs read as indices, nearest-neighbour resize, 255
ignored), crop and flip on images and masks together, per-pixel losses, pixel accuracy / IoU /
mIoU in train, eval and run --save; and a small U-Net reaching a hand-written PyTorch loop's mIoU."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import cnnspec
from cnnspec.cli import main
from cnnspec.data.segmentation import load_mask
from cnnspec.data.sources import load_source
from cnnspec.errors import InputError
from cnnspec.training.augment import Augmenter

UNET = """cnnspec: 1
name: tiny-unet
input: [3, 16, 16]
layers:
  - {conv2d: {filters: 16, kernel: 3, padding: same, activation: relu}, name: enc1}
  - {maxpool2d: 2, name: pool}
  - {conv2d: {filters: 32, kernel: 3, padding: same, activation: relu}, name: enc2}
  - {upsample2d: 2, name: up}
  - {concat: null, in: [up, enc1], name: cat}
  - {conv2d: {filters: 16, kernel: 3, padding: same, activation: relu}, name: dec}
  - {conv2d: {filters: 3, kernel: 1}, name: head}
"""
PALETTE = [0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * 759


def write_shapes(root: Path, n: int, size: int = 16, seed: int = 0) -> Path:
    """A square (class 1) and a disc (class 2) on noise; masks as palette PNGs (red and blue)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        img = rng.random((size, size, 3)) * 0.3
        mask = np.zeros((size, size), np.uint8)
        s = rng.integers(3, 6)
        y0, x0 = rng.integers(0, size - s, 2)
        mask[y0:y0 + s, x0:x0 + s] = 1
        img[y0:y0 + s, x0:x0 + s, 0] += 0.6
        r = rng.integers(2, 4)
        cy, cx = rng.integers(r, size - r, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        mask[disc] = 2
        img[disc, 2] += 0.6
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(root / "images" / f"{i:04d}.png")
        m = Image.fromarray(mask, "P")
        m.putpalette(PALETTE)
        m.save(root / "masks" / f"{i:04d}.png")
    return root


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return write_shapes(tmp_path_factory.mktemp("seg") / "shapes", 160)


def graph():
    return cnnspec.loads(UNET).graph


# ---------------------------------------------------------------- masks

def test_palette_masks_are_read_as_indices_and_resized_nearest(tmp_path):
    from PIL import Image

    mask = np.zeros((8, 8), np.uint8)
    mask[:, 4:] = 2
    mask[0, 0] = 255
    m = Image.fromarray(mask, "P")
    m.putpalette([10, 20, 30, 40, 50, 60, 70, 80, 90] + [0] * 759)  # colours that are not the indices
    m.save(tmp_path / "m.png")
    assert np.array_equal(load_mask(tmp_path / "m.png", 8, 8, 3), mask)
    small = load_mask(tmp_path / "m.png", 4, 4, 3)  # nearest: only ids that exist, never 1 between 0 and 2
    assert set(np.unique(small)) <= {0, 2, 255} and small.shape == (4, 4)
    Image.fromarray(mask, "L").save(tmp_path / "g.png")
    assert np.array_equal(load_mask(tmp_path / "g.png", 8, 8, 3), mask)


@pytest.mark.parametrize("content, message", [("rgb", "is RGB; map its colours to class indices"),
                                              ("class7", "holds class 7 but the spec's output has 3 classes")])
def test_a_mask_that_is_not_class_indices_is_one_line(tmp_path, content, message):
    from PIL import Image

    if content == "rgb":
        Image.new("RGB", (4, 4)).save(tmp_path / "m.png")
    else:
        Image.fromarray(np.full((4, 4), 7, np.uint8), "L").save(tmp_path / "m.png")
    with pytest.raises(InputError, match=message):
        load_mask(tmp_path / "m.png", 4, 4, 3)


def test_images_and_masks_pair_by_stem(tmp_path, shapes):
    data = load_source(str(shapes), graph(), cache=False)
    assert data.task == "segment" and len(data.y_train) == 128 and len(data.y_test) == 32
    assert [Path(p).stem for p in data.x_test.paths] == [Path(p).stem for p in data.y_test.paths]
    cached = load_source(str(shapes), graph())
    assert cached.y_train.dtype == np.uint8 and np.array_equal(cached.y_test[3], data.y_test[3])
    (shapes.parent / "lonely" / "images").mkdir(parents=True)
    (shapes.parent / "lonely" / "masks").mkdir()
    (shapes.parent / "lonely" / "images" / "a.png").write_bytes((shapes / "images" / "0000.png").read_bytes())
    with pytest.raises(InputError, match="1 image\\(s\\) without a mask of the same stem.*a.png"):
        load_source(str(shapes.parent / "lonely"), graph())


def test_crop_and_flip_move_masks_with_their_images():
    rng = np.random.default_rng(0)
    masks = rng.integers(0, 3, (16, 8, 8)).astype(np.uint8)
    images = np.repeat(masks[:, None].astype(np.float32) / 4 + 0.1, 3, axis=1)  # the image says its mask
    out, out_masks = Augmenter(("crop", "flip"), seed=1).batch(2, 5, images, masks)
    valid = out_masks != 255
    assert (out_masks == 255).any() and np.allclose(out[:, 0][valid], out_masks[valid] / 4 + 0.1)
    assert np.all(out[:, 0][~valid] == 0)  # the padding: zeros in the image, ignored in the mask
    again = Augmenter(("crop", "flip"), seed=1).batch(2, 5, images, masks)
    assert np.array_equal(again[1], out_masks)


@pytest.mark.parametrize("argv, message", [
    (["--augment", "affine"], "--augment affine would warp masks"),
    (["--label-smoothing", "0.1"], "--label-smoothing applies to classifiers"),
])
def test_options_that_mean_nothing_for_a_segmentation_are_refused(tmp_path, shapes, capsys, argv, message):
    (tmp_path / "u.yaml").write_text(UNET)
    assert main(["train", str(tmp_path / "u.yaml"), "--data", str(shapes), "--quiet", *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_classifier_refuses_a_segmentation_loss(tmp_path, capsys):
    spec = tmp_path / "c.yaml"
    spec.write_text("cnnspec: 1\nname: c\ninput: [1, 8, 8]\nlayers:\n  - flatten\n  - dense: 10\n")
    assert main(["train", str(spec), "--data", "digits", "--loss", "dice", "--quiet"]) == 2
    assert "--loss dice is for segmentation" in capsys.readouterr().err


# ---------------------------------------------------------------- training, eval, run --save

def _train_unet(tmp_path, shapes, *extra, epochs=6):
    (tmp_path / "u.yaml").write_text(UNET)
    out = tmp_path / "run"
    assert main(["train", str(tmp_path / "u.yaml"), "--data", str(shapes), "--epochs", str(epochs), "--lr", "0.01",
                 "--batch-size", "16", "--seed", "0", "--quiet", "-o", str(out), *extra]) == 0
    return out, json.loads((out / "metrics.json").read_text())


def hand_written_miou(shapes: Path, data, epochs: int, seed: int = 0) -> float:
    """The same U-Net written in plain PyTorch, trained by a plain loop on the same pairs (read with
    Pillow), the same optimiser, batch and epochs; mIoU on the same held-out pairs."""
    import torch
    from PIL import Image
    from torch import nn

    def read(paths_x, paths_y):
        xs = np.stack([np.asarray(Image.open(p).convert("RGB"), np.float32).transpose(2, 0, 1) / 255 for p in paths_x])
        ys = np.stack([np.asarray(Image.open(p)) for p in paths_y]).astype(np.int64)
        return torch.from_numpy(xs), torch.from_numpy(ys)

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc1, self.enc2 = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 32, 3, padding=1)
            self.dec, self.head = nn.Conv2d(48, 16, 3, padding=1), nn.Conv2d(16, 3, 1)

        def forward(self, x):
            e1 = torch.relu(self.enc1(x))
            e2 = torch.relu(self.enc2(nn.functional.max_pool2d(e1, 2)))
            up = nn.functional.interpolate(e2, scale_factor=2, mode="nearest")
            return self.head(torch.relu(self.dec(torch.cat([up, e1], 1))))

    x, y = read(data.x_train.paths, data.y_train.paths)
    xt, yt = read(data.x_test.paths, data.y_test.paths)
    torch.manual_seed(seed)
    model = UNet()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(16):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx], ignore_index=255).backward()
            opt.step()
    with torch.no_grad():
        pred = model(xt).argmax(1)
    ious = []
    for k in range(3):
        inter = ((pred == k) & (yt == k)).sum().item()
        union = ((pred == k) | (yt == k)).sum().item()
        if union:
            ious.append(inter / union)
    return float(np.mean(ious))


@pytest.mark.torch
@pytest.mark.slow
def test_a_small_unet_reaches_a_hand_written_loops_miou_and_eval_and_run_agree(tmp_path, shapes):
    """Acceptance: on the same generated shapes, epochs, optimiser and batch, cnnspec's mIoU is close
    to a plain PyTorch loop's (both learn the task: well above the 1/3 of predicting background);
    eval gives the run's test figures, and run --save writes the argmax as a palette PNG."""
    from PIL import Image

    from cnnspec.runner import run_model
    from cnnspec.training.evaluate import evaluate_model

    data = load_source(str(shapes), graph(), cache=False)
    out, m = _train_unet(tmp_path, shapes, "--val-fraction", "0", "--workers", "1", epochs=8)
    reference = hand_written_miou(shapes, data, epochs=8)
    assert reference > 0.6 and m["test_miou"] > 0.6
    assert abs(m["test_miou"] - reference) < 0.1, (m["test_miou"], reference)

    assert m["task"] == "segmentation" and m["loss_function"] == "ce" and len(m["per_class_iou"]) == 3
    assert m["test_miou"] == m["history"][m["best_epoch"] - 1]["test_miou"]
    assert "test_miou" in (out / "history.csv").read_text().splitlines()[0]
    result = evaluate_model(out / "model.onnx", str(shapes))
    assert abs(result["miou"] - m["test_miou"]) < 1e-6 and abs(result["accuracy"] - m["test_accuracy"]) < 1e-6
    ran = run_model(str(out / "model.onnx"), [str(shapes / "images" / "0003.png")], save=str(tmp_path / "pred"))
    mask = Image.open(ran["results"][0]["mask"])
    scores = np.load(ran["results"][0]["saved"])
    assert mask.mode == "P" and np.array_equal(np.asarray(mask), scores.argmax(axis=0))


@pytest.mark.keras
@pytest.mark.slow
@pytest.mark.xdist_group("keras")
def test_keras_trains_a_segmentation_and_eval_agrees(tmp_path, shapes):
    from cnnspec.training.evaluate import evaluate_model

    out, m = _train_unet(tmp_path, shapes, "--backend", "keras", "--loss", "dice", "--augment", "flip", epochs=2)
    assert m["task"] == "segmentation" and 0 <= m["test_miou"] <= 1
    assert abs(evaluate_model(out / "model.onnx", str(shapes))["miou"] - m["test_miou"]) < 1e-4


@pytest.mark.torch
@pytest.mark.slow
def test_a_segmentation_killed_in_epoch_3_resumes_to_the_same_bytes(tmp_path):
    from test_train_resume import _kill_and_resume

    small = write_shapes(tmp_path / "small", 40, size=8)
    spec = UNET.replace("[3, 16, 16]", "[3, 8, 8]")
    args = ["--data", str(small), "--epochs", "4", "--batch-size", "6", "--lr", "0.01", "--schedule", "cosine",
            "--augment", "crop,flip", "--loss", "ce+dice", "--workers", "1", "--val-fraction", "0", "--seed", "2",
            "--quiet"]
    _kill_and_resume(tmp_path, "torch", args=args, spec=spec)
    m = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert m["selected_by"] == "last epoch" and m["loss_function"] == "ce+dice"
