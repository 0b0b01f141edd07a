"""The one output-size function every op uses (as Keras' ``compute_conv_output_shape``), with its
transposed-convolution counterpart; each returns the arithmetic with the numbers filled in, so a
side that comes out below 1 is explained by the formula that produced it.

``W2 = floor((W1 + 2P - D(F-1) - 1) / S) + 1`` for explicit padding (``P + P'`` where the two
sides differ); ``ceil`` instead of ``floor`` for a ceil-mode pool, less one where the last window
would start beyond the input and its left padding (PyTorch's ``ceil_mode``); ``same`` gives
``ceil(W1 / S)`` with TensorFlow's split (the odd pixel at the bottom/right). Transposed:
``W2 = (W1 - 1)*S - 2P + F + output_padding``; ``same`` gives ``W1*S``, cropping ``F - S``.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SideSize:
    size: int          # W2
    pad_before: int    # padding (or, transposed, cropping) at the top/left
    pad_after: int     # ... at the bottom/right
    arithmetic: str    # the formula with numbers filled in, for error messages
    # bottom/right padding with which a floor-mode window computes this side: pad_after, or for a
    # ceil-mode pool exactly what the last window reaches (more, or less where a window was dropped)
    window_after: int | None = None

    @property
    def window_pad_after(self) -> int:
        return self.pad_after if self.window_after is None else self.window_after


def standardize_pair(value, name: str = "value") -> tuple[int, int]:
    """An int or an [h, w] pair, as a (h, w) tuple (Keras' ``standardize_tuple``)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer or a pair [height, width], not {value!r}")
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return (value[0], value[1])
    raise ValueError(f"{name} must be an integer or a pair [height, width], got {value!r}")


def _explicit(padding) -> tuple[int, int]:
    """'valid', an int or a (before, after) pair as (before, after)."""
    if padding == "valid":
        return 0, 0
    if isinstance(padding, (tuple, list)):
        return int(padding[0]), int(padding[1])
    return int(padding), int(padding)


def _pad_text(before: int, after: int) -> str:
    return f"2*{before}" if before == after else f"{before} + {after}"


def output_size(size: int, kernel: int, stride: int = 1, padding="valid", dilation: int = 1,
                ceil: bool = False) -> SideSize:
    """Output length of one side. ``padding`` is ``'same'``, ``'valid'``, an int or a (before, after)
    pair; ``ceil`` rounds the last partial window up (PyTorch's ``ceil_mode``; not with 'same')."""
    effective = dilation * (kernel - 1) + 1
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + effective - size, 0)
        before = total // 2
        return SideSize(out, before, total - before, f"ceil({size}/{stride}) = {out}")
    before, after = _explicit(padding)
    numerator = size + before + after - effective
    pads = _pad_text(before, after)
    if dilation == 1:
        text = f"({size} - {kernel} + {pads})/{stride}"
    else:
        text = f"({size} + {pads} - {dilation}*({kernel}-1) - 1)/{stride}"
    if not ceil:
        out = numerator // stride + 1
        text = f"floor({text}) + 1" if numerator % stride and numerator > 0 else f"{text} + 1"
        return SideSize(out, before, after, f"{text} = {out}")
    out = -(-numerator // stride) + 1
    text = f"ceil({text}) + 1" if numerator % stride else f"{text} + 1"
    if (out - 1) * stride >= size + before:  # the last window would start past the input and its padding
        out -= 1
        text += " - 1"
    reach = max((out - 1) * stride + effective - size - before, 0)
    return SideSize(out, before, after, f"{text} = {out}", window_after=reach)


def transpose_output_size(size: int, kernel: int, stride: int = 1, padding="valid",
                          output_padding: int = 0) -> SideSize:
    """Output length of one side of a transposed convolution; ``pad_before``/``pad_after`` are the
    rows (or columns) cropped from the full ``(W1 - 1)*S + F + output_padding``. ``same`` crops
    ``F - S``, ``(F - S) // 2`` first, as TensorFlow does (the caller refuses F < S)."""
    full = (size - 1) * stride + kernel + output_padding
    if padding == "same":
        crop = kernel - stride
        out = size * stride
        return SideSize(out, crop // 2, crop - crop // 2, f"{size}*{stride} = {out}")
    before, after = _explicit(padding)
    out = full - before - after
    pads = f"2*{before}" if before == after else f"({before} + {after})"
    extra = f" + {output_padding}" if output_padding else ""
    return SideSize(out, before, after, f"({size} - 1)*{stride} - {pads} + {kernel}{extra} = {out}")
