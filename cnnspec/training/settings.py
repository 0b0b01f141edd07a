"""``train.yaml``: every setting of a run, written beside its results and read back by
``cnnspec train --config train.yaml`` (flags on the command line win), so one file repeats a run.

Options whose default follows another (``lr`` follows ``optimizer``) are written as ``null`` with
the value they took in a comment: a later ``--optimizer sgd`` then brings sgd's defaults, not adam's.

Paths in the file (spec, data, output, init) are relative to the file's own folder (absolute where no
relative path exists), and are read back the same way, so ``--config RUN/train.yaml`` works from any
directory.
"""
from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

from ..backend.trainconfig import DEFAULT_GAMMA, DEFAULT_LR, DEFAULT_MOMENTUM, DEFAULT_WEIGHT_DECAY, TrainConfig
from ..errors import UsageError

# every key of train.yaml: (the type its value has, whether null is allowed)
RUN_KEYS = {"spec": (str, False), "backend": (str, False), "data": (str, False), "output": (str, True),
            "init": (str, True), "output_name": (str, True)}
CONFIG_KEYS = {
    "epochs": (int, False), "batch_size": (int, False), "lr": (float, True), "optimizer": (str, False),
    "seed": (int, False), "device": (str, False), "val_fraction": (float, False), "schedule": (str, False),
    "warmup": (float, False), "step_size": (int, True), "gamma": (float, True), "weight_decay": (float, True),
    "momentum": (float, True), "nesterov": (bool, False), "label_smoothing": (float, False),
    "patience": (int, True), "precision": (str, False), "augment": (list, False), "quantize": (str, True),
    "quantize_samples": (int, True), "quantize_max_drop": (float, True), "workers": (int, True),
    "cache": (bool, False), "strict": (bool, False), "freeze": (list, False), "freeze_until": (str, True),
    "lr_backbone": (float, True), "allow_partial": (bool, False), "loss": (str, False),
}
KEYS = {**RUN_KEYS, **CONFIG_KEYS}
PATH_KEYS = ("spec", "data", "output", "init")
NAMED_SOURCES = ("digits",)  # data sources that are names, not paths
HEADER = ("# cnnspec train settings: `cnnspec train --config train.yaml` repeats this run;\n"
          "# flags given on the command line win over this file.\n")


def config_from(values: dict) -> TrainConfig:
    """A TrainConfig from settings keys (missing ones keep their defaults)."""
    known = {f.name for f in fields(TrainConfig)}
    kwargs = {k: (tuple(v) if k in ("augment", "freeze") else v) for k, v in values.items() if k in known}
    return TrainConfig(**kwargs)


def _resolved(config: TrainConfig) -> dict:
    """What each null setting became in this run, for the comment beside it."""
    return {
        "lr": f"{config.optimizer}'s default: {DEFAULT_LR[config.optimizer]:g}",
        "weight_decay": f"{config.optimizer}'s default: {DEFAULT_WEIGHT_DECAY[config.optimizer]:g}",
        "momentum": f"sgd's default: {DEFAULT_MOMENTUM:g}" if config.optimizer == "sgd" else "sgd only",
        "step_size": f"a third of the epochs: {config.drop_every}" if config.schedule == "step" else "step only",
        "gamma": f"default: {DEFAULT_GAMMA:g}" if config.schedule == "step" else "step only",
        "patience": "off: every epoch runs", "init": "the seed's initial weights",
        "output_name": "the spec's first output",
        "quantize": "off: no int8 model",
        "quantize_samples": f"default: {config.calibration_samples}" if config.quantize else "--quantize only",
        "quantize_max_drop": f"default: {config.max_drop:g} (points)" if config.quantize else "--quantize only",
        "workers": f"the cores: {config.data_workers}", "freeze_until": "off", "lr_backbone": "off: one learning rate",
    }


def _is_path(key: str, value) -> bool:
    return key in PATH_KEYS and isinstance(value, str) and bool(value) and not (
        key == "data" and value in NAMED_SOURCES)


def _relative_to(folder: Path, value: str) -> str:
    """``value`` (relative to the working directory) as seen from ``folder``; absolute where no relative
    path exists (another drive)."""
    target = os.path.abspath(value)
    try:
        return Path(os.path.relpath(target, os.path.abspath(folder))).as_posix()
    except ValueError:
        return target


def to_yaml(run: dict, config: TrainConfig, folder: str | Path | None = None) -> str:
    """train.yaml's text: the run's keys (spec, backend, data, output, init), then every option. Paths
    are written relative to ``folder``, where the file goes (default: the run's output folder)."""
    import yaml

    values = {**{k: run.get(k) for k in RUN_KEYS}, **config.settings()}
    folder = folder if folder is not None else run.get("output")
    if folder is not None:
        values.update({k: _relative_to(Path(folder), v) for k, v in values.items() if _is_path(k, v)})
    notes = _resolved(config)
    lines = [HEADER]
    for key in KEYS:
        value = values.get(key)
        text = yaml.safe_dump({key: value}, default_flow_style=True, width=1000).strip()
        text = text[1:-1] if text.startswith("{") else text  # {key: value} -> key: value
        lines.append(text + (f"  # {notes[key]}" if value is None and key in notes else "") + "\n")
    return "".join(lines)


def read_config(path) -> dict:
    """The settings in a train.yaml, checked key by key; unknown keys and wrong types are one line."""
    import yaml

    from ..spec.suggestions import suggest

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--config {path}: cannot read it ({exc})") from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"--config {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise UsageError(f"--config {path}: must be a mapping of settings (as train.yaml writes)")
    for key, value in values.items():
        if key not in KEYS:
            raise UsageError(f"--config {path}: unknown setting '{key}'{suggest(str(key), list(KEYS))}")
        kind, nullable = KEYS[key]
        if value is None and nullable:
            continue
        ok = (isinstance(value, kind) and not (kind is int and isinstance(value, bool))) or (
            kind is float and isinstance(value, int) and not isinstance(value, bool))
        if kind is list:
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        if not ok:
            raise UsageError(f"--config {path}: '{key}' must be {_KIND_NAMES[kind]}"
                             + (" or null" if nullable else "") + f", got {value!r}")
    folder = p.parent
    return {k: (float(v) if KEYS[k][0] is float and v is not None else
                os.path.normpath(folder / os.path.expanduser(v)) if _is_path(k, v) else v)
            for k, v in values.items()}


_KIND_NAMES = {str: "a string", int: "a whole number", float: "a number", bool: "true or false",
               list: "a list of names"}
