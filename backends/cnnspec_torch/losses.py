"""The per-pixel losses of a segmentation (``--loss``) in PyTorch: cross-entropy and soft Dice, the
pixels marked 255 left out of both (the Keras backend computes the same)."""
from __future__ import annotations

from cnnspec.backend.trainconfig import IGNORE_INDEX


def _pixel_ce(torch, logits, target):
    return torch.nn.functional.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)


def _soft_dice(torch, logits, target):
    """1 - the mean over classes of soft Dice (2|P.T| + 1) / (|P| + |T| + 1), ignored pixels left out."""
    k = logits.shape[1]
    valid = (target != IGNORE_INDEX).unsqueeze(1)
    probs = logits.softmax(1) * valid
    onehot = torch.nn.functional.one_hot(torch.where(valid[:, 0], target, 0), k).permute(0, 3, 1, 2) * valid
    inter = (probs * onehot).sum((0, 2, 3))
    denom = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    return 1 - ((2 * inter + 1) / (denom + 1)).mean()


# --loss of a segmentation: (torch, logits [B, K, H, W], masks [B, H, W]) -> the batch's mean loss
SEGMENTATION_LOSSES = {
    "ce": _pixel_ce,
    "dice": _soft_dice,
    "ce+dice": lambda torch, logits, target: _pixel_ce(torch, logits, target) + _soft_dice(torch, logits, target),
}
