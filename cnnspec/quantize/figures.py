"""What the quantised model costs and buys, measured on the held-out images against the fp32
model: accuracy of each (where the labels fit), top-1 agreement, the largest output difference, and
int8/fp32 speed at batch 1 and 32 on this machine (:mod:`cnnspec.runner.speed`, both in the same rounds).

:func:`accuracy` is the one place a score becomes an accuracy here; ``cnnspec eval`` computes the
same figure from the same split, and this can call it once both live on one branch.
"""
from __future__ import annotations

from dataclasses import dataclass

SPEED_BATCHES = (1, 32)
EVAL_BATCH = 256


@dataclass(frozen=True)
class HeldOut:
    images: int
    fp32_accuracy: float | None
    int8_accuracy: float | None
    agreement: float
    max_output_difference: float
    output_scale: float  # the largest |fp32 output|, to read the difference against
    per_pixel: bool = False  # a map output (segmentation): agreement is of each pixel's class, not each image's

    @property
    def drop_points(self) -> float | None:
        """Accuracy lost, in percentage points (negative: int8 scored higher)."""
        if self.fp32_accuracy is None:
            return None
        return 100.0 * (self.fp32_accuracy - self.int8_accuracy)


def accuracy(scores, labels) -> float:
    """Top-1 accuracy of ``scores`` [N, classes] against integer ``labels`` [N]."""
    import numpy as np

    return float(np.mean(np.argmax(scores, axis=1) == np.asarray(labels)))


def outputs(session, images, batch: int = EVAL_BATCH, output: str | None = None):
    """The session's output (the first, or the ONNX output named ``output``) for every image,
    ``batch`` at a time."""
    from ..runner.session import run_batches

    return run_batches(session, images, None, batch, output=output)


def held_out_figures(fp32_session, int8_session, images, labels, batch: int = EVAL_BATCH,
                     output: str | None = None) -> HeldOut:
    import numpy as np

    a, b = outputs(fp32_session, images, batch, output), outputs(int8_session, images, batch, output)
    return HeldOut(
        images=len(images),
        fp32_accuracy=None if labels is None else accuracy(a, labels),
        int8_accuracy=None if labels is None else accuracy(b, labels),
        agreement=float(np.mean(np.argmax(a, axis=1) == np.argmax(b, axis=1))),
        max_output_difference=float(np.max(np.abs(a.astype(np.float64) - b))),
        output_scale=float(np.max(np.abs(a))),
        per_pixel=a.ndim > 2,
    )


def speed_ratios(fp32_session, int8_session, images, seconds: float, batches=SPEED_BATCHES) -> dict:
    """{batch: (int8 images/s, fp32 images/s, int8/fp32 ratio)}, both timed in the same rounds."""
    from ..runner.speed import compare, session_step, tile_batch

    out = {}
    for batch in batches:
        x = tile_batch(images, batch)
        c = compare({"int8": session_step(int8_session, x), "fp32": session_step(fp32_session, x)}, batch,
                    seconds=seconds)
        out[batch] = (c.timings["int8"].images_per_second, c.timings["fp32"].images_per_second,
                      c.ratio("int8", "fp32"))
    return out
