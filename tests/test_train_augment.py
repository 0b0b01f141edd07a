"""``--augment`` (issue 11): each named transform does what its name says, returns a new array,
is the same for the same (seed, epoch, step), and touches only training batches: validation and
test images reach the model exactly as loaded."""
from __future__ import annotations

import numpy as np
import pytest
from train_specs import TINY  # noqa: E402

import cnnspec
from cnnspec.cli import main
from cnnspec.training import AUGMENTS, Augmenter, parse_augment


def batch(c=1, n=16, size=8, seed=0):
    return np.random.default_rng(seed).random((n, c, size, size), dtype=np.float32)


def test_every_augment_option_has_a_transform_and_every_transform_an_option():
    """--augment's names are checked below the backend interface (cnnspec.backend.trainconfig); the
    transforms live in the training package: the two tables must name the same things."""
    from cnnspec.training.augment import TRANSFORMS

    assert tuple(TRANSFORMS) == AUGMENTS


@pytest.mark.parametrize("name", list(AUGMENTS))
@pytest.mark.parametrize("channels", [1, 3])
def test_each_transform_is_a_new_deterministic_array_in_range(name, channels):
    x = batch(channels)
    before = x.copy()
    aug = Augmenter((name,), seed=3)
    out = aug.batch(2, 5, x)
    assert out is not x and np.array_equal(x, before)  # never in place
    assert out.shape == x.shape and out.dtype == np.float32 and out.flags.c_contiguous
    assert out.min() >= 0 and out.max() <= 1
    assert np.array_equal(out, aug.batch(2, 5, x))  # same (seed, epoch, step): same images
    assert not np.array_equal(out, aug.batch(2, 6, x))  # another step: other draws
    assert not np.array_equal(out, Augmenter((name,), seed=4).batch(2, 5, x))
    assert not np.array_equal(out, x)


def test_transforms_do_what_their_names_say():
    x = batch(n=64)
    flipped = Augmenter(("flip",), 0).batch(1, 0, x)
    mirrored = [np.array_equal(f, i[..., ::-1]) for f, i in zip(flipped, x)]
    same = [np.array_equal(f, i) for f, i in zip(flipped, x)]
    assert all(m or s for m, s in zip(mirrored, same)) and 16 < sum(mirrored) < 48
    cropped = Augmenter(("crop",), 0).batch(1, 0, x)  # 8x8: padded by 1, so a shift of at most 1 pixel
    for c, i in zip(cropped, x):
        assert any(np.array_equal(c[:, max(dy, 0):8 + min(dy, 0), max(dx, 0):8 + min(dx, 0)],
                                  i[:, max(-dy, 0):8 + min(-dy, 0), max(-dx, 0):8 + min(-dx, 0)])
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    erased = Augmenter(("erase",), 0).batch(1, 0, x)
    changed = [(e != i).any() for e, i in zip(erased, x)]
    assert 16 < sum(changed) < 48
    assert all(((e == 0) | (e == i)).all() for e, i in zip(erased, x))  # only zeros are written
    jittered = Augmenter(("jitter",), 0).batch(1, 0, x)
    assert np.corrcoef(jittered.ravel(), x.ravel())[0, 1] > 0.9  # the same picture, brighter or duller
    affine = Augmenter(("affine",), 0).batch(1, 0, x)
    assert np.abs(affine - x).mean() > 0.05 and np.abs(affine.mean() - x.mean()) < 0.1


def test_parse_augment():
    assert parse_augment("crop, flip,") == ("crop", "flip")
    assert parse_augment("none") == () and parse_augment("") == ()


@pytest.mark.torch
def test_augmentation_never_touches_validation_or_test_images(tmp_path, monkeypatch):
    """A real torch run with every transform: the model scores validation and test images exactly as
    loaded, the data arrays are never changed, and only training images are augmented."""
    import cnnspec_torch.training as torch_training

    from cnnspec.data.sources import load_source
    from cnnspec.training import validation_split

    pristine = load_source("digits", cnnspec.loads(TINY).graph)
    fit_idx, val_idx = validation_split(pristine.y_train, 0.1)
    fit_rows = {row.tobytes() for row in pristine.x_train[fit_idx]}
    scored, augmented = [], []
    real_eval, real_batch = torch_training.TorchTrainer.evaluate, Augmenter.batch

    def spy_eval(self, x, y, indices):
        result = real_eval(self, x, y, indices)
        scored.append((x[indices].copy(), self._on_device(x)[self.torch.from_numpy(indices)].numpy().copy()))
        return result

    def spy_batch(self, epoch, step, images):
        augmented.append(images.copy())
        return real_batch(self, epoch, step, images)

    monkeypatch.setattr(torch_training.TorchTrainer, "evaluate", spy_eval)
    monkeypatch.setattr(Augmenter, "batch", spy_batch)
    (tmp_path / "s.yaml").write_text(TINY)
    assert main(["train", str(tmp_path / "s.yaml"), "--data", "digits", "--epochs", "2", "--lr", "0.01",
                 "--augment", "crop,flip,affine,jitter,erase", "--quiet", "-o", str(tmp_path / "o")]) == 0
    assert len(scored) == 4  # validation and test, each epoch
    for (images, seen), expected in zip(scored, [pristine.x_train[val_idx], pristine.x_test] * 2):
        assert np.array_equal(images, expected) and np.array_equal(seen, expected)  # the arrays and what the model saw
    assert len(augmented) == 2 * len(range(0, len(fit_idx), 32)) - 2 * (len(fit_idx) % 32 < 2)
    assert all(row.tobytes() in fit_rows for b in augmented for row in b)


@pytest.mark.torch
def test_augmented_runs_are_reproducible_and_differ_from_plain(tmp_path):
    (tmp_path / "s.yaml").write_text(TINY)
    blobs = {}
    for name, extra in (("a", ["--augment", "crop,jitter"]), ("b", ["--augment", "crop,jitter"]), ("plain", [])):
        assert main(["train", str(tmp_path / "s.yaml"), "--data", "digits", "--epochs", "1", "--quiet",
                     "-o", str(tmp_path / name), *extra]) == 0
        blobs[name] = (tmp_path / name / "weights.safetensors").read_bytes()
    assert blobs["a"] == blobs["b"] != blobs["plain"]
