"""The options of one training run, and the one place they are checked.

They live below the backend interface, not in :mod:`cnnspec.training`: a backend's trainer reads
them, so the interface names them, and the bottom of the house must not describe itself with types
from the top. For the same reason the option vocabularies (optimizers, schedules, augmentations) and
the int8 step's defaults, which ``cnnspec quantize`` shares, are defined here.

Every option's default is today's behaviour (Adam, constant learning rate, no weight decay, no
smoothing, no augmentation, fp32), so an old command gives the old run, byte for byte. Options
whose default depends on another (the learning rate on the optimizer, for example) are ``None``
until :class:`TrainConfig` resolves them: ``train.yaml`` keeps them ``None`` so that overriding
the optimizer from the command line also brings that optimizer's defaults.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from ..errors import UsageError, plural
from .world import World

OPTIMIZERS = ("adam", "adamw", "sgd")
DEFAULT_LR = {"adam": 1e-3, "adamw": 1e-3, "sgd": 1e-2}
DEFAULT_WEIGHT_DECAY = {"adam": 0.0, "adamw": 1e-2, "sgd": 0.0}  # adamw: PyTorch's default
DEFAULT_MOMENTUM = 0.9  # sgd only
DEFAULT_GAMMA = 0.1  # step schedule
SCHEDULES = ("constant", "step", "cosine", "onecycle")
PRECISIONS = ("fp32", "bf16", "fp16")
# where each precision can run at all; whether this machine's device can is the backend's question
PRECISION_DEVICES = {"fp32": ("cpu", "cuda"), "bf16": ("cpu", "cuda"), "fp16": ("cuda",)}
DEVICES = ("cpu", "cuda")
DEFAULT_VAL_FRACTION = 0.1
# --augment's transforms, in the order the help lists them (each a function in cnnspec.training.augment)
AUGMENTS = ("crop", "flip", "affine", "jitter", "erase")
QUANTIZE_KINDS = ("int8",)
# --loss of a segmentation ([K, H, W] output): per-pixel cross-entropy (255 ignored), soft Dice, or their sum
LOSSES = ("ce", "dice", "ce+dice")
IGNORE_INDEX = 255  # a mask value no loss or metric counts
# the int8 step's defaults, here and in ``cnnspec quantize``: calibration images, points of accuracy it may lose
DEFAULT_QUANTIZE_SAMPLES = 256
DEFAULT_QUANTIZE_MAX_DROP = 1.0
# after training: settings of the int8 step, which a resumed run may change (they shape no epoch)
AFTER_TRAINING = ("quantize", "quantize_samples", "quantize_max_drop")
# how the data is read, never what: a resumed run may change them (the batches are the same bytes)
DATA_PIPELINE = ("workers", "cache", "strict")


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
    schedule: str = "constant"
    warmup: float = 0.0  # epochs of linear warm-up (onecycle: its rise)
    step_size: int | None = None  # step schedule: epochs between drops (None: a third of the epochs)
    gamma: float | None = None  # step schedule: the factor of each drop (None: DEFAULT_GAMMA)
    weight_decay: float | None = None  # None: DEFAULT_WEIGHT_DECAY
    momentum: float | None = None  # sgd only; None: DEFAULT_MOMENTUM
    nesterov: bool = False  # sgd only
    label_smoothing: float = 0.0
    patience: int | None = None  # stop after this many epochs without a better validation accuracy
    precision: str = "fp32"
    augment: tuple[str, ...] = ()
    quantize: str | None = None  # "int8": model.int8.onnx beside model.onnx (cnnspec.quantize)
    quantize_samples: int | None = None  # calibration images; None: quantize's default
    quantize_max_drop: float | None = None  # points of test accuracy int8 may lose; None: quantize's default
    workers: int | None = None  # data-loading workers for image files; None: the cores; 0: in this process
    cache: bool = False  # decode every image of an image-file source into memory up front
    strict: bool = False  # an unreadable image is an error, not skipped
    freeze: tuple[str, ...] = ()  # layers, blocks or block calls whose weights do not train
    freeze_until: str | None = None  # every layer up to and including this one does not train
    lr_backbone: float | None = None  # learning-rate factor for the layers before the head
    allow_partial: bool = False  # --init: tensors that do not fit (beyond the head) start fresh
    loss: str = "ce"  # segmentation: ce, dice or ce+dice (classifiers: ce)

    @property
    def data_workers(self) -> int:
        return self.workers if self.workers is not None else default_workers()

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    @property
    def decay(self) -> float:
        return self.weight_decay if self.weight_decay is not None else DEFAULT_WEIGHT_DECAY[self.optimizer]

    @property
    def sgd_momentum(self) -> float:
        return self.momentum if self.momentum is not None else DEFAULT_MOMENTUM

    @property
    def drop_factor(self) -> float:
        return self.gamma if self.gamma is not None else DEFAULT_GAMMA

    @property
    def drop_every(self) -> int:
        return self.step_size if self.step_size is not None else max(1, self.epochs // 3)

    @property
    def calibration_samples(self) -> int:
        return self.quantize_samples if self.quantize_samples is not None else DEFAULT_QUANTIZE_SAMPLES

    @property
    def max_drop(self) -> float:
        return self.quantize_max_drop if self.quantize_max_drop is not None else DEFAULT_QUANTIZE_MAX_DROP

    def settings(self) -> dict:
        """Every option that shapes the run (not ``quiet``), as given: the record train.yaml and a
        checkpoint keep, and what a resume compares."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in fields(self) if f.name not in PRESENTATION}

    def resolved(self) -> dict:
        """settings() with every defaulted option at the value it took (None where it does not
        apply): what a resume compares, so an explicit default equals an omitted one."""
        sgd, step = self.optimizer == "sgd", self.schedule == "step"
        return {**self.settings(), "lr": self.learning_rate, "weight_decay": self.decay,
                "momentum": self.sgd_momentum if sgd else None, "step_size": self.drop_every if step else None,
                "gamma": self.drop_factor if step else None,
                "quantize_samples": self.calibration_samples if self.quantize else None,
                "quantize_max_drop": self.max_drop if self.quantize else None}

    def validate(self, world: World) -> None:
        for broken, message in _checks(self, world):
            if broken:
                raise UsageError(message)


def default_workers() -> int:
    """The cores this process may run on (``--workers``' default)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


PRESENTATION = ("quiet",)  # options that change what is shown, never what is trained


def _checks(c: TrainConfig, world: World) -> tuple[tuple[bool, str], ...]:
    """(is it wrong, what to say) for every option, in the order the flags are listed."""
    unknown_aug = [a for a in c.augment if a not in AUGMENTS]
    return (
        (c.epochs < 1, f"--epochs must be at least 1, got {c.epochs}"),
        (c.batch_size < 1, f"--batch-size must be at least 1, got {c.batch_size}"),
        (c.optimizer not in OPTIMIZERS, f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got '{c.optimizer}'"),
        (c.device not in DEVICES, f"--device must be one of {', '.join(DEVICES)}, got '{c.device}'"),
        (not 0 <= c.val_fraction <= 0.5, f"--val-fraction must be between 0 and 0.5, got {c.val_fraction}"),
        (c.lr is not None and not (0 < c.lr < 10), f"--lr must be a positive number below 10, got {c.lr}"),
        (c.batch_size % world.size != 0, f"--batch-size {c.batch_size} is the global batch and must be a multiple "
                                         f"of the {world.size} processes"),
        (c.schedule not in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}, got '{c.schedule}'"),
        (not 0 <= c.warmup < c.epochs, f"--warmup must be at least 0 and less than the run's {plural(c.epochs, 'epoch')}, "
                                       f"got {c.warmup:g}"),
        (c.step_size is not None and c.step_size < 1, f"--step-size must be at least 1 epoch, got {c.step_size}"),
        (c.gamma is not None and not 0 < c.gamma <= 1, f"--gamma must be above 0 and at most 1, got {c.gamma}"),
        (c.step_size is not None and c.schedule != "step", "--step-size applies to --schedule step only"),
        (c.gamma is not None and c.schedule != "step", "--gamma applies to --schedule step only"),
        (c.weight_decay is not None and not 0 <= c.weight_decay < 1,
         f"--weight-decay must be at least 0 and below 1, got {c.weight_decay}"),
        (c.momentum is not None and c.optimizer != "sgd", f"--momentum applies to --optimizer sgd only "
                                                          f"(this run uses {c.optimizer})"),
        (c.nesterov and c.optimizer != "sgd", f"--nesterov applies to --optimizer sgd only (this run uses {c.optimizer})"),
        (c.momentum is not None and not 0 <= c.momentum < 1, f"--momentum must be at least 0 and below 1, "
                                                              f"got {c.momentum}"),
        (c.nesterov and c.sgd_momentum == 0, "--nesterov needs a momentum above 0"),
        (not 0 <= c.label_smoothing < 1, f"--label-smoothing must be at least 0 and below 1, got {c.label_smoothing}"),
        (c.patience is not None and c.patience < 1, f"--patience must be at least 1 epoch, got {c.patience}"),
        (c.patience is not None and c.val_fraction == 0, "--patience watches the validation accuracy: it needs "
                                                         "--val-fraction above 0"),
        (c.precision not in PRECISIONS, f"--precision must be one of {', '.join(PRECISIONS)}, got '{c.precision}'"),
        (c.precision in PRECISIONS and c.device not in PRECISION_DEVICES[c.precision],
         f"--precision {c.precision} runs on {' or '.join(PRECISION_DEVICES.get(c.precision, ()))} only "
         f"(this run uses --device {c.device}); use bf16 on the CPU"),
        (bool(unknown_aug), f"--augment: unknown transform '{unknown_aug[0] if unknown_aug else ''}'; choose from "
                            f"{', '.join(AUGMENTS)}"),
        (len(set(c.augment)) != len(c.augment), "--augment names a transform twice"),
        (c.quantize is not None and c.quantize not in QUANTIZE_KINDS,
         f"--quantize must be one of {', '.join(QUANTIZE_KINDS)}, got '{c.quantize}'"),
        (c.quantize_samples is not None and not c.quantize, "--quantize-samples applies to --quantize int8 only"),
        (c.quantize_max_drop is not None and not c.quantize, "--quantize-max-drop applies to --quantize int8 only"),
        (c.quantize_samples is not None and c.quantize_samples < 1,
         f"--quantize-samples must be 1 or more, got {c.quantize_samples}"),
        (c.quantize_max_drop is not None and not 0 <= c.quantize_max_drop <= 100,
         f"--quantize-max-drop must be between 0 and 100 points, got {c.quantize_max_drop}"),
        (c.workers is not None and not 0 <= c.workers <= 256, f"--workers must be between 0 and 256, got {c.workers}"),
        (c.lr_backbone is not None and not 0 <= c.lr_backbone <= 100,
         f"--lr-backbone must be a factor between 0 and 100, got {c.lr_backbone}"),
        (len(set(c.freeze)) != len(c.freeze), "--freeze names a layer twice"),
        (c.loss not in LOSSES, f"--loss must be one of {', '.join(LOSSES)}, got '{c.loss}'"),
    )
