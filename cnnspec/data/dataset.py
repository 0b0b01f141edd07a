"""The one shape every training source takes (:class:`Dataset`), and the fixed stratified split
that holds out a test part where a source has none of its own."""
from __future__ import annotations

from dataclasses import dataclass

HELD_OUT_FRACTION = 0.2
SPLIT_SEED = 20240521  # fixed: the held-out split never depends on --seed, so runs stay comparable


@dataclass(frozen=True)
class Dataset:
    """Train and held-out arrays, ready for a framework: x float32 [N, C, H, W], y int64."""

    x_train: object
    y_train: object
    x_test: object
    y_test: object
    labels: tuple[str, ...]
    source: str
    # indices into x_train the source gives as its validation split (train/ + val/ + test/); None:
    # carved from the training images (--val-fraction)
    val_index: object = None
    # files found unreadable while loading (--cache), skipped; a streamed run finds its own as it reads
    skipped: tuple[str, ...] = ()
    split_note: str = ""  # which split is used, where the source chose it
    task: str = "classify"  # or "segment": y holds uint8 [N, H, W] masks of class indices (255 ignored)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def streamed(self) -> bool:
        """True where the images are files decoded batch by batch, not arrays in memory."""
        from .stream import is_lazy

        return is_lazy(self.x_train)

    def describe(self) -> str:
        c, h, w = self.x_train.shape[1:]
        how = ", streamed from their files" if self.streamed else ""
        note = f"; {self.split_note}" if self.split_note else ""
        return (f"{self.source}: {len(self.y_train)} training and {len(self.y_test)} held-out images"
                + (" with masks" if self.task == "segment" else "") + ", "
                f"[{c}, {h}, {w}], {self.num_classes} classes{how}{note}")


# ---------------------------------------------------------------- splitting

def stratified_split(labels, fraction: float = HELD_OUT_FRACTION, seed: int = SPLIT_SEED):
    """Indices (train, test): each class shuffled with a fixed seed, ``fraction`` of it held out
    (at least one image where the class has two or more). Stable for the same labels."""
    import numpy as np

    labels = np.asarray(labels)
    rng = np.random.RandomState(seed)
    train, test = [], []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        n_test = int(round(len(idx) * fraction))
        if len(idx) >= 2:
            n_test = min(max(n_test, 1), len(idx) - 1)
        else:
            n_test = 0
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
