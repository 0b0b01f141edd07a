"""The learning rate of every optimizer step, framework-free, so both backends take the same LR.

A schedule is a pure function of the step: a resumed run needs no scheduler state, only the step it
stopped at. With ``T`` steps in all (epochs x steps per epoch) and ``W`` warm-up steps (``--warmup``
epochs, rounded to steps), step ``s`` (0-based) uses:

- warm-up (``s < W``, every schedule but onecycle): ``lr * (s + 1) / W``, rising linearly to ``lr``;
- ``constant``: ``lr``;
- ``step``: ``lr * gamma ** (epoch // step_size)``, ``epoch`` being the step's 0-based epoch;
- ``cosine``: ``lr * (1 + cos(pi * p)) / 2`` with ``p = (s - W) / (T - W)``, from ``lr`` towards 0;
- ``onecycle`` (Smith's 1cycle, PyTorch's OneCycleLR formula): a cosine rise from ``lr / 25`` at step
  0 to ``lr`` at step ``R - 1`` (``R = W``, or 30% of the steps without ``--warmup``), then a cosine
  fall to ``lr / 25 / 1e4`` at the last step. It changes the learning rate only, not momentum.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

ONECYCLE_START_DIV = 25.0  # PyTorch's OneCycleLR defaults
ONECYCLE_FINAL_DIV = 1e4
ONECYCLE_RISE = 0.3


@dataclass(frozen=True)
class Schedule:
    """Everything that decides the learning rate of a step."""

    kind: str
    lr: float
    epochs: int
    steps_per_epoch: int
    warmup_steps: int = 0
    drop_every: int = 1  # step: epochs between drops
    drop_factor: float = 0.1  # step: gamma

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def lr_at(self, step: int) -> float:
        """The learning rate optimizer step ``step`` (0-based, counted over the whole run) uses."""
        if self.kind != "onecycle" and step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        return SCHEDULES[self.kind](self, step)

    def epoch_lrs(self, epoch: int) -> tuple[float, ...]:
        """The learning rate of every step of ``epoch`` (1-based)."""
        first = (epoch - 1) * self.steps_per_epoch
        return tuple(self.lr_at(s) for s in range(first, first + self.steps_per_epoch))


def schedule_for(config, steps_per_epoch: int) -> Schedule:
    """The run's schedule from its options (``--warmup`` epochs become whole steps)."""
    return Schedule(config.schedule, config.learning_rate, config.epochs, steps_per_epoch,
                    warmup_steps=round(config.warmup * steps_per_epoch), drop_every=config.drop_every,
                    drop_factor=config.drop_factor)


def _cos_between(start: float, end: float, progress: float) -> float:
    """From ``start`` (progress 0) to ``end`` (progress 1) along half a cosine."""
    return end + (start - end) * (1 + math.cos(math.pi * progress)) / 2


def _constant(s: Schedule, step: int) -> float:
    return s.lr


def _step(s: Schedule, step: int) -> float:
    return s.lr * s.drop_factor ** ((step // s.steps_per_epoch) // s.drop_every)


def _cosine(s: Schedule, step: int) -> float:
    span = max(1, s.total_steps - s.warmup_steps)
    return s.lr * (1 + math.cos(math.pi * (step - s.warmup_steps) / span)) / 2


def _onecycle(s: Schedule, step: int) -> float:
    peak = (s.warmup_steps or max(1, round(ONECYCLE_RISE * s.total_steps))) - 1  # the step at lr
    start = s.lr / ONECYCLE_START_DIV
    if step <= peak:
        return _cos_between(start, s.lr, step / peak) if peak > 0 else s.lr
    return _cos_between(s.lr, start / ONECYCLE_FINAL_DIV, (step - peak) / max(1, s.total_steps - 1 - peak))


SCHEDULES = {"constant": _constant, "step": _step, "cosine": _cosine, "onecycle": _onecycle}

# whether a run may go on past the epochs it was started with (``--resume RUN --epochs N``): only where
# no step's learning rate depends on the total. Each entry: given settings -> None (it may) or why not.
LONGER_RUN = {
    "constant": lambda given: None,
    "step": lambda given: None if given.get("step_size") is not None else (
        "its --step-size was not given, so it is a third of the epochs: more epochs would move every drop; "
        "a step run started with an explicit --step-size can carry on"),
    "cosine": lambda given: "the cosine schedule anneals to 0 over the whole run: more epochs would change "
                            "the learning rate of every step already taken",
    "onecycle": lambda given: "the onecycle schedule rises and falls over the whole run: more epochs would "
                              "change the learning rate of every step already taken",
}


def why_not_longer(schedule: str, given: dict) -> str | None:
    """None where a run of this schedule can carry on for more epochs than it was started with."""
    rule = LONGER_RUN.get(schedule)
    return rule(given) if rule is not None else f"the {schedule} schedule depends on the run's length"
