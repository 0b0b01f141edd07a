"""``cnnspec train``, framework-free: data, loss choice, epochs, best-epoch selection and the outputs.

The best epoch is chosen on a validation split carved from the training images (``--val-fraction``,
stratified, fixed), never on the test set: the reported ``test_accuracy`` is the chosen epoch's score
on images that took no part in any decision. With ``--val-fraction 0`` the last epoch is kept.

A backend contributes only the inner loop, in ``<its package>.training``: a function
``make_trainer(backend, graph, weights, config, world)`` returning an object with
``train_epoch(x, y, batches, bar) -> EpochStats``, ``evaluate(x, y, indices) -> (loss, accuracy)``,
``weights() -> dict`` (neutral layout) and ``close()``. Both statistics are already summed over
every process of a distributed run, so every rank takes the same decisions here; only rank 0 writes.

Shuffling and sharding live here too (:func:`epoch_batches`), so the same seed gives the same batches
in every backend, and a distributed run's processes together see exactly the batches one process would.
"""
from __future__ import annotations

import importlib
import importlib.util
import io
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from .errors import BackendUnavailable, UsageError
from .fsutil import atomic_write_bytes, atomic_write_text, check_can_create_dir, staged_output
from .ir import Graph, frozen_attrs

OPTIMIZERS = ("adam", "sgd")
DEFAULT_LR = {"adam": 1e-3, "sgd": 1e-2}
DEVICES = ("cpu", "cuda")
DEFAULT_VAL_FRACTION = 0.1
VAL_SPLIT_SEED = 20240522  # fixed, like the test split: --seed changes the run, not the data
OUTPUT_FILES = ("weights.safetensors", "model.onnx", "metrics.json", "curves.png")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    lr: float | None = None  # None: the optimizer's default (DEFAULT_LR)
    optimizer: str = "adam"
    seed: int = 0
    device: str = "cpu"
    quiet: bool = False
    val_fraction: float = DEFAULT_VAL_FRACTION

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    def validate(self, world: "World") -> None:
        if self.epochs < 1:
            raise UsageError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got '{self.optimizer}'")
        if self.device not in DEVICES:
            raise UsageError(f"--device must be one of {', '.join(DEVICES)}, got '{self.device}'")
        if not 0 <= self.val_fraction <= 0.5:
            raise UsageError(f"--val-fraction must be between 0 and 0.5, got {self.val_fraction}")
        if self.lr is not None and not (0 < self.lr < 10):
            raise UsageError(f"--lr must be a positive number below 10, got {self.lr}")
        if self.batch_size % world.size:
            raise UsageError(f"--batch-size {self.batch_size} is the global batch and must be a multiple of "
                             f"the {world.size} processes")


@dataclass(frozen=True)
class World:
    """Where this process sits in a ``torchrun`` launch (size 1 when run plainly)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_writer(self) -> bool:
        return self.rank == 0


def world_from_env(env=os.environ) -> World:
    try:
        size = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise UsageError("WORLD_SIZE, RANK and LOCAL_RANK must be integers (as torchrun sets them)") from None
    if size < 1 or not 0 <= rank < size:
        raise UsageError(f"RANK {rank} does not fit WORLD_SIZE {size}")
    return World(rank, size, local)


@dataclass(frozen=True)
class EpochStats:
    loss: float
    accuracy: float
    images: int


@dataclass(frozen=True)
class Head:
    """The graph the loss sees, and the line that tells the user why."""

    train_graph: Graph
    note: str


def training_head(graph: Graph) -> Head:
    """Cross-entropy wants logits. A spec ending in softmax (a softmax layer, or ``activation:
    softmax`` on its last layer) is trained on the scores before it; the exported model keeps it."""
    out = graph.output
    if out.op == "softmax":
        keep = _ancestors(graph, out.inputs[0])
        nodes = tuple(n for n in graph.nodes if n.name in keep)
        return Head(replace(graph, nodes=nodes),
                    f"the spec ends in softmax: training '{out.inputs[0]}' logits with cross-entropy "
                    f"(softmax applied once, inside the loss); the exported model keeps the softmax")
    if out.attrs.get("activation") == "softmax":
        plain = out.with_(attrs=frozen_attrs({**out.attrs, "activation": None}))
        return Head(replace(graph, nodes=graph.nodes[:-1] + (plain,)),
                    f"'{out.name}' ends in softmax: training its pre-softmax logits with cross-entropy "
                    f"(softmax applied once, inside the loss); the exported model keeps the softmax")
    if out.op in ("sigmoid", "tanh", "relu", "relu6") or out.attrs.get("activation"):
        return Head(graph, f"the spec ends in {out.attrs.get('activation') or out.op}: its outputs are used as "
                           f"scores for softmax cross-entropy (logits train best: end with a plain dense)")
    return Head(graph, "the spec outputs logits: softmax cross-entropy loss")


def _ancestors(graph: Graph, name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        n = todo.pop()
        if n == "input" or n in seen:
            continue
        seen.add(n)
        todo.extend(graph.node(n).inputs)
    return seen


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, world: World = World()):
    """This rank's index batches for one epoch. One permutation per (seed, epoch), padded by wrapping
    to a multiple of the world size (as DistributedSampler pads), cut into global batches of
    ``batch_size``; rank r takes every size-th index of each. A trailing batch too small for
    batchnorm is merged into the one before it."""
    import numpy as np

    order = np.random.default_rng([seed, epoch]).permutation(n)
    pad = (-n) % world.size
    if pad:
        order = np.concatenate([order, order[:pad]])
    cuts = list(range(0, len(order), batch_size))
    if len(cuts) > 1 and len(order) - cuts[-1] < 2 * world.size:
        cuts.pop()
    bounds = cuts[1:] + [len(order)]
    return [order[a:b][world.rank::world.size] for a, b in zip(cuts, bounds)]


def validation_split(labels, fraction: float):
    """(fit, validation) indices into the training set: stratified, the same for every seed."""
    import numpy as np

    from .data import stratified_split

    if fraction <= 0:
        return np.arange(len(labels)), np.arange(0)
    return stratified_split(labels, fraction, VAL_SPLIT_SEED)


def shard(n: int, world: World):
    """This rank's share of the held-out set: no padding, so summed statistics are exact."""
    import numpy as np

    return np.arange(world.rank, n, world.size)


# ---------------------------------------------------------------- progress bar

class EpochBar:
    """A tqdm bar on stderr for one epoch, or nothing (``--quiet``, or a rank other than 0)."""

    def __init__(self, total: int, desc: str, enabled: bool):
        self._bar = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=total, desc=desc, unit="batch", file=sys.stderr, leave=True,
                                 dynamic_ncols=True, mininterval=0.2)

    def update(self, loss: float, accuracy: float) -> None:
        if self._bar is not None:
            self._bar.update(1)
            if self._bar.n == self._bar.total or self._bar.n % 10 == 0:
                self._bar.set_postfix_str(f"loss {loss:.4f} acc {accuracy:.4f}", refresh=False)

    def close(self, summary: str = "") -> None:
        if self._bar is not None:
            if summary:
                self._bar.set_postfix_str(summary, refresh=False)
            self._bar.close()


# ---------------------------------------------------------------- the run

@dataclass
class TrainResult:
    outdir: Path | None
    metrics: dict
    written: list[Path] = field(default_factory=list)


def trainer_module(backend):
    """``<backend package>.training``: where a backend keeps its training loop."""
    package = type(backend).__module__.partition(".")[0]
    try:
        return importlib.import_module(f"{package}.training")
    except ModuleNotFoundError as exc:
        if exc.name != f"{package}.training":
            raise
        raise BackendUnavailable(f"backend '{backend.name or package}' does not support training") from None


def export_labels(graph: Graph, data) -> tuple[str, ...]:
    """The spec's classes where it names them; else the data's labels, padded to the output size."""
    if graph.classes:
        return tuple(graph.classes)
    units = graph.output_shape[0]
    return tuple(data.labels) + tuple(str(i) for i in range(len(data.labels), units))


def train(spec_path: str, backend_name: str, source: str, config: TrainConfig, outdir: str | Path | None = None,
          resume: str | None = None, progress: Progress | None = None, env=os.environ) -> TrainResult:
    """Load, check, train, pick the best epoch, and (rank 0 only) write the outputs."""
    from .api import load
    from .data import load_source
    from .plugins import load_backend
    from .resources import require_memory, require_onnx_size
    from .weights import read_weights

    world = world_from_env(env)
    config.validate(world)
    say = progress if (progress is not None and world.is_writer) else (lambda _m: None)
    graph = load(spec_path).graph
    require_onnx_size(graph)  # the run ends by exporting model.onnx: say so before training, not after
    require_memory(graph)
    out = Path(outdir) if outdir is not None else Path("runs") / graph.name
    if world.is_writer:
        check_can_create_dir(out)  # created only when the outputs are written
    backend = load_backend(backend_name)
    module = trainer_module(backend)
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
    trainer = module.make_trainer(backend, head.train_graph, initial, config, world)
    history, best, best_weights = [], None, None
    train_seconds, train_images = 0.0, 0
    try:
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
                                 f"try a lower --lr than {lr:g}")
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
            if config.quiet or not world.is_writer or not _has_tqdm():
                say(f"epoch {epoch}/{config.epochs}: {summary}")
            if best is None or better_epoch(row, best):
                best, best_weights = row, trainer.weights()
    finally:
        trainer.close()

    metrics = {
        "spec": graph.name, "backend": backend_name, "device": config.device, "seed": config.seed,
        "data": source, "data_description": data.describe(), "train_images": int(len(fit_idx)),
        "validation_images": int(len(val_idx)), "test_images": int(len(data.y_test)),
        "selected_by": "validation accuracy" if len(val_idx) else "last epoch", "classes": list(export_labels(graph, data)),
        "epochs": config.epochs, "batch_size": config.batch_size, "optimizer": config.optimizer,
        "lr": lr, "loss": head.note, "world_size": world.size, "resumed_from": resume,
        "test_accuracy": best["test_accuracy"], "test_loss": best["test_loss"], "best_epoch": best["epoch"],
        "val_accuracy": best.get("val_accuracy"), "val_loss": best.get("val_loss"),
        "train_seconds": round(train_seconds, 3),
        "images_per_second": round(train_images / train_seconds, 1) if train_seconds > 0 else None,
        "history": history,
    }
    chosen = "by validation accuracy" if len(val_idx) else "the last"
    say(f"best epoch {best['epoch']} ({chosen}): test accuracy {best['test_accuracy']:.4f}, "
        f"loss {best['test_loss']:.4f}; {metrics['images_per_second']} images/s")
    if not world.is_writer:
        return TrainResult(None, metrics)
    written = write_outputs(out, backend, graph, data, best_weights, metrics, config.seed, say)
    return TrainResult(out, metrics, written)


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


def _has_tqdm() -> bool:
    return importlib.util.find_spec("tqdm") is not None


def write_outputs(out: Path, backend, graph: Graph, data, weights: dict, metrics: dict, seed: int,
                  say: Progress) -> list[Path]:
    """weights.safetensors, model.onnx (labels in its metadata), metrics.json and curves.png, published together."""
    from .weights import expected_weights, write_weights

    export_graph = replace(graph, classes=export_labels(graph, data))
    missing = [k for k in expected_weights(graph) if k not in weights]
    if missing:  # layers outside the trained path (dead branches) keep their seeded initial values
        seeded = backend.get_weights(backend.compile(export_graph, weights=None, seed=seed), export_graph)
        weights = {**seeded, **weights}
    with staged_output(out) as stage:  # the four files appear together, or none do
        staged = [stage / name for name in OUTPUT_FILES]
        write_weights(staged[0], weights, graph)
        model = backend.compile(export_graph, weights=weights, seed=seed)
        backend.export_onnx(model, export_graph, staged[1])
        atomic_write_text(staged[2], json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
        atomic_write_bytes(staged[3], plot_curves(metrics))
    paths = [out / name for name in OUTPUT_FILES]
    say(f"wrote {', '.join(p.name for p in paths)} to {out}")
    return paths


def plot_curves(metrics: dict) -> bytes:
    """Loss and accuracy per epoch, train and held-out, as PNG bytes (matplotlib, Agg, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    hist = metrics["history"]
    epochs = [h["epoch"] for h in hist]
    fig = Figure(figsize=(9, 3.6), dpi=100)
    for ax, key, title in ((fig.add_subplot(1, 2, 1), "loss", "loss"),
                           (fig.add_subplot(1, 2, 2), "accuracy", "accuracy")):
        ax.plot(epochs, [h[f"train_{key}"] for h in hist], marker="o", label="train")
        if hist and f"val_{key}" in hist[0]:
            ax.plot(epochs, [h[f"val_{key}"] for h in hist], marker="o", label="validation")
        ax.plot(epochs, [h[f"test_{key}"] for h in hist], marker="o", label="test")
        ax.axvline(metrics["best_epoch"], color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{metrics['spec']} ({metrics['backend']}, {metrics['data']}): test accuracy "
                 f"{metrics['test_accuracy']:.4f} at epoch {metrics['best_epoch']} (chosen by {metrics['selected_by']})")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
