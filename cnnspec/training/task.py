"""What the spec's output makes a run: a classifier (a vector of class scores) or a segmentation (a
[K, H, W] map of them), and the options each refuses; a segmentation's figures for metrics.json."""
from __future__ import annotations

from ..backend.trainconfig import IGNORE_INDEX, TrainConfig
from ..errors import UsageError
from .scores import mean_iou


def require_trainable(graph, config: TrainConfig) -> None:
    """Training fits class labels (an output of class scores such as [10]) or per-pixel class masks (a
    [K, H, W] map: segmentation); the options that mean nothing for the task are refused."""
    shape = graph.output_shape
    if shape is None or len(shape) not in (1, 3):
        raise UsageError(f"spec '{graph.name}': cnnspec train trains classifiers (an output of class scores such "
                         f"as [10]) and segmentations (a [K, H, W] map); this spec's output is "
                         f"[{', '.join(map(str, shape or ()))}]")
    segment = len(shape) == 3
    for broken, message in (
        (not segment and config.loss != "ce", f"--loss {config.loss} is for segmentation ([K, H, W] outputs); a "
                                              f"classifier trains with cross-entropy"),
        (segment and config.label_smoothing > 0, "--label-smoothing applies to classifiers, not to a segmentation"),
        (segment and bool(config.quantize), "--quantize int8 judges a classifier's accuracy; quantise a segmentation "
                                            "with cnnspec quantize"),
        (segment and "affine" in config.augment, "--augment affine would warp masks bilinearly (inventing class ids); "
                                                 "a segmentation takes crop, flip, jitter and erase"),
        (segment and "crop" in config.augment and tuple(shape[1:]) != tuple(graph.input_shape[1:]),
         f"--augment crop needs masks the size of the images, but the output map is {'x'.join(map(str, shape[1:]))} "
         f"and the input {'x'.join(map(str, graph.input_shape[1:]))}"),
    ):
        if broken:
            raise UsageError(message)


def require_head_for(config: TrainConfig, graph) -> None:
    from ..weights.partial import head_layers

    if config.lr_backbone is not None and not head_layers(graph):
        raise UsageError(f"--lr-backbone: spec '{graph.name}' has no dense or conv head to tell from its backbone")


def segmentation_metrics(matrix, labels, config: TrainConfig) -> dict:
    """metrics.json's segmentation figures of the chosen epoch on the test images."""
    miou, ious = mean_iou(matrix)
    return {"test_miou": miou, "per_class_iou": ious, "test_pixel_accuracy": float(matrix.trace() / max(matrix.sum(), 1)),
            "loss_function": config.loss, "ignore_index": IGNORE_INDEX}
