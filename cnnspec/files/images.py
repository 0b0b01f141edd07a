"""The one image preprocessing of cnnspec: ``cnnspec train`` on an image folder and ``cnnspec run``
on an image file both call :func:`load_image`, so an exported model sees at run time exactly
what it was trained on.

An image becomes float32 [C, H, W] in [0, 1]: EXIF orientation applied; 16- and 32-bit greyscale
scaled by their own range before anything else (an 8-bit conversion would clip them to white);
converted to grey (C = 1) or RGB (C = 3); resized bilinearly to (H, W). Pillow is imported here
only when an image is read, and every failure is one :class:`InputError` naming the file.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path

from ..errors import InputError

IMAGE_MODES = {1: "L", 3: "RGB"}
MAX_IMAGE_PIXELS = 64 * 1024 * 1024  # per image; more is refused as a possible decompression bomb


@contextmanager
def decoded(path: str | Path, what: str = "image"):
    """The file as a decoded Pillow image, every failure one :class:`InputError` naming ``path``:
    missing, a folder, not an image, more than :data:`MAX_IMAGE_PIXELS` (a possible decompression
    bomb, refused before decoding), truncated or corrupt. The one guarded open of images and masks;
    an :class:`InputError` raised inside the block passes through as it is."""
    from PIL import Image, UnidentifiedImageError

    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS  # Pillow warns above it and refuses at twice it
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise InputError(f"{path}: {w}x{h} pixels is more than the {MAX_IMAGE_PIXELS} cnnspec "
                                     f"will decode (a possible decompression bomb)")
                img.load()  # decode now: truncated or corrupt data fails here, inside the guard
                yield img
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what} file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not an {what}") from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image file (Pillow cannot identify it)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"{path}: the image has more than {MAX_IMAGE_PIXELS} pixels; refused "
                         f"(a possible decompression bomb)") from None
    except Exception as exc:  # Pillow's decoders raise many types on malformed data; all mean "unusable"
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: unreadable or truncated {what} ({reason})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def load_image(path: str | Path, channels: int, height: int, width: int):
    import numpy as np
    from PIL import ImageOps

    if channels not in IMAGE_MODES:
        raise InputError(f"{path}: images give 1 (grey) or 3 (RGB) channels, but the model takes {channels}")
    with decoded(path) as img:
        oriented = ImageOps.exif_transpose(img) if _may_be_rotated(img) else img
        pixels = _unit_pixels(oriented, channels, (width, height), path)
    chw = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
    return np.ascontiguousarray(chw, dtype=np.float32)


# where Pillow's getexif() finds an orientation: TIFF's own tags, or an EXIF block in the file's info
EXIF_FORMATS = ("TIFF", "MPO")
EXIF_INFO = ("exif", "Raw profile type exif")


def _may_be_rotated(img) -> bool:
    """Whether the image can carry an EXIF orientation at all: exif_transpose costs more than
    decoding a small PNG, and the streamed pipeline calls this for every image of every epoch."""
    return img.format in EXIF_FORMATS or any(key in img.info for key in EXIF_INFO)


def _unit_pixels(img, channels: int, size, path):
    """[H, W] or [H, W, 3] float32 in [0, 1]; a float image holding NaN or infinities is refused
    (clipping would hide them, and a NaN sample trains or predicts nothing)."""
    import numpy as np
    from PIL import Image

    if img.mode.startswith("I") or img.mode == "F":  # high bit depth: scale before any 8-bit conversion
        grey = np.asarray(img, dtype=np.float64)
        if not np.isfinite(grey).all():
            raise InputError(f"{path}: the image holds NaN or infinite values")
        full = 1.0 if img.mode == "F" else 65535.0 if img.mode.startswith("I;16") or grey.max() <= 65535 \
            else 4294967295.0
        grey = np.clip(grey / full, 0.0, 1.0).astype(np.float32)
        resized = np.asarray(Image.fromarray(grey, mode="F").resize(size, Image.Resampling.BILINEAR), np.float32)
        return resized if channels == 1 else np.repeat(resized[:, :, None], 3, axis=2)
    img = img.convert(IMAGE_MODES[channels])
    if img.size != size:
        img = img.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float32) / 255.0
