"""The run: load, check, train epoch by epoch, choose the best epoch, and hand rank 0's result to
the outputs.

The best epoch is chosen on a validation split carved from the training images (``--val-fraction``,
stratified, fixed), never on the test set: the reported ``test_accuracy`` is the chosen epoch's score
on images that took no part in any decision. With ``--val-fraction 0`` the last epoch is kept.

A backend contributes only the inner loop, through :meth:`cnnspec.backend_api.Backend.make_trainer`;
its statistics are already summed over every process, so every rank takes the same decisions here.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..backend_api import Progress
from ..errors import UsageError
from ..fsutil import check_can_create_dir
from .batching import epoch_batches, shard, validation_split
from .config import TrainConfig
from .distributed import World, world_from_env
from .loss import training_head
from .outputs import OUTPUT_FILES, export_labels, write_outputs
from .progress import EpochBar, has_tqdm


@dataclass(frozen=True)
class TrainResult:
    outdir: Path | None
    metrics: dict
    written: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class Selection:
    """What the epochs produced: every epoch's row, the chosen one and its weights, and the timing."""

    history: list[dict]
    best: dict
    best_weights: dict
    train_seconds: float
    train_images: int


def train(spec_path: str, backend_name: str, source: str, config: TrainConfig, outdir: str | Path | None = None,
          resume: str | None = None, progress: Progress | None = None, env=os.environ) -> TrainResult:
    """Load, check, train, pick the best epoch, and (rank 0 only) write the outputs."""
    from ..api import load
    from ..data import load_source
    from ..plugins import load_backend
    from ..resources import require_memory, require_onnx_size
    from ..weights import read_weights

    world = world_from_env(env)
    config.validate(world)
    say = progress if (progress is not None and world.is_writer) else (lambda _m: None)
    graph = load(spec_path).graph
    require_onnx_size(graph)  # the run ends by exporting model.onnx: say so before training, not after
    require_memory(graph, batch=config.batch_size // world.size)  # activations of this process's share too
    out = Path(outdir) if outdir is not None else Path("runs") / graph.name
    if world.is_writer:
        check_can_create_dir(out, OUTPUT_FILES)  # created only when the outputs are written
    backend = load_backend(backend_name)
    data = load_source(source, graph)
    head = training_head(graph)
    initial = read_weights(resume, graph) if resume else None
    say(data.describe())
    say(head.note)
    lr = config.learning_rate
    say(f"{backend_name} on {config.device}" + (f", {world.size} processes" if world.size > 1 else "")
        + f": {config.epochs} epochs, batch {config.batch_size}, {config.optimizer} lr {lr:g}, seed {config.seed}"
        + (f", resuming from {resume}" if resume else ""))

    fit_idx, val_idx = validation_split(data.y_train, config.val_fraction)
    if len(val_idx):
        say(f"validation: {len(val_idx)} of the {len(data.y_train)} training images (stratified) choose the "
            f"best epoch; the {len(data.y_test)} test images only report it")
    elif config.val_fraction > 0:
        say("too few training images per class for a validation split: the last epoch is kept")
    else:
        say("no validation split (--val-fraction 0): the last epoch is kept")
    trainer = backend.make_trainer(head.train_graph, initial, config, world)
    try:
        run = run_epochs(trainer, data, fit_idx, val_idx, config, world, say)
    finally:
        trainer.close()

    best = run.best
    metrics = {
        "spec": graph.name, "backend": backend_name, "device": config.device, "seed": config.seed,
        "data": source, "data_description": data.describe(), "train_images": int(len(fit_idx)),
        "validation_images": int(len(val_idx)), "test_images": int(len(data.y_test)),
        "selected_by": "validation accuracy" if len(val_idx) else "last epoch", "classes": list(export_labels(graph, data)),
        "epochs": config.epochs, "batch_size": config.batch_size, "optimizer": config.optimizer,
        "lr": lr, "loss": head.note, "world_size": world.size, "resumed_from": resume,
        "test_accuracy": best["test_accuracy"], "test_loss": best["test_loss"], "best_epoch": best["epoch"],
        "val_accuracy": best.get("val_accuracy"), "val_loss": best.get("val_loss"),
        "train_seconds": round(run.train_seconds, 3),
        "images_per_second": round(run.train_images / run.train_seconds, 1) if run.train_seconds > 0 else None,
        "history": run.history,
    }
    chosen = "by validation accuracy" if len(val_idx) else "the last"
    say(f"best epoch {best['epoch']} ({chosen}): test accuracy {best['test_accuracy']:.4f}, "
        f"loss {best['test_loss']:.4f}; {metrics['images_per_second']} images/s")
    if not world.is_writer:
        return TrainResult(None, metrics)
    written = write_outputs(out, backend, graph, data, run.best_weights, metrics, config.seed, say)
    return TrainResult(out, metrics, written)


def run_epochs(trainer, data, fit_idx, val_idx, config: TrainConfig, world: World, say: Progress) -> Selection:
    """Train every epoch, score it on the validation and test shards, and keep the best one's weights."""
    history, best, best_weights = [], None, None
    train_seconds, train_images = 0.0, 0
    n_batches = len(epoch_batches(len(fit_idx), config.batch_size, config.seed, 1, world))
    val_shard = val_idx[shard(len(val_idx), world)]
    test_shard = shard(len(data.y_test), world)
    for epoch in range(1, config.epochs + 1):
        batches = [fit_idx[b] for b in epoch_batches(len(fit_idx), config.batch_size, config.seed, epoch, world)]
        bar = EpochBar(n_batches, f"epoch {epoch}/{config.epochs}", world.is_writer and not config.quiet)
        start = time.perf_counter()
        stats = trainer.train_epoch(data.x_train, data.y_train, batches, bar)
        seconds = time.perf_counter() - start
        if not math.isfinite(stats.loss):
            bar.close()
            raise UsageError(f"training diverged in epoch {epoch} (the loss is {stats.loss}); "
                             f"try a lower --lr than {config.learning_rate:g}")
        row = {"epoch": epoch, "train_loss": stats.loss, "train_accuracy": stats.accuracy}
        if len(val_idx):
            row["val_loss"], row["val_accuracy"] = trainer.evaluate(data.x_train, data.y_train, val_shard)
        row["test_loss"], row["test_accuracy"] = trainer.evaluate(data.x_test, data.y_test, test_shard)
        row["seconds"] = round(seconds, 4)
        row["images_per_second"] = round(stats.images / seconds, 1) if seconds > 0 else None
        summary = epoch_summary(row)
        bar.close(summary)
        train_seconds += seconds
        train_images += stats.images
        history.append(row)
        if config.quiet or not world.is_writer or not has_tqdm():
            say(f"epoch {epoch}/{config.epochs}: {summary}")
        if best is None or better_epoch(row, best):
            best, best_weights = row, trainer.weights()
    return Selection(history, best, best_weights, train_seconds, train_images)


def epoch_summary(row: dict) -> str:
    text = f"loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}"
    if "val_accuracy" in row:
        text += f" | val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f}"
    return text + f" | test loss {row['test_loss']:.4f} acc {row['test_accuracy']:.4f}"


def better_epoch(row: dict, best: dict) -> bool:
    """Higher validation accuracy wins, then lower validation loss; a full tie keeps the earlier
    epoch. Without validation every later epoch wins (the last is kept)."""
    if "val_accuracy" not in row:
        return True
    return (row["val_accuracy"], -row["val_loss"]) > (best["val_accuracy"], -best["val_loss"])
