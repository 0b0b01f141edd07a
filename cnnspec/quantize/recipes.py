"""The quantisation recipes cnnspec knows, as data: each is a set of onnxruntime.quantization
arguments and the reason it is, or is not, the default. ``bench/bench_quantize.py`` times them all.

Measured with ONNX Runtime 1.32 on ResNet-18, on this project's 2-core AVX2 machine (shared, so
only ratios within one run count; ``bench/bench_quantize.py``, README's deployment section):

- QDQ and QOperator become the same graph once ONNX Runtime has fused it (20/20 convs in
  QLinearConv, QLinearAdd, QGemm, NHWC): the same speed (1.7-2.0x fp32 at batch 1, 1.9-2.0x at 32).
  QDQ is the standard form other runtimes read, so it is the one.
- uint8 activations with int8 per-channel symmetric weights: every conv takes MLAS's symmetric
  u8s8 kernel and every ReLU folds into the conv before it.
- int8 (signed) symmetric activations keep the ReLUs (a signed range holds the negatives a ReLU
  removes) and leave 11 of 20 convs in float around the residual adds: 1.1x at batch 1, 0.95x at 32.
- uint8 symmetric activations: as fast as qdq, but half the codes are wasted after a ReLU: a logit
  difference 9x larger.
- uint8 weights take the u8u8 kernel: 1.4x at batch 1, 1.2x at 32.
- per-tensor weights: no faster than per-channel, and coarser.
- reduce_range (7-bit weights): the same kernel and speed as qdq; it avoids the saturation of
  AVX2's 16-bit pair sums (vpmaddubsw: 2 x 255 x 127 > 32767), and its logits were 2.2x closer to
  fp32 there.

Tried for a larger margin over the plain recipe (qdq at ONNX Runtime's default session settings) at
batch 32, none kept (one to four runs each, every figure a ratio within one run, load 2.5-3.7):

- the batch-32 profile (``SessionOptions.enable_profiling``): QLinearConv is 97% of int8 time and each
  3x3 conv costs what its multiply-adds say (about 23 ms per 116M per image at batch 32, twice fp32's
  rate): the u8s8 kernel is the limit. Only the 7x7 stem (3 input channels) runs at half that rate
  (47 ms of 392).
- the stem padded to 4 input channels (zero weights, a Pad before it): 1.04-1.06x the plain recipe at
  batch 32 and 0.96-1.10x the unpadded chosen recipe (three runs): nothing; the stem left in float:
  0.69x (one run).
- ``session.x64quantprecision=1`` (u8u8 kernel): the same logits as reduced range, 0.88-1.20x.
- ``session.dynamic_block_base=4``: 1.01-1.12x (two runs).
- one thread instead of two: 0.93-1.08x at batch 32, 0.58-1.78x at batch 1 (the other job decides).

With a pause between turns (``cnnspec.runner.speed.compare(settle=...)``: a spinning session slowed the model
timed after it) the chosen recipe with cnnspec's settings ran 1.08x the plain recipe at batch 1 and
0.99x at batch 32 in one run at load 2.5-3.1: the margin is the session settings under load, not the
recipe.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Recipe:
    name: str
    quant_format: str  # "QDQ" or "QOperator"
    activations: str  # "uint8" or "int8"
    weights: str  # "int8" or "uint8"
    per_channel: bool = True
    symmetric_activations: bool = False
    reduce_range: bool = False
    why: str = ""
    extra: dict = field(default_factory=dict)

    def describe(self) -> str:
        act = f"{self.activations} {'symmetric' if self.symmetric_activations else 'asymmetric'} activations"
        weights = f"{self.weights} {'per-channel' if self.per_channel else 'per-tensor'} symmetric weights"
        rr = ", reduced range (7-bit weights)" if self.reduce_range else ""
        return f"static {self.quant_format}, {weights}, {act}{rr}"

    def ort_arguments(self) -> dict:
        from onnxruntime.quantization import QuantFormat, QuantType

        types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
        return {
            "quant_format": {"QDQ": QuantFormat.QDQ, "QOperator": QuantFormat.QOperator}[self.quant_format],
            "activation_type": types[self.activations],
            "weight_type": types[self.weights],
            "per_channel": self.per_channel,
            "reduce_range": self.reduce_range,
            "extra_options": {"ActivationSymmetric": self.symmetric_activations, "WeightSymmetric": True,
                              **self.extra},
        }


RECIPES = {r.name: r for r in (
    Recipe("qdq", "QDQ", "uint8", "int8",
           why="fused by ONNX Runtime into QLinearConv/QLinearAdd/QGemm on the fast u8s8 kernels; the "
               "standard form other runtimes read"),
    Recipe("qoperator", "QOperator", "uint8", "int8",
           why="the same fused graph as qdq, hence the same speed; only ONNX Runtime reads it"),
    Recipe("qdq-reduce-range", "QDQ", "uint8", "int8", reduce_range=True,
           why="7-bit weights: no saturation in AVX2's 16-bit sums; the same kernel and speed as qdq"),
    Recipe("qdq-per-tensor", "QDQ", "uint8", "int8", per_channel=False,
           why="one scale per weight tensor: coarser, and no faster"),
    Recipe("qdq-s8-symmetric", "QDQ", "int8", "int8", symmetric_activations=True,
           why="signed activations keep the ReLUs and leave residual convs in float: slower than fp32"),
    Recipe("qdq-u8-symmetric", "QDQ", "uint8", "int8", symmetric_activations=True,
           why="a symmetric uint8 range wastes half its codes after a ReLU and keeps the ReLUs"),
    Recipe("qdq-u8-weights", "QDQ", "uint8", "uint8",
           why="uint8 weights take the slower u8u8 kernel"),
)}

DEFAULT_RECIPE = "qdq"


def choose_recipe(isa: str) -> tuple[Recipe, str]:
    """The recipe for this CPU, and why. On every x86 CPU measured the fastest recipe is the same;
    AVX2 without VNNI gets the reduced range, which costs no speed there and avoids the saturation
    its 16-bit intermediate sums risk."""
    if isa in ("AVX2", "AVX-512", "SSE4.1"):
        return (RECIPES["qdq-reduce-range"],
                f"{isa} without VNNI: the u8s8 kernel sums pairs in 16 bits (vpmaddubsw) and can saturate; "
                f"7-bit weights cannot, at the same speed")
    return RECIPES[DEFAULT_RECIPE], f"{isa}: {RECIPES[DEFAULT_RECIPE].why}"
