"""``cnnspec run`` end to end: the model on every sample, then class probabilities.

No framework at import time; onnxruntime and numpy are imported inside the functions that need
them. Softmax is applied only where the model does not already end in it: the metadata decides
(:func:`cnnspec.runner.metadata.output_is_softmax`), and only where it cannot, the numbers do.
"""
from __future__ import annotations

from ..errors import InputError, UsageError
from ..graph.resources import require_fits
from .footprint import require_batch_fits
from .inputs import FLOAT32, expand_inputs, load_inputs
from .metadata import classes, display_name, output_is_softmax
from .selection import model_outputs
from .session import input_layout, open_session, run_batches_all


def softmax(scores):
    import numpy as np

    shifted = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def looks_like_probabilities(raw) -> bool:
    """The last resort, for a model whose metadata cannot say: non-negative rows summing to 1."""
    import numpy as np

    return bool(np.all(raw >= 0) and np.allclose(raw.sum(axis=1), 1.0, atol=1e-4))


def _require_finite(model_path: str, raw, samples) -> None:
    """NaN or infinite outputs (broken weights, an overflow) are refused: no ranking means anything."""
    import numpy as np

    bad = ~np.isfinite(raw.reshape(raw.shape[0], -1)).all(axis=1)
    if bad.any():
        first = samples[int(np.flatnonzero(bad)[0])]
        where = first.file if first.index is None else f"{first.file}[{first.index}]"
        raise InputError(f"{model_path}: the model's output for {where} holds NaN or infinite values "
                         f"({int(bad.sum())} of {len(bad)} samples)")


def run_model(model_path, inputs: list[str], provider: str = "cpu", batch_size: int = 32, top: int = 5,
              save: str | None = None) -> dict:
    """Run ``model_path`` on every sample of ``inputs``; a JSON-ready result (see ``format_results``).

    A model whose output is not a vector of class scores (a map: a segmentation) has its outputs
    saved as ``.npy`` files in ``save`` (default ``outputs/``) instead of top classes; ``save``
    also saves a classifier's raw scores beside its top classes. A model with several outputs
    reports each under ``outputs`` (name, shape, its classes or saved files), and saves
    ``<input stem>.<output name>.npy``."""
    from ..onnxfile.boundary import metadata

    if batch_size < 1:
        raise UsageError(f"--batch-size must be 1 or more, got {batch_size}")
    if top < 1:
        raise UsageError(f"--top must be 1 or more, got {top}")
    if not inputs:
        raise UsageError("no input files; pass --input FILE...")
    inputs = expand_inputs(inputs)  # a folder: every image in it
    model_path = str(model_path)
    model, session = open_session(model_path, provider)
    meta = metadata(model)
    batch, chw = input_layout(model_path, session, meta)
    c, h, w = chw  # the smallest run: one sample (or the model's fixed batch), before any file is decoded
    require_fits(c * h * w * FLOAT32 * (batch or 1), f"{model_path}: its declared input [{batch or 1}, {c}, {h}, {w}] "
                 f"as float32 would", error=InputError)
    data, samples = load_inputs(inputs, chw)
    require_batch_fits(model, model_path, batch or min(batch_size, len(data)))
    pairs = model_outputs(meta, session)
    raws = run_batches_all(session, data, batch, batch_size, model_path, [onnx_name for _, onnx_name in pairs])
    for raw in raws:
        _require_finite(model_path, raw, samples)
    result = {
        "model": model_path,
        "name": display_name(meta, model),
        "provider": provider,
        "input_shape": list(chw),
        "output_shape": list(raws[0].shape[1:]),
    }
    several = len(pairs) > 1
    to_save = [(layer if several else None, raw) for (layer, _), raw in zip(pairs, raws)
               if raw.ndim != 2 or save is not None]
    saved = {}
    if to_save:
        from .save import DEFAULT_DIR, save_named_outputs

        saved = save_named_outputs(to_save, samples, save if save is not None else DEFAULT_DIR)
    if not several:
        result.update(_judged(raws[0], samples, saved.get(None), meta, top, first=True))
        return result
    result["outputs"] = [{"name": layer, "output_shape": list(raw.shape[1:]),
                          **_judged(raw, samples, saved.get(layer), meta, top, first=k == 0)}
                         for k, ((layer, _), raw) in enumerate(zip(pairs, raws))]
    return result


def _judged(raw, samples, saved: dict | None, meta: dict, top: int, first: bool) -> dict:
    """One output's report: a map's saved files and a summary per sample, or a vector's top classes.
    The metadata's softmax and labels describe the first output; another is judged by its numbers."""
    import numpy as np

    from .save import is_class_map, mask_path

    if raw.ndim != 2:  # not class scores: the saved arrays, and a summary of each sample's output
        return {"probabilities": None, "results": [
            {"input": s.file, "index": s.index, "saved": saved[s.file], "min": float(o.min()), "max": float(o.max()),
             "mean": float(o.mean()),
             **({"mask": mask_path(saved[s.file], s.index)} if is_class_map(raw) else {})}
            for s, o in zip(samples, raw)]}
    ends_in_softmax = output_is_softmax(meta) if first else None
    if ends_in_softmax is None:  # no usable cnnspec metadata in the file: judge by the numbers
        ends_in_softmax = looks_like_probabilities(raw)
    probs = raw.astype(np.float64) if ends_in_softmax else softmax(raw.astype(np.float64))
    labels = classes(meta, raw.shape[1]) if first else None
    k = min(top, raw.shape[1])
    entries = []
    for sample, p in zip(samples, probs):
        order = np.argsort(-p, kind="stable")[:k]
        entries.append({"input": sample.file, "index": sample.index, **({"saved": saved[sample.file]} if saved else {}),
                        "top": [
            {"class": int(i), "label": labels[i] if labels else None, "probability": float(p[i])} for i in order]})
    return {"probabilities": "model" if ends_in_softmax else "softmax", "results": entries}
