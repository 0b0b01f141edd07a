"""What ``cnnspec quantize`` found, as one record: printed as aligned lines, or as JSON (the form
``train --quantize`` can put in metrics.json)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from ..errors import plural
from ..runner.benchmark import speed_words
from .figures import HeldOut
from .layers import LayerError, weakest


@dataclass(frozen=True)
class QuantizeReport:
    model: str
    output: str | None  # None: nothing written (refused)
    recipe: str
    recipe_description: str
    recipe_reason: str
    isa: str
    source: str
    calibration_images: int
    training_images: int
    batchnorms_folded: int
    held_out: HeldOut
    label_note: str  # why accuracy was skipped; "" where it was measured
    guard: str  # how --max-drop was judged
    forced: bool
    speed: dict = field(default_factory=dict)  # batch -> (int8 images/s, fp32 images/s, ratio)
    fp32_bytes: int = 0
    int8_bytes: int = 0
    layers: tuple[LayerError, ...] = ()  # every compared layer's SQNR, worst first
    judged_output: str | None = None  # the output the figures judge, for a model with several (--output)
    model_outputs: tuple[str, ...] = ()

    def to_json(self) -> dict:
        out = asdict(self)
        out["layers"] = [e.to_json() for e in self.layers]
        out["held_out"] = {**asdict(self.held_out), "drop_points": self.held_out.drop_points}
        out["speed"] = {str(b): {"int8_images_per_second": round(i, 2), "fp32_images_per_second": round(f, 2),
                                 "ratio": round(r, 3)} for b, (i, f, r) in self.speed.items()}
        out["warnings"] = [w for w in (slower_warning(self),) if w]
        return out


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def format_report(r: QuantizeReport) -> str:
    h = r.held_out
    lines = [
        f"{r.model}: {r.recipe_description} (recipe {r.recipe}, {plural(r.batchnorms_folded, 'batchnorm')} folded)",
        f"  recipe         {r.recipe}: {r.recipe_reason}",
        f"  calibration    {r.calibration_images} of the {r.training_images} training images of {r.source}",
    ]
    if r.judged_output is not None:
        lines.append(f"  judged output  '{r.judged_output}' (of {', '.join(r.model_outputs)}; the whole graph is "
                     f"calibrated and quantised; --output picks another)")
    if h.fp32_accuracy is not None:
        lines.append(f"  accuracy       fp32 {_percent(h.fp32_accuracy)}, int8 {_percent(h.int8_accuracy)} "
                     f"({100 * (h.int8_accuracy - h.fp32_accuracy):+.2f} points) on {plural(h.images, 'held-out image')}")
    else:
        lines.append(f"  accuracy       not measured: {r.label_note}")
    lines += [
        (f"  agreement      per-pixel class {_percent(h.agreement)} over {plural(h.images, 'held-out image')}"
         if h.per_pixel
         else f"  agreement      top-1 {_percent(h.agreement)} of {plural(h.images, 'held-out image')}"),
        f"  largest diff   {h.max_output_difference:.4g} (largest fp32 output {h.output_scale:.4g})",
        f"  guard          {r.guard}" + (" (overridden by --force)" if r.forced else ""),
    ]
    if r.layers:
        lines.append(f"  weakest layers {weakest(r.layers)} (SQNR against fp32; ~40 dB is a clean 8 bits)")
    for batch, (int8, fp32, ratio) in r.speed.items():
        lines.append(f"  speed b{batch:<3}     int8 {int8:.1f} img/s, fp32 {fp32:.1f} img/s: int8 {speed_words(ratio)} "
                     f"fp32 on {r.isa}")
    if r.int8_bytes:
        lines.append(f"  size           {r.int8_bytes / 1e6:.2f} MB (fp32 {r.fp32_bytes / 1e6:.2f} MB)")
    lines.append(f"  wrote          {r.output}" if r.output else "  wrote          nothing")
    return "\n".join(lines)


def slower_warning(r: QuantizeReport) -> str | None:
    """A warning where the int8 model measured slower than fp32 at some batch size: it then saves only
    size, and a user choosing it for speed should know (ConvInteger-style kernels, or a CPU without
    VNNI, do this)."""
    slower = {b: ratio for b, (_, _, ratio) in r.speed.items() if ratio < 1.0}
    if not slower:
        return None
    where = ", ".join(f"batch {b}: {1 / ratio:.2f}x slower" for b, ratio in slower.items())
    if len(slower) == len(r.speed):
        return (f"the int8 model runs slower than fp32 on this CPU ({where}, {r.isa}); it saves size, not time: "
                f"keep the fp32 model where speed matters")
    sizes = " and ".join(str(b) for b in slower)
    return (f"the int8 model runs slower than fp32 on this CPU at batch {sizes} ({where}, {r.isa}); keep the "
            f"fp32 model where speed at that batch size matters")


def report_json(r: QuantizeReport) -> str:
    return json.dumps(r.to_json(), indent=2, ensure_ascii=False)
