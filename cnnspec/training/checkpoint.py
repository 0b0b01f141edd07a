"""The checkpoint a run leaves after every epoch, and the check that a resume continues the same run.

One file, ``checkpoint.safetensors`` in the output folder, replaced atomically after each epoch:
the tensors (the trainer's weights, buffers, optimizer slots and random generator states, and the
best epoch's weights so far) in safetensors, everything else (the epoch, the history, the run's
record) as JSON in its metadata. Never a pickle: a checkpoint is read as safely as a weights file.

The schedule needs no state (it is a function of the step) and neither does the data order (a
permutation of (seed, epoch)) or the augmentation (a generator per batch): the epoch and the seed
bring them back. So a run killed at any point and resumed from its last checkpoint ends with the
weights, byte for byte, of the run that was never interrupted.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..backend.trainconfig import AFTER_TRAINING, DATA_PIPELINE
from ..errors import InputError, UsageError
from ..files.atomic import atomic_write_bytes

CHECKPOINT_FILE = "checkpoint.safetensors"
FORMAT = "cnnspec-checkpoint/1"
META_KEY = "cnnspec.checkpoint"
# what a resume must match, with how a difference is named; paths may move, contents may not
RECORD_NAMES = {"spec_sha256": "the spec's contents", "backend": "backend", "data_sha256": "the data",
                "device": "device", "world_size": "number of processes", "spec_choice": "--scale/--set"}


@dataclass(frozen=True)
class Checkpoint:
    """One epoch's end: enough to carry on as if never stopped."""

    epoch: int
    record: dict  # what the run is: see run_record
    progress: dict  # history, best row, its confusion matrix, timing, why it stopped
    trainer_tensors: dict = field(repr=False)
    trainer_meta: dict = field(default_factory=dict)
    best_weights: dict = field(default_factory=dict, repr=False)


def file_digest(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_digest(data) -> str:
    """A digest of every array and label of the data: a resume on other data is refused."""
    import numpy as np

    from ..data.stream import is_lazy

    h = hashlib.blake2b(digest_size=16)
    for array in (data.x_train, data.y_train, data.x_test, data.y_test):
        if is_lazy(array):  # image files: their paths, sizes and times (not every byte of a large folder)
            h.update(f"files{array.shape}".encode())
            array.identity(h)
            continue
        a = np.ascontiguousarray(array)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    h.update(json.dumps(list(data.labels)).encode())
    return h.hexdigest()


def run_record(spec_path, backend: str, source: str, data, config, world, choice=None) -> dict:
    """What the run is. Paths are absolute, so ``--resume`` works from any folder. ``choice``: the
    spec's --scale/--set, recorded only where given (a resumed run must give the same)."""
    chosen = {} if choice is None or choice.empty else {
        "spec_choice": f"scale {choice.scale}" * (choice.scale is not None) +
                       "".join(f" set {k}={v}" for k, v in choice.sets)}
    return {**chosen, "spec": str(Path(spec_path).resolve()), "spec_sha256": file_digest(spec_path), "backend": backend,
            "data": source if source == "digits" else str(Path(source).resolve()),
            "data_sha256": data_digest(data), "device": config.device, "world_size": world.size,
            "settings": config.resolved(), "given": config.settings()}  # given: see longer_run


def resume_settings(run_dir) -> dict:
    """The settings a run was started with (spec, backend, data and every option), read from its
    checkpoint's header alone: what ``--resume RUN_DIR`` starts from before any flag."""
    from safetensors import SafetensorError, safe_open

    path = _checkpoint_path(run_dir)
    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = dict(fh.metadata() or {})
        record = json.loads(meta[META_KEY])["record"]
        return {"spec": record["spec"], "backend": record["backend"], "data": record["data"],
                **({"output_name": record["output_name"]} if "output_name" in record else {}),
                **record["settings"]}
    except (SafetensorError, OSError, KeyError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: not a cnnspec checkpoint ({str(exc).splitlines()[0][:120]})") from None


def saved_epoch(out) -> int | None:
    """The epoch of the checkpoint in ``out``, from its header alone; None where there is none readable."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(Path(out) / CHECKPOINT_FILE), framework="numpy") as fh:
            return int(json.loads((fh.metadata() or {})[META_KEY])["epoch"])
    except (SafetensorError, OSError, KeyError, ValueError, TypeError):
        return None


def _checkpoint_path(run_dir) -> Path:
    """``run_dir``'s checkpoint; a weights file or a folder without one gets a one-line hint."""
    folder = Path(run_dir)
    if folder.is_file() and folder.suffix == ".safetensors" and folder.name != CHECKPOINT_FILE:
        raise UsageError(f"--resume {run_dir}: --resume continues a run from its folder; to start from "
                         f"these weights, use --init {run_dir}")
    if not folder.exists():
        raise UsageError(f"--resume {run_dir}: no such run folder")
    path = folder if folder.name == CHECKPOINT_FILE and folder.is_file() else folder / CHECKPOINT_FILE
    if not path.is_file():
        raise UsageError(f"--resume {run_dir}: no {CHECKPOINT_FILE} there (a run writes one after every epoch)")
    return path


def differences(saved: dict, now: dict) -> list[str]:
    """What differs between the checkpoint's record and this run's, named for the user."""
    out = [f"{name} ({_short(saved.get(key), key)} in the checkpoint, {_short(now.get(key), key)} now)"
           for key, name in RECORD_NAMES.items() if saved.get(key) != now.get(key)]
    was, is_ = saved.get("settings", {}), now.get("settings", {})
    out += [f"--{key.replace('_', '-')} ({_short(was.get(key))} in the checkpoint, {_short(is_.get(key))} now)"
            for key in sorted(set(was) | set(is_)) if was.get(key) != is_.get(key) and key not in AFTER_TRAINING + DATA_PIPELINE]
    return out


def _short(value, key: str = "") -> str:
    text = "none" if value is None else str(value)
    return f"digest {text[:12]}" if key.endswith("_sha256") and value else text


def longer_run(run_dir, checkpoint: Checkpoint, record: dict) -> dict:
    """``record`` as the checkpoint's run would be with this run's epochs, where ``--epochs N`` carries a
    run on past its end (a schedule that does not depend on the total); a one-line refusal with the reason
    where it cannot. A record whose epochs did not change comes back as it is."""
    from ..errors import plural
    from .schedule import why_not_longer

    was, now = checkpoint.record.get("settings", {}), record.get("settings", {})
    before, after = was.get("epochs"), now.get("epochs")
    if before == after or not isinstance(before, int) or not isinstance(after, int):
        return record
    where = f"--resume {run_dir} --epochs {after}"
    if after < checkpoint.epoch:
        raise UsageError(f"{where}: the run has already trained {plural(checkpoint.epoch, 'epoch')}")
    if after < before:
        raise UsageError(f"{where}: the run was started for {plural(before, 'epoch')}; a resume cannot shorten it "
                         f"(its schedule was planned for {before})")
    stopped = checkpoint.progress.get("stop_reason")
    if stopped:
        raise UsageError(f"{where}: the run has ended ({stopped}); start a new run from its weights "
                         f"with --init")
    reason = why_not_longer(str(was.get("schedule")), checkpoint.record.get("given") or {})
    if reason:
        raise UsageError(f"{where}: cannot carry on past {plural(before, 'epoch')}: {reason}; start a new run from "
                         f"its weights instead (--init {Path(run_dir) / 'weights.safetensors'} --epochs "
                         f"{after - before})")
    return {**record, "settings": {**now, "epochs": before}}


def refuse_if_different(run_dir, checkpoint: Checkpoint, record: dict) -> None:
    """Refuse a resume that would change the run; where it does not, ``record`` (the resumed run's)
    keeps the options as given when the run started (``given``: whether it may run longer is judged
    on those, not on the resolved values a resume passes back in)."""
    diff = differences(checkpoint.record, longer_run(run_dir, checkpoint, record))
    record["given"] = checkpoint.record.get("given")
    if diff:
        raise UsageError(f"--resume {run_dir}: this run differs from the checkpoint's: {'; '.join(diff)}; "
                         f"start a new run (-o) to change it")


def encode(checkpoint: Checkpoint) -> bytes:
    import numpy as np
    from safetensors.numpy import save

    from ..weights.safetensors_io import canonical_safetensors

    tensors = {f"trainer/{k}": np.array(v, order="C") for k, v in checkpoint.trainer_tensors.items()}
    tensors.update({f"best/{k}": np.array(v, order="C") for k, v in checkpoint.best_weights.items()})
    meta = {"epoch": checkpoint.epoch, "record": checkpoint.record, "progress": checkpoint.progress,
            "trainer": checkpoint.trainer_meta}
    return canonical_safetensors(save(tensors, metadata={"format": FORMAT, META_KEY: json.dumps(meta)}))


def write_checkpoint(out: Path, checkpoint: Checkpoint) -> Path:
    path = Path(out) / CHECKPOINT_FILE
    atomic_write_bytes(path, encode(checkpoint))
    return path


def read_checkpoint(run_dir) -> Checkpoint:
    """The checkpoint of ``run_dir`` (the folder, or its checkpoint file)."""
    from ..weights.safetensors_io import read_safetensors

    path = _checkpoint_path(run_dir)
    tensors, meta = read_safetensors(path)
    try:
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}")
        body = json.loads(meta[META_KEY])
        epoch, record, progress = int(body["epoch"]), dict(body["record"]), dict(body["progress"])
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: not a cnnspec checkpoint ({exc})") from None
    trainer = {k[len("trainer/"):]: v for k, v in tensors.items() if k.startswith("trainer/")}
    best = {k[len("best/"):]: v for k, v in tensors.items() if k.startswith("best/")}
    return Checkpoint(epoch, record, progress, trainer, dict(body.get("trainer") or {}), best)
