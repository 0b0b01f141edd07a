"""The one output-size function every op uses (as Keras' ``compute_conv_output_shape``).

``W2 = floor((W1 + 2P - D(F-1) - 1) / S) + 1`` for explicit padding; ``same`` gives
``ceil(W1 / S)`` with TensorFlow's split (the odd pixel at the bottom/right).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SideSize:
    size: int          # W2
    pad_before: int
    pad_after: int
    arithmetic: str    # the formula with numbers filled in, for error messages


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


def output_size(size: int, kernel: int, stride: int = 1, padding="valid", dilation: int = 1) -> SideSize:
    """Output length of one side. ``padding`` is ``'same'``, ``'valid'`` or an int."""
    effective = dilation * (kernel - 1) + 1
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + effective - size, 0)
        before = total // 2
        return SideSize(out, before, total - before, f"ceil({size}/{stride}) = {out}")
    pad = 0 if padding == "valid" else int(padding)
    numerator = size + 2 * pad - effective
    out = numerator // stride + 1
    if dilation == 1:
        text = f"({size} - {kernel} + 2*{pad})/{stride} + 1"
    else:
        text = f"({size} + 2*{pad} - {dilation}*({kernel}-1) - 1)/{stride} + 1"
    if numerator % stride and numerator > 0:
        text = f"floor({text[:text.rindex(' + 1')]}) + 1"
    return SideSize(out, pad, pad, f"{text} = {out}")
