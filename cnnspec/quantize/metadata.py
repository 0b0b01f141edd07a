"""The quantised file's metadata: everything the fp32 model said (spec, classes, shapes, output op:
``run`` and ``eval`` read them the same way), plus ``cnnspec.quantization``, one JSON object saying
how it was made, so a file always tells what it is and what it was calibrated on."""
from __future__ import annotations

import json

from .model import QUANTIZATION_KEY


def quantization_record(recipe, source: str, calibration_images: int, batchnorms_folded: int, fp32_model: str,
                        held_out: dict | None) -> dict:
    import onnxruntime

    return {
        "method": "static",
        "format": recipe.quant_format,
        "recipe": recipe.name,
        "weights": recipe.weights,
        "per_channel": recipe.per_channel,
        "weight_symmetric": True,
        "reduce_range": recipe.reduce_range,
        "activations": recipe.activations,
        "activation_symmetric": recipe.symmetric_activations,
        "calibration": {"source": source, "images": calibration_images, "method": "MinMax",
                        "part": "training"},
        "batchnorms_folded": batchnorms_folded,
        "fp32_model": fp32_model,
        "held_out": held_out,
        "onnxruntime": onnxruntime.__version__,
    }


def apply_metadata(model, fp32_metadata: dict, record: dict, producer) -> None:
    """The fp32 model's metadata, then the record; cnnspec as the producer."""
    meta = {**fp32_metadata, QUANTIZATION_KEY: json.dumps(record, ensure_ascii=False, sort_keys=True)}
    del model.metadata_props[:]
    for key in sorted(meta):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, meta[key]
    model.producer_name, model.producer_version = producer.producer_name, producer.producer_version
    model.doc_string = producer.doc_string
    model.graph.name = producer.graph.name
