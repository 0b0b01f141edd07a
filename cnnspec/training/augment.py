"""``--augment``: named transforms of training batches, with numpy on NCHW float32 arrays in [0, 1].

Framework-free, so both backends augment identically; deterministic, because every batch draws
from its own generator seeded by (seed, epoch, step, rank), so a resumed run augments exactly as
the uninterrupted one, with no generator state to save. A transform always returns a new array:
the training array also holds the validation images, and those are never altered.

Off by default: a flip turns a 2 into something else, so nothing is applied unless asked for.

- ``crop``: pad every side by an eighth of the image (at least 1 pixel) with zeros, then crop back
  to the original size at a random offset (the CIFAR recipe: 4 pixels on 32).
- ``flip``: mirror left-right, half the images.
- ``affine``: rotate by up to 10 degrees, scale by 0.9-1.1, shift by up to 10% each way; bilinear,
  zeros where the source falls outside.
- ``jitter``: brightness and contrast times 0.8-1.2 (and saturation, for 3 channels), clipped to [0, 1].
- ``erase``: half the images get a zeroed rectangle of 2-33% of their area, aspect 0.3-3.3
  (Zhong et al.'s random erasing).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

AUGMENT_TAG = 0xA06  # keeps augmentation draws apart from every other use of the seed


def _crop(x, rng):
    import numpy as np

    b, c, h, w = x.shape
    pad = max(1, round(min(h, w) / 8))
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oy, ox = rng.integers(0, 2 * pad + 1, size=(2, b))
    rows = oy[:, None] + np.arange(h)
    cols = ox[:, None] + np.arange(w)
    return padded[np.arange(b)[:, None, None, None], np.arange(c)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


def _flip(x, rng):
    import numpy as np

    mask = rng.random(x.shape[0]) < 0.5
    return np.where(mask[:, None, None, None], x[..., ::-1], x)


def _affine(x, rng):
    import numpy as np

    b, c, h, w = x.shape
    angle = np.deg2rad(rng.uniform(-10, 10, b))
    scale = rng.uniform(0.9, 1.1, b)
    ty, tx = rng.uniform(-0.1, 0.1, (2, b)) * np.array([[h], [w]])
    cos, sin = (np.cos(angle) / scale).astype(np.float32), (np.sin(angle) / scale).astype(np.float32)
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float32) - (h - 1) / 2, np.arange(w, dtype=np.float32) - (w - 1) / 2,
                         indexing="ij")
    u = xs.ravel()[None] - tx.astype(np.float32)[:, None]  # [b, h*w], centred output coordinates
    v = ys.ravel()[None] - ty.astype(np.float32)[:, None]
    sx = cos[:, None] * u + sin[:, None] * v + (w - 1) / 2  # where each output pixel comes from
    sy = -sin[:, None] * u + cos[:, None] * v + (h - 1) / 2
    x0, y0 = np.floor(sx), np.floor(sy)
    fx, fy = sx - x0, sy - y0
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    corners = [(y0, x0, (1 - fy) * (1 - fx)), (y0, x0 + 1, (1 - fy) * fx),
               (y0 + 1, x0, fy * (1 - fx)), (y0 + 1, x0 + 1, fy * fx)]
    index = np.concatenate([np.clip(yi, 0, h - 1) * w + np.clip(xi, 0, w - 1) for yi, xi, _ in corners], axis=1)
    weight = np.concatenate([wt * ((xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)) for yi, xi, wt in corners], axis=1)
    planes = (np.arange(b)[:, None] * c + np.arange(c)[None, :]) * (h * w)  # where each image's channel starts
    taken = np.ascontiguousarray(x).reshape(-1)[planes[:, :, None] + index[:, None, :]]  # [b, c, 4*h*w]
    out = (taken * weight[:, None, :]).reshape(b, c, 4, h * w).sum(axis=2)
    return out.reshape(b, c, h, w).astype(x.dtype, copy=False)


def _jitter(x, rng):
    import numpy as np

    b, c = x.shape[:2]
    brightness, contrast, saturation = rng.uniform(0.8, 1.2, (3, b, 1, 1, 1)).astype(x.dtype)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    out = ((x - mean) * contrast + mean) * brightness
    if c == 3:
        gray = (out * np.array([0.299, 0.587, 0.114], x.dtype)[None, :, None, None]).sum(axis=1, keepdims=True)
        out = gray + (out - gray) * saturation
    return np.clip(out, 0, 1)


def _erase(x, rng):
    import numpy as np

    b, c, h, w = x.shape
    apply = rng.random(b) < 0.5
    area = rng.uniform(0.02, 0.33, b) * h * w
    ratio = np.exp(rng.uniform(math.log(0.3), math.log(3.3), b))
    eh = np.clip(np.round(np.sqrt(area * ratio)), 1, h).astype(np.int64)
    ew = np.clip(np.round(np.sqrt(area / ratio)), 1, w).astype(np.int64)
    top = (rng.random(b) * (h - eh + 1)).astype(np.int64)
    left = (rng.random(b) * (w - ew + 1)).astype(np.int64)
    rows = (np.arange(h) >= top[:, None]) & (np.arange(h) < (top + eh)[:, None])
    cols = (np.arange(w) >= left[:, None]) & (np.arange(w) < (left + ew)[:, None])
    mask = apply[:, None, None, None] & rows[:, None, :, None] & cols[:, None, None, :]
    return np.where(mask, np.zeros((), x.dtype), x)


def _crop_masks(x, masks, rng):
    """``crop`` on images and their masks alike: the same offsets (drawn as _crop draws them); the
    masks' padding is 255, ignored."""
    import numpy as np

    state = rng.bit_generator.state
    images = _crop(x, rng)
    rng.bit_generator.state = state  # the masks take the very same offsets
    b, h, w = masks.shape
    pad = max(1, round(min(x.shape[2], x.shape[3]) / 8))
    padded = np.pad(masks, ((0, 0), (pad, pad), (pad, pad)), constant_values=255)
    oy, ox = rng.integers(0, 2 * pad + 1, size=(2, b))
    rows = oy[:, None] + np.arange(h)
    cols = ox[:, None] + np.arange(w)
    return images, padded[np.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]


def _flip_masks(x, masks, rng):
    import numpy as np

    mask = rng.random(x.shape[0]) < 0.5
    return (np.where(mask[:, None, None, None], x[..., ::-1], x),
            np.where(mask[:, None, None], masks[..., ::-1], masks))


def _image_only(transform):
    return lambda x, masks, rng: (transform(x, rng), masks)


# segmentation: each transform on images and their masks together; the photometric ones leave masks
# alone; ``affine`` is refused (its bilinear warp would invent class ids)
MASK_TRANSFORMS = {"crop": _crop_masks, "flip": _flip_masks, "jitter": _image_only(_jitter),
                   "erase": _image_only(_erase)}

# one function per name of --augment (cnnspec.backend.trainconfig.AUGMENTS, which the options are checked against)
TRANSFORMS = {"crop": _crop, "flip": _flip, "affine": _affine, "jitter": _jitter, "erase": _erase}


@dataclass(frozen=True)
class Augmenter:
    """The run's transforms, applied in the order given, each batch from its own generator."""

    names: tuple[str, ...]
    seed: int
    rank: int = 0

    def batch(self, epoch: int, step: int, images, masks=None):
        """A new, augmented copy of ``images`` (never changed in place); with ``masks`` (segmentation),
        (images, masks), the geometric transforms applied to both alike."""
        import numpy as np

        rng = np.random.default_rng([self.seed, epoch, step, self.rank, AUGMENT_TAG])
        if masks is not None:
            for name in self.names:
                images, masks = MASK_TRANSFORMS[name](images, masks, rng)
            return np.ascontiguousarray(images, dtype=np.float32), np.ascontiguousarray(masks)
        out = images
        for name in self.names:
            out = TRANSFORMS[name](out, rng)
        return np.ascontiguousarray(out, dtype=np.float32) if out is not images else images.copy()


def parse_augment(text: str) -> tuple[str, ...]:
    """``crop,flip`` as the command line gives it; an empty string or ``none`` is none."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    return () if names == ("none",) else names
