"""``train --quantize int8``: the trained model.onnx quantised by :mod:`cnnspec.quantize`, inside the
run's staged outputs, so ``model.int8.onnx`` is published with the rest or not at all.

Calibration reads the source's training part, never its test images, by the same fixed draw as
``cnnspec quantize --calibrate SOURCE`` (so both write the same int8 model); the figures come from the
test images, the same ones ``test_accuracy`` is measured on. A refusal (int8 loses more than ``--quantize-max-drop``
points) does not undo the training: the fp32 files are published, ``model.int8.onnx`` is not, and
metrics.json and a warning line (shown even with ``--quiet``) say why.
"""
from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import QuantizationRefused, UsageError

INT8_FILE = "model.int8.onnx"
# seconds spent on each of the int8/fp32 speed figures (batch 1 and 32), as cnnspec quantize's default
SPEED_SECONDS = 2.0


def require_quantizer(config) -> None:
    """Before any epoch: a run that cannot quantise at its end says so now, not after training."""
    if not config.quantize:
        return
    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"--quantize int8 needs {' and '.join(missing)} (pip install 'cnnspec[onnx]'); "
                         f"not installed here")


@dataclass(frozen=True)
class Int8Step:
    """What the quantisation at the end of a run needs: its images and its settings."""

    training_images: object  # float32 [N, C, H, W], the source's training part (not copied)
    test_images: object
    test_labels: object
    samples: int
    max_drop: float
    source: str  # the data source, as cnnspec quantize names it
    judge: str | None = None  # the output the run trained (its layer name), for a model with several

    @classmethod
    def for_run(cls, config, data) -> "Int8Step | None":
        """The step for this run, or None without ``--quantize``. The draw is ``cnnspec quantize``'s
        on the same source (its training part, the same fixed seed), so ``cnnspec quantize
        model.onnx --calibrate SOURCE`` writes the same int8 model; the pipeline copies only the
        drawn images."""
        if not config.quantize:
            return None
        return cls(data.x_train, data.x_test, data.y_test, config.calibration_samples, config.max_drop, data.source)

    def run(self, staged_model: Path, out: Path, say) -> dict:
        """Quantise ``staged_model`` into ``model.int8.onnx`` beside it; returns metrics.json's
        ``quantization`` entry (the report, named by the published paths, or the refusal)."""
        from ..quantize import quantize_model, slower_warning

        staged = staged_model.with_name(INT8_FILE)
        try:
            report = quantize_model(staged_model, self.training_images, self.test_images, self.test_labels,
                                    output=staged, source=self.source, judge=self.judge, samples=self.samples,
                                    max_drop=self.max_drop, speed_seconds=SPEED_SECONDS)
        except QuantizationRefused as refusal:
            reason = f"{refusal.reason}; `cnnspec quantize {out / staged_model.name} --force` writes it anyway"
            print(f"cnnspec: warning: {INT8_FILE} not written: {reason}", file=sys.stderr)  # even with --quiet
            return {"written": False, "refused": refusal.reason}
        say(f"int8: {report.guard.removeprefix('int8 ')}; "
            + ", ".join(f"batch {b} {r:.2f}x fp32's speed" for b, (_, _, r) in report.speed.items()))
        warning = slower_warning(report)
        if warning:
            print(f"cnnspec: warning: {warning}", file=sys.stderr)  # even with --quiet, as a refusal is
        return {"written": True, **report.to_json(), "model": str(out / staged_model.name),
                "output": str(out / INT8_FILE)}
