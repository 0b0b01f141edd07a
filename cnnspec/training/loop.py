"""The run: load, check, train epoch by epoch, choose the best epoch, and hand rank 0's result to
the outputs.

The best epoch is chosen on a validation split carved from the training images (``--val-fraction``,
stratified, fixed), never on the test set: the reported ``test_accuracy`` is the chosen epoch's score
on images that took no part in any decision. With ``--val-fraction 0`` the last epoch is kept.
``--patience N`` stops once the validation accuracy has not improved for N epochs.

Each epoch's plan (batches, the learning rate of every step, augmentation) is decided here, framework
free; a backend contributes only the inner loop, through :meth:`cnnspec.backend.interface.Backend.make_trainer`.
Its statistics are already summed over every process, so every rank takes the same decisions here.
After every epoch the run's state goes to ``checkpoint.safetensors`` (rank 0 writes it), from which
``--resume`` carries on exactly.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from ..backend.interface import Progress
from ..backend.trainconfig import TrainConfig
from ..backend.world import World, world_from_env
from ..errors import Interrupted, UsageError, plural
from ..files.atomic import check_can_create_dir
from .augment import Augmenter
from .batching import EpochPlan, epoch_batches, shard, validation_split
from .checkpoint import CHECKPOINT_FILE, Checkpoint, read_checkpoint, refuse_if_different, run_record, write_checkpoint
from .int8 import Int8Step, require_quantizer
from ..runner.selection import choose_output
from .loss import judged_graph, training_head
from .outputs import OPTIONAL_FILES, OUTPUT_FILES, export_labels, write_outputs
from .progress import EpochBar, has_tqdm
from .schedule import schedule_for
from .scores import matrix_json, mean_iou, per_class
from .settings import to_yaml
from .task import require_head_for, require_trainable, segmentation_metrics


MAX_LISTED = 100  # unreadable files named in metrics.json (the count is always whole)


@dataclass(frozen=True)
class TrainResult:
    outdir: Path | None
    metrics: dict
    written: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class Selection:
    """What the epochs produced: every epoch's row, the chosen one, its weights and test confusion
    matrix, the timing, and why training stopped."""

    history: list[dict]
    best: dict
    best_weights: dict
    best_confusion: object
    train_seconds: float
    train_images: int
    stop_reason: str
    stopped_early: bool = False


def train(spec_path: str, backend_name: str, source: str, config: TrainConfig, outdir: str | Path | None = None,
          init: str | None = None, resume: str | Path | None = None, progress: Progress | None = None,
          env=os.environ, output: str | None = None, choice=None) -> TrainResult:
    """Load, check, train (or carry on from ``resume``, a run folder), pick the best epoch, and
    (rank 0 only) write the outputs. ``init``: a weights file to start from instead of the seed's.
    ``output``: for a spec with several outputs, the one trained and judged (default: the first);
    the exported model keeps them all."""
    from ..api import load
    from ..backend.plugins import load_backend
    from ..data.sources import load_source
    from ..graph.resources import require_memory, require_onnx_size
    from .finetune import frozen_layers, frozen_tensors, initial_weights, require_something_trains

    world = world_from_env(env)
    config.validate(world)
    require_quantizer(config)
    say = progress if (progress is not None and world.is_writer) else (lambda _m: None)
    checkpoint = read_checkpoint(resume) if resume is not None else None
    full = load(spec_path, choice=choice).graph  # choice: the spec's --scale/--set
    judged = choose_output(full.output_names, output, f"spec '{full.name}'", "-o/--out DIR")
    graph = judged_graph(full, judged)
    if full.several_outputs:
        say(f"training output '{judged}' (of {', '.join(full.output_names)}; --output picks another); the other "
            f"heads keep their initial weights")
    require_trainable(graph, config)
    segment = len(graph.output_shape) == 3
    require_onnx_size(graph)  # the run ends by exporting model.onnx: say so before training, not after
    require_memory(graph, batch=config.batch_size // world.size)  # activations of this process's share too
    if resume is not None:
        out = Path(resume).parent if Path(resume).is_file() else Path(resume)
    else:
        out = Path(outdir) if outdir is not None else Path("runs") / (graph.name + (f"-{graph.scale}" if graph.scale else ""))
    if world.is_writer:
        check_can_create_dir(out, OUTPUT_FILES + OPTIONAL_FILES + (CHECKPOINT_FILE,))  # created by the first checkpoint
    backend = load_backend(backend_name)
    data = load_source(source, graph, cache=config.cache, strict=config.strict)
    head = training_head(graph)
    record = run_record(spec_path, backend_name, source, data, config, world, choice)
    if judged != full.output_names[0]:
        record["output_name"] = judged  # a resumed run trains the same output
    if checkpoint is not None:
        refuse_if_different(resume, checkpoint, record)
        record = {**record, "given": checkpoint.record.get("given")}  # as the run was started
    frozen = frozen_layers(graph, config.freeze, config.freeze_until)
    require_something_trains(graph, frozen)
    require_head_for(config, graph)
    initial, init_record = None, (checkpoint.record.get("init") if checkpoint is not None else None)
    if init and checkpoint is None:
        plan = initial_weights(init, graph, lambda: backend.get_weights(
            backend.compile(head.train_graph, weights=None, seed=config.seed), head.train_graph), config.allow_partial, say)
        initial, init_record = plan.weights, plan.record
        record["init"] = init_record
        say(plan.note)
    say(data.describe())
    say(head.note)
    if frozen:
        say(f"frozen: {len(frozen_tensors(graph, frozen))} tensors of {len(frozen)} layers "
            f"({_first(frozen)}), batchnorm statistics included; they take no gradient")
    say(_describe(backend_name, config, world, init, resume, checkpoint, data.streamed))

    fit_idx, val_idx = fit_and_validation(data, config)
    if data.val_index is not None:
        say(f"validation: the {len(val_idx)} images of the given val/ folder choose the best epoch "
            f"(--val-fraction does not apply); the {len(data.y_test)} test images only report it")
    elif len(val_idx):
        say(f"validation: {len(val_idx)} of the {len(data.y_train)} training images (stratified) choose the "
            f"best epoch; the {len(data.y_test)} test images only report it")
    elif config.patience:
        raise UsageError("--patience watches the validation accuracy, but there are too few training images "
                         "per class for a validation split")
    elif config.val_fraction > 0:
        say("too few training images per class for a validation split: the last epoch is kept")
    else:
        say("no validation split (--val-fraction 0): the last epoch is kept")
    trainer = backend.make_trainer(head.train_graph, initial, replace(config, freeze=frozen, freeze_until=None), world)
    saver = Checkpointer(out, record, world)
    try:
        if checkpoint is not None:
            trainer.load_state(checkpoint.trainer_tensors, checkpoint.trainer_meta)
        run = run_epochs(trainer, data, fit_idx, val_idx, config, world, say, saver, checkpoint)
    except KeyboardInterrupt:  # Ctrl-C: the bar's line ended, then what is kept and the way on
        raise interrupted(out, saver.epoch or (checkpoint.epoch if checkpoint is not None else 0),
                          config.epochs) from None
    finally:
        trainer.close()
    unreadable = sorted(set(data.skipped) | set(getattr(trainer, "unreadable", ())))

    best = run.best
    labels = export_labels(graph, data)
    metrics = {
        "spec": graph.name, "backend": backend_name, "device": config.device, "seed": config.seed,
        "data": source, "data_description": data.describe(), "train_images": int(len(fit_idx)),
        "validation_images": int(len(val_idx)), "test_images": int(len(data.y_test)),
        "selected_by": (("validation mIoU" if segment else "validation accuracy") if len(val_idx) else "last epoch"),
        "task": "segmentation" if segment else "classification", "classes": list(labels),
        "epochs": config.epochs, "epochs_run": len(run.history), "stopped_early": run.stopped_early,
        "stop_reason": run.stop_reason, "batch_size": config.batch_size, "optimizer": config.optimizer,
        "lr": config.learning_rate, "schedule": config.schedule, "precision": config.precision,
        "augment": list(config.augment), "loss": head.note, "world_size": world.size, "output": judged,
        "model_outputs": list(full.output_names),
        "init": str(init) if init else (init_record or {}).get("file"), "init_weights": init_record,
        "frozen_layers": list(frozen), "frozen_tensors": list(frozen_tensors(graph, frozen)),
        "lr_backbone": config.lr_backbone, "resumed_from": str(resume) if resume is not None else None,
        "test_accuracy": best["test_accuracy"], "test_loss": best["test_loss"], "best_epoch": best["epoch"],
        "val_accuracy": best.get("val_accuracy"), "val_loss": best.get("val_loss"),
        "per_class": per_class(run.best_confusion, labels), "confusion_matrix": matrix_json(run.best_confusion),
        "unreadable_images": len(unreadable), "unreadable_files": unreadable[:MAX_LISTED],
        **(segmentation_metrics(run.best_confusion, labels, config) if segment else {}),
        "train_seconds": round(run.train_seconds, 3),
        "images_per_second": round(run.train_images / run.train_seconds, 1) if run.train_seconds > 0 else None,
        "settings": config.resolved(),
        "history": run.history,
    }
    chosen = ("by validation mIoU" if segment else "by validation accuracy") if len(val_idx) else "the last"
    say(run.stop_reason)
    if unreadable:
        say(f"skipped {len(unreadable)} unreadable image(s) (--strict refuses them): "
            + ", ".join(unreadable[:5]) + (f" and {len(unreadable) - 5} more (metrics.json lists them)"
                                           if len(unreadable) > 5 else ""))
    if segment:
        say(f"best epoch {best['epoch']} ({chosen}): test mIoU {best['test_miou']:.4f}, pixel accuracy "
            f"{best['test_accuracy']:.4f}, loss {best['test_loss']:.4f}; per-class IoU "
            + " ".join(f"{c}:{'-' if v is None else f'{v:.3f}'}" for c, v in zip(labels, metrics["per_class_iou"]))
            + f"; {metrics['images_per_second']} images/s")
    else:
        say(f"best epoch {best['epoch']} ({chosen}): test accuracy {best['test_accuracy']:.4f}, "
            f"loss {best['test_loss']:.4f}; {metrics['images_per_second']} images/s")
    if not world.is_writer:
        return TrainResult(None, metrics)
    settings_yaml = to_yaml({"spec": str(spec_path), "backend": backend_name, "data": source, "output": str(out),
                             "init": str(init) if init else None,
                             "output_name": judged if full.several_outputs else None}, config, folder=out)
    int8 = Int8Step.for_run(config, data)
    if int8 is not None and full.several_outputs:  # judged on the output this run trained
        int8 = replace(int8, judge=judged)
    try:
        written = write_outputs(out, backend, graph, data, run.best_weights, metrics, config.seed, say, settings_yaml,
                                int8, full=full)
    except KeyboardInterrupt:
        raise interrupted(out, saver.epoch, saver.epoch) from None
    return TrainResult(out, metrics, written)


def _first(names, n: int = 5) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def fit_and_validation(data, config: TrainConfig):
    """(fit, validation) indices into the training images: the source's own validation split where
    it gives one (a val/ folder beside train/ and test/), else carved by --val-fraction."""
    import numpy as np

    if data.val_index is None:  # a segmentation's images have no one class to stratify by
        labels = data.y_train if data.task != "segment" else np.zeros(len(data.y_train), np.int64)
        return validation_split(labels, config.val_fraction)
    val = np.asarray(data.val_index, np.int64)
    return np.setdiff1d(np.arange(len(data.y_train)), val), val


def _describe(backend_name, config: TrainConfig, world: World, init, resume, checkpoint, streamed=False) -> str:
    extras = [f"{config.schedule} schedule" + (f", {plural(config.warmup, 'warm-up epoch')}" if config.warmup else "")]
    extras += [f"weight decay {config.decay:g}"] if config.decay else []
    extras += [f"label smoothing {config.label_smoothing:g}"] if config.label_smoothing else []
    extras += [f"patience {config.patience}"] if config.patience else []
    extras += [config.precision] if config.precision != "fp32" else []
    extras += [f"augment {','.join(config.augment)}"] if config.augment else []
    extras += [f"then {config.quantize} (model.int8.onnx)"] if config.quantize else []
    extras += [f"{config.data_workers} data workers"] if streamed else []
    text = (f"{backend_name} on {config.device}" + (f", {world.size} processes" if world.size > 1 else "")
            + f": {plural(config.epochs, 'epoch')}, batch {config.batch_size}, {config.optimizer} lr {config.learning_rate:g}, "
            + ", ".join(extras) + f", seed {config.seed}")
    if checkpoint is not None:
        return text + f", resuming {resume} after epoch {checkpoint.epoch}"
    return text + (f", starting from {init}" if init else "")


class Checkpointer:
    """Writes the run's state after every epoch (rank 0; every rank hands its part in)."""

    def __init__(self, out: Path, record: dict, world: World):
        self.out, self.record, self.world = Path(out), record, world
        self.created = not self.out.exists()
        self.epoch = 0  # the last epoch this process saved

    def save(self, epoch: int, progress: dict, trainer, best_weights: dict) -> None:
        tensors, meta = trainer.state()  # on every rank: under torchrun it gathers every rank's generators
        if self.world.is_writer:
            try:
                write_checkpoint(self.out, Checkpoint(epoch, self.record, progress, tensors, meta, best_weights))
            except BaseException:  # Ctrl-C held until the file was published still saved this epoch
                from .checkpoint import saved_epoch

                if saved_epoch(self.out) == epoch:
                    self.epoch = epoch
                raise
        self.epoch = epoch

    def discard(self) -> None:
        """A run that cannot go on (it diverged, and would again on resume) leaves nothing behind."""
        if not self.world.is_writer:
            return
        (self.out / CHECKPOINT_FILE).unlink(missing_ok=True)
        if self.created:
            try:
                self.out.rmdir()
            except OSError:
                pass


def interrupted(out: Path, saved: int, epochs: int) -> Interrupted:
    """What Ctrl-C during training leaves (any open progress bar's line ended first): the epochs saved,
    and the command that carries on."""
    from .progress import close_open_bars

    close_open_bars()
    if not saved:
        return Interrupted(f"in epoch 1 of {epochs}, before its first checkpoint: nothing to resume; "
                           f"start the run again")
    if saved >= epochs:
        return Interrupted(f"after its last epoch; all {plural(epochs, 'epoch')} are saved: write the outputs "
                           f"with `cnnspec train --resume {out}`")
    kept = "epoch 1 is saved" if saved == 1 else f"epochs 1-{saved} are saved"
    return Interrupted(f"in epoch {saved + 1} of {epochs}; {kept}: carry on with `cnnspec train --resume {out}`")


def run_epochs(trainer, data, fit_idx, val_idx, config: TrainConfig, world: World, say: Progress,
               saver: Checkpointer | None = None, start: Checkpoint | None = None) -> Selection:
    """Train every epoch (from after ``start``'s), score it on the validation and test shards, keep
    the best one's weights, stop early where --patience says, and checkpoint after each."""
    import numpy as np

    history, best, best_weights, best_confusion = [], None, None, None
    train_seconds, train_images, stop_reason, first = 0.0, 0, None, 1
    if start is not None:
        p = start.progress
        history, train_seconds, train_images = list(p["history"]), p["train_seconds"], p["train_images"]
        best, best_weights = history[p["best_epoch"] - 1], start.best_weights
        best_confusion, stop_reason, first = np.array(p["best_confusion"], np.int64), p["stop_reason"], start.epoch + 1
    n_batches = len(epoch_batches(len(fit_idx), config.batch_size, config.seed, 1, world))
    schedule = schedule_for(config, n_batches)
    augmenter = Augmenter(config.augment, config.seed, world.rank) if config.augment else None
    val_shard = val_idx[shard(len(val_idx), world)]
    test_shard = shard(len(data.y_test), world)
    for epoch in range(first, config.epochs + 1):
        if stop_reason is not None:
            break
        batches = [fit_idx[b] for b in epoch_batches(len(fit_idx), config.batch_size, config.seed, epoch, world)]
        plan = EpochPlan(epoch, batches, schedule.epoch_lrs(epoch),
                         partial(augmenter.batch, epoch) if augmenter is not None else None)
        bar = EpochBar(n_batches, f"epoch {epoch}/{config.epochs}", world.is_writer and not config.quiet)
        begin = time.perf_counter()
        stats = trainer.train_epoch(data.x_train, data.y_train, plan, bar)
        seconds = time.perf_counter() - begin
        if not math.isfinite(stats.loss):
            bar.close()
            if saver is not None:
                saver.discard()
            raise UsageError(f"training diverged in epoch {epoch} (the loss is {stats.loss}); "
                             f"try a lower --lr than {config.learning_rate:g}")
        row = {"epoch": epoch, "lr": plan.lrs[0], "train_loss": stats.loss, "train_accuracy": stats.accuracy}
        segment = data.task == "segment"
        if len(val_idx):
            row["val_loss"], row["val_accuracy"], val_matrix = trainer.evaluate(data.x_train, data.y_train, val_shard)
            if segment:
                row["val_miou"] = mean_iou(val_matrix)[0]
        row["test_loss"], row["test_accuracy"], matrix = trainer.evaluate(data.x_test, data.y_test, test_shard)
        if segment:
            row["test_miou"] = mean_iou(matrix)[0]
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
            best, best_weights, best_confusion = row, trainer.weights(), np.asarray(matrix)
        stop_reason = patience_stop(history, config.patience)
        if saver is not None:
            saver.save(epoch, {"history": history, "best_epoch": best["epoch"],
                               "best_confusion": matrix_json(best_confusion), "train_seconds": train_seconds,
                               "train_images": train_images, "stop_reason": stop_reason}, trainer, best_weights)
    stopped_early = stop_reason is not None
    if stop_reason is None:
        stop_reason = f"ran all {config.epochs} epochs" if config.epochs > 1 else "ran its 1 epoch"
    return Selection(history, best, best_weights, best_confusion, train_seconds, train_images, stop_reason,
                     stopped_early)


def patience_stop(history: list[dict], patience: int | None) -> str | None:
    """Why to stop now, or None: the validation accuracy (a segmentation's mIoU) has not beaten its
    best (first reached at some epoch) for ``patience`` epochs since."""
    if not patience or not history or "val_accuracy" not in history[-1]:
        return None
    key = "val_miou" if "val_miou" in history[-1] else "val_accuracy"
    scores = [row[key] for row in history]
    best_at = scores.index(max(scores))
    waited = history[-1]["epoch"] - history[best_at]["epoch"]
    if waited < patience:
        return None
    return (f"stopped early after epoch {history[-1]['epoch']}: validation "
            f"{'mIoU' if key == 'val_miou' else 'accuracy'} has not improved for "
            f"{plural(waited, 'epoch')} (--patience {patience}; best {scores[best_at]:.4f} at epoch {history[best_at]['epoch']})")


def epoch_summary(row: dict) -> str:
    text = f"loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}"
    if "val_accuracy" in row:
        text += f" | val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f}"
        text += f" mIoU {row['val_miou']:.4f}" if "val_miou" in row else ""
    text += f" | test loss {row['test_loss']:.4f} acc {row['test_accuracy']:.4f}"
    return text + (f" mIoU {row['test_miou']:.4f}" if "test_miou" in row else "")


def better_epoch(row: dict, best: dict) -> bool:
    """Higher validation accuracy wins, then lower validation loss; a full tie keeps the earlier
    epoch. Without validation every later epoch wins (the last is kept)."""
    if "val_accuracy" not in row:
        return True
    key = "val_miou" if "val_miou" in row else "val_accuracy"  # a segmentation: mean IoU
    return (row[key], -row["val_loss"]) > (best[key], -best["val_loss"])
