"""The options of one training run, and the one place they are checked."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    from .distributed import World

OPTIMIZERS = ("adam", "sgd")
DEFAULT_LR = {"adam": 1e-3, "sgd": 1e-2}
DEVICES = ("cpu", "cuda")
DEFAULT_VAL_FRACTION = 0.1


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
