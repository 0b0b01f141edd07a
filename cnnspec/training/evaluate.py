"""``cnnspec eval``: any exported classifier (fp32 or quantised) scored on the held-out split of a
data source, with ONNX Runtime through the runner's session code: accuracy, loss, per-class
precision/recall/F1 and the confusion matrix, computed as ``train`` computes them.

The split is the one ``train`` holds out (``Dataset.x_test``: the source's own test set, or the
fixed stratified 20%), so a model's eval accuracy is its training run's ``test_accuracy``.
"""
from __future__ import annotations

from ..errors import InputError, UsageError, plural
from .evaluate_segmentation import ModelFace, evaluate_segmentation, map_output
from .scores import confusion, matrix_json, per_class


def _output_units(model_path: str, session, meta: dict, output: str, first: bool = True) -> int:
    from ..runner.metadata import CLASSES_KEY, read_json

    shape = next(o.shape for o in session.get_outputs() if o.name == output)
    if len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 0:
        return shape[1]
    labels = read_json(meta, CLASSES_KEY) if first else None
    if len(shape) == 2 and isinstance(labels, list) and labels:
        return len(labels)
    raise InputError(f"{model_path}: the model's output has shape {shape}; cnnspec eval scores classifiers "
                     f"([batch, classes])")


def _scores(session, data, batch, batch_size: int, run_batches, strict: bool, output: str | None = None):
    """(raw outputs, labels, unreadable paths) of the held-out images; image files are decoded a
    chunk at a time (never the whole split at once), unreadable ones skipped and named."""
    import numpy as np

    from ..data.stream import is_lazy

    x, y = data.x_test, data.y_test
    if not is_lazy(x):
        return run_batches(session, x, batch, batch_size, output=output).astype(np.float64), y, []
    outputs, labels, unreadable = [], [], []
    chunk = max(batch or batch_size, 1) * 4
    for start in range(0, len(x), chunk):
        idx = np.arange(start, min(start + chunk, len(x)))
        images, kept, error = x.take(idx, strict)
        if error:
            raise InputError(error)
        unreadable += [x.paths[i] for i in idx[~kept]]
        if len(images):
            outputs.append(run_batches(session, images, batch, batch_size, output=output).astype(np.float64))
            labels.append(y[idx[kept]])
    if not outputs:
        raise InputError(f"{data.source}: no held-out image could be read")
    return np.concatenate(outputs), np.concatenate(labels), unreadable


def evaluate_model(model_path, source: str, provider: str = "cpu", batch_size: int = 256,
                   output: str | None = None, strict: bool = False) -> dict:
    """The model on ``source``'s held-out images; a JSON-ready result. ``output``: the output judged,
    by layer name, for a model with several (default: the first); the result's ``output`` names it.
    Image files are streamed; an unreadable one is skipped and named (``strict``: an error)."""
    import numpy as np

    from ..data.sources import load_source
    from ..onnxfile.boundary import metadata
    from ..runner import classes, input_layout, looks_like_probabilities, open_session, output_is_softmax, run_batches
    from ..runner.footprint import require_batch_fits

    if batch_size < 1:
        raise UsageError(f"--batch-size must be 1 or more, got {batch_size}")
    model_path = str(model_path)
    model, session = open_session(model_path, provider)
    meta = metadata(model)
    batch, chw = input_layout(model_path, session, meta)
    from ..runner.selection import choose_model_output, model_outputs

    layer, onnx_name = choose_model_output(model_path, meta, session, output)
    first = onnx_name == session.get_outputs()[0].name  # the metadata's softmax and labels describe the first
    several = len(model_outputs(meta, session)) > 1
    khw = map_output(session) if first else None
    if khw is not None:  # [batch, K, H, W]: a segmentation, scored per pixel
        return evaluate_segmentation(model_path, session, meta, chw, khw, source, provider, batch, batch_size, strict)
    units = _output_units(model_path, session, meta, onnx_name, first)
    labels = classes(meta, units) if first else None
    face = ModelFace(meta.get("cnnspec.name", model.graph.name), model_path, tuple(chw), (units,),
                     tuple(labels) if labels else None)
    data = load_source(source, face, cache=False, strict=strict)
    require_batch_fits(model, model_path, batch or min(batch_size, len(data.x_test)))
    raw, y, unreadable = _scores(session, data, batch, batch_size, run_batches, strict, onnx_name)
    broken = ~np.isfinite(raw).all(axis=1)
    if broken.any():  # as `run` refuses them: an accuracy from NaN scores would mean nothing
        raise InputError(f"{model_path}: the model's output holds NaN or infinite values for {int(broken.sum())} "
                         f"of {len(raw)} held-out images (broken weights, or an overflow)")
    softmaxed = output_is_softmax(meta) if first else None
    if softmaxed is None:  # no usable cnnspec metadata: judge by the numbers, as `run` does
        softmaxed = looks_like_probabilities(raw)
    if softmaxed:
        log_probs = np.log(np.clip(raw, 1e-12, None))
    else:
        shifted = raw - raw.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    matrix = confusion(y, raw.argmax(axis=1), units)
    names = list(labels) if labels else [*data.labels, *(str(i) for i in range(len(data.labels), units))]
    return {
        "model": model_path, "name": face.name, "data": source, "data_description": data.describe(),
        "split": "held-out", "images": int(len(y)), "provider": provider, "output": layer,
        "model_outputs": [name for name, _ in model_outputs(meta, session)] if several else [layer],
        "outputs": "probabilities" if softmaxed else "logits",
        "accuracy": float(matrix.trace() / len(y)), "loss": float(-log_probs[np.arange(len(y)), y].mean()),
        "classes": names, "per_class": per_class(matrix, names), "confusion_matrix": matrix_json(matrix),
        "unreadable_images": len(unreadable), "unreadable_files": unreadable[:100],
    }


def format_evaluation(result: dict) -> str:
    """The text ``cnnspec eval`` prints: the headline, a per-class table and the confusion matrix."""
    if result.get("task") == "segmentation":
        from .evaluate_segmentation import format_segmentation

        return format_segmentation(result)
    lines = [f"{result['model']} on {result['data_description']}"]
    if len(result.get("model_outputs", ())) > 1:
        lines.append(f"judged output '{result['output']}' (of {', '.join(result['model_outputs'])}; --output picks another)")
    lines += [
             f"held-out split: {plural(result['images'], 'image')}: accuracy {result['accuracy']:.4f}, "
             f"loss {result['loss']:.4f}", ""]
    if result.get("unreadable_images"):
        lines[-1:-1] = [f"skipped {result['unreadable_images']} unreadable image(s) (--strict refuses them): "
                        + ", ".join(result["unreadable_files"][:5])]
    width = max(5, *(len(c["label"]) for c in result["per_class"]))
    lines.append(f"{'class':<{width}}  precision  recall      f1  support")
    for c in result["per_class"]:
        lines.append(f"{c['label']:<{width}}  {c['precision']:9.4f}  {c['recall']:6.4f}  {c['f1']:6.4f}  "
                     f"{c['support']:7d}")
    matrix = result["confusion_matrix"]
    cell = max(3, len(str(max((max(r) for r in matrix), default=0))))
    lines += ["", "confusion matrix (rows true, columns predicted):",
              " " * (width + 1) + " ".join(f"{c['label'][:cell]:>{cell}}" for c in result["per_class"])]
    for c, row in zip(result["per_class"], matrix):
        lines.append(f"{c['label']:<{width}} " + " ".join(f"{v:>{cell}}" for v in row))
    return "\n".join(lines)
