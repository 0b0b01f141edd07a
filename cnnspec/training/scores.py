"""Per-class precision, recall and F1 from a confusion matrix (rows true, columns predicted),
framework-free: ``train`` and ``eval`` report the same numbers the same way."""
from __future__ import annotations


def confusion(y_true, y_pred, classes: int):
    """A classes x classes count matrix: row = true label, column = predicted label."""
    import numpy as np

    flat = np.asarray(y_true, np.int64) * classes + np.asarray(y_pred, np.int64)
    return np.bincount(flat, minlength=classes * classes).reshape(classes, classes)


def per_class(matrix, labels) -> list[dict]:
    """One row per class: precision, recall, F1 and support (the true count). A class never
    predicted (or never present) scores 0 where the ratio is undefined, as scikit-learn does."""
    import numpy as np

    m = np.asarray(matrix, np.int64)
    hits, predicted, actual = np.diag(m), m.sum(axis=0), m.sum(axis=1)
    rows = []
    for i, label in enumerate(labels):
        precision = hits[i] / predicted[i] if predicted[i] else 0.0
        recall = hits[i] / actual[i] if actual[i] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"class": i, "label": label, "precision": round(float(precision), 6),
                     "recall": round(float(recall), 6), "f1": round(float(f1), 6), "support": int(actual[i])})
    return rows


def matrix_json(matrix) -> list[list[int]]:
    return [[int(v) for v in row] for row in matrix]


def mean_iou(matrix) -> tuple[float, list]:
    """(mean IoU over the classes present in truth or prediction, each class's IoU or None where it
    is in neither) from a pixel confusion matrix."""
    import numpy as np

    m = np.asarray(matrix, np.float64)
    hits = np.diag(m)
    union = m.sum(axis=0) + m.sum(axis=1) - hits
    ious = [float(h / u) if u else None for h, u in zip(hits, union)]
    present = [v for v in ious if v is not None]
    return (float(np.mean(present)) if present else 0.0), ious
