"""``cnnspec train``, framework-free: options, distribution, batches, the loss head, the epoch loop,
the outputs and the plots, one module each. A backend contributes only the inner loop, through
:meth:`cnnspec.backend_api.Backend.make_trainer` (see :class:`cnnspec.backend_api.Trainer`).

The names below are the package's public face; import them from here.
"""
from __future__ import annotations

from ..backend_api import EpochStats, Progress, Trainer
from .batching import VAL_SPLIT_SEED, epoch_batches, shard, validation_split
from .config import DEFAULT_LR, DEFAULT_VAL_FRACTION, DEVICES, OPTIMIZERS, TrainConfig
from .distributed import World, world_from_env
from .loop import Selection, TrainResult, better_epoch, epoch_summary, run_epochs, train
from .loss import Head, training_head
from .outputs import OUTPUT_FILES, export_labels, write_outputs
from .plots import plot_curves
from .progress import EpochBar

__all__ = [
    "DEFAULT_LR", "DEFAULT_VAL_FRACTION", "DEVICES", "OPTIMIZERS", "OUTPUT_FILES", "VAL_SPLIT_SEED",
    "EpochBar", "EpochStats", "Head", "Progress", "Selection", "TrainConfig", "TrainResult", "Trainer", "World",
    "better_epoch", "epoch_batches", "epoch_summary", "export_labels", "plot_curves", "run_epochs", "shard",
    "train", "training_head", "validation_split", "world_from_env", "write_outputs",
]
