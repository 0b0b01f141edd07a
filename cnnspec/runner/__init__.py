"""``cnnspec run`` and ``cnnspec bench``: an exported model, ONNX Runtime and the user's files (.npy
arrays or images).

One job per module: ``session`` (the model and its provider), ``options`` (its threads),
``inputs`` (the user's files), ``metadata`` (labels, and whether the model ends in softmax),
``footprint`` (the activations of a batch, from the file), ``predict`` (run_model), ``save``
(``--save``), ``output`` (text and JSON), ``selection`` (a model's outputs by layer name, and the one
``--output`` picks); for ``bench``, ``speed`` (timing in alternating rounds),
``cpuinfo`` (the CPU's int8 instruction set) and ``benchmark`` (the command's figures). The names
below are the package's public face of ``run``.

May import: errors, graph, spec, files, onnxfile, api.
"""
from __future__ import annotations

from .inputs import MAX_NPY_BYTES, NPY_SUFFIXES, Sample, _load_image, _load_npy, load_inputs
from .metadata import classes, output_is_softmax
from .output import PROBABILITY_NOTES, format_results, to_json
from .predict import looks_like_probabilities, run_model, softmax
from .session import PROVIDERS, input_layout, open_session, run_batches

_ends_in_softmax = output_is_softmax  # the name tests and older callers use

__all__ = [
    "MAX_NPY_BYTES", "NPY_SUFFIXES", "PROBABILITY_NOTES", "PROVIDERS", "Sample", "classes", "format_results",
    "input_layout", "load_inputs", "looks_like_probabilities", "open_session", "output_is_softmax",
    "run_batches", "run_model", "softmax", "to_json",
]
