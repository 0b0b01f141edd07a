"""``cnnspec train``, framework-free: options, distribution, batches, the learning-rate schedule,
augmentation, the loss head, the epoch loop, checkpoints, scores, the outputs, the settings file and
the plots, one module each. A backend contributes only the inner loop, through
:meth:`cnnspec.backend.interface.Backend.make_trainer` (see :class:`cnnspec.backend.interface.Trainer`).

The names below are the package's public face; import them from here.

May import: errors, graph, spec, files, weights, onnxfile, backend, api, data, runner, quantize.
"""
from __future__ import annotations

from ..backend.interface import EpochStats, Progress, Trainer
from ..backend.trainconfig import (AUGMENTS, DEFAULT_LR, DEFAULT_VAL_FRACTION, DEVICES, OPTIMIZERS,
                                   PRECISIONS, SCHEDULES, TrainConfig)
from ..backend.world import World, world_from_env
from .augment import Augmenter, parse_augment
from .batching import VAL_SPLIT_SEED, EpochPlan, epoch_batches, shard, validation_split
from .checkpoint import CHECKPOINT_FILE, Checkpoint, read_checkpoint
from .loop import Selection, TrainResult, better_epoch, epoch_summary, patience_stop, run_epochs, train
from .loss import Head, training_head
from .outputs import OUTPUT_FILES, export_labels, history_csv, write_outputs
from .plots import plot_confusion, plot_curves
from .progress import EpochBar
from .schedule import Schedule, schedule_for
from .scores import confusion, per_class
from .settings import config_from, read_config, to_yaml

__all__ = [
    "AUGMENTS", "CHECKPOINT_FILE", "DEFAULT_LR", "DEFAULT_VAL_FRACTION", "DEVICES", "OPTIMIZERS", "OUTPUT_FILES",
    "PRECISIONS", "SCHEDULES", "VAL_SPLIT_SEED",
    "Augmenter", "Checkpoint", "EpochBar", "EpochPlan", "EpochStats", "Head", "Progress", "Schedule", "Selection",
    "TrainConfig", "TrainResult", "Trainer", "World",
    "better_epoch", "config_from", "confusion", "epoch_batches", "epoch_summary", "export_labels", "history_csv",
    "parse_augment", "patience_stop", "per_class", "plot_confusion", "plot_curves", "read_checkpoint",
    "read_config", "run_epochs", "schedule_for", "shard", "to_yaml", "train", "training_head",
    "validation_split", "world_from_env", "write_outputs",
]
