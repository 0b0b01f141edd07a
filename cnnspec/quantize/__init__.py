"""``cnnspec quantize``: static int8 quantisation of a cnnspec model, calibrated on training images,
judged on held-out images, one job per module: ``model`` (the fp32 file), ``calibration`` (images
and the reader onnxruntime pulls them through), ``fold`` (Conv+BatchNorm), ``recipes`` (what is
tried and why), ``quantizer`` (onnxruntime.quantization), ``figures`` (accuracy, agreement, speed),
``metadata``, ``report``, ``pipeline`` (the order of it all).

Dynamic quantisation is not offered: on conv nets it runs ConvInteger, which gains nothing: 0.7-1.1x
of fp32 on ResNet-18 on this AVX2 machine over three runs (static: 1.7-2.1x), and 2.5 to 6 times
slower than fp32 on the CNNs issue 10 measured.

May import: errors, graph, files, onnxfile, backend, data, runner.
"""
from __future__ import annotations

from .pipeline import DEFAULT_MAX_DROP, DEFAULT_SAMPLES, default_output, quantize_model, quantize_source
from .recipes import RECIPES, choose_recipe
from .report import QuantizeReport, format_report, report_json, slower_warning

DYNAMIC_REFUSAL = ("dynamic quantisation is not offered for conv nets: ONNX Runtime runs their convolutions as "
                   "ConvInteger, which measured no faster than fp32 (0.7-1.1x on ResNet-18 here, 2.5-6x slower "
                   "elsewhere) while static int8 gives 1.7-2x; use --calibrate SOURCE")

__all__ = ["DEFAULT_MAX_DROP", "DEFAULT_SAMPLES", "DYNAMIC_REFUSAL", "QuantizeReport", "RECIPES", "choose_recipe",
           "default_output", "format_report", "quantize_model", "quantize_source", "report_json",
           "slower_warning"]
