"""``cnnspec eval`` of a segmentation model (an output of [batch, K, H, W] class scores): pixel
accuracy, per-pixel cross-entropy, per-class IoU and mean IoU on the held-out image/mask pairs,
computed as ``train`` computes them (pixels of class 255 left out), a chunk of images at a time."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError
from .scores import confusion, matrix_json, mean_iou, per_class

IGNORE = 255
CHUNK_PIXELS = 2 ** 24  # output values (K x H x W per image) scored at once


@dataclass(frozen=True)
class ModelFace:
    """What a data source is checked against, read from an exported model instead of a spec."""

    name: str
    file: str
    input_shape: tuple[int, int, int]
    output_shape: tuple[int, ...]
    classes: tuple[str, ...] | None


def map_output(session) -> tuple | None:
    """(K, H, W) where the model's output is a [batch, K, H, W] map of two or more classes, else None."""
    shape = session.get_outputs()[0].shape
    if len(shape) == 4 and all(isinstance(d, int) and d > 0 for d in shape[1:]) and shape[1] >= 2:
        return tuple(shape[1:])
    return None


def evaluate_segmentation(model_path: str, session, meta: dict, chw, khw, source: str, provider: str,
                          batch, batch_size: int, strict: bool) -> dict:
    import numpy as np

    from ..data.sources import load_source
    from ..data.stream import take
    from ..runner import classes, run_batches

    k = khw[0]
    labels = classes(meta, k)
    face = ModelFace(meta.get("cnnspec.name", "model"), model_path, tuple(chw), tuple(khw),
                     tuple(labels) if labels else None)
    data = load_source(source, face, cache=False, strict=strict)
    x, y = data.x_test, data.y_test
    matrix = np.zeros((k, k), np.int64)
    loss_sum, unreadable = 0.0, []
    step = max(1, CHUNK_PIXELS // (k * khw[1] * khw[2]))
    for start in range(0, len(x), step):
        idx = np.arange(start, min(start + step, len(x)))
        images, kept, error = take(x, idx, strict)
        masks, also, merror = take(y, idx[kept], strict) if not error else (None, None, "")
        if error or merror:
            raise InputError(error or merror)
        images = images[also]
        unreadable += [x.paths[i] for i in idx[~kept]] + [y.paths[i] for i in idx[kept][~also]]
        if not len(images):
            continue
        raw = run_batches(session, images, batch, batch_size, model_path).astype(np.float64)
        if not np.isfinite(raw).all():
            raise InputError(f"{model_path}: the model's output holds NaN or infinite values")
        shifted = raw - raw.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        masks = np.asarray(masks, np.int64)
        valid = masks != IGNORE
        picked = np.take_along_axis(log_probs, np.where(valid, masks, 0)[:, None], axis=1)[:, 0]
        loss_sum += float(-(picked * valid).sum())
        matrix += confusion(masks[valid], raw.argmax(axis=1)[valid], k)
    pixels = int(matrix.sum())
    if not pixels:
        raise InputError(f"{data.source}: no held-out pixel that counts could be read")
    miou, ious = mean_iou(matrix)
    names = list(labels) if labels else [str(i) for i in range(k)]
    return {
        "model": model_path, "name": face.name, "data": source, "data_description": data.describe(),
        "split": "held-out", "task": "segmentation", "images": int(len(x)) - len(unreadable), "pixels": pixels,
        "provider": provider, "accuracy": float(matrix.trace() / pixels), "loss": loss_sum / pixels,
        "miou": miou, "per_class_iou": ious, "classes": names, "per_class": per_class(matrix, names),
        "confusion_matrix": matrix_json(matrix), "unreadable_images": len(unreadable),
        "unreadable_files": unreadable[:100],
    }


def format_segmentation(result: dict) -> str:
    lines = [f"{result['model']} on {result['data_description']}",
             f"held-out split: {result['images']} images ({result['pixels']:,} pixels that count): mIoU "
             f"{result['miou']:.4f}, pixel accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f}", ""]
    width = max(5, *(len(c) for c in result["classes"]))
    lines.append(f"{'class':<{width}}     IoU")
    for name, iou in zip(result["classes"], result["per_class_iou"]):
        lines.append(f"{name:<{width}}  " + ("     -" if iou is None else f"{iou:6.4f}"))
    return "\n".join(lines)
