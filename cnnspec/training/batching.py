"""Shuffling, sharding and the validation split, framework-free: the same seed gives the same
batches in every backend, and a distributed run's processes together see exactly the batches one
process would."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..backend.world import World

VAL_SPLIT_SEED = 20240522  # fixed, like the test split: --seed changes the run, not the data


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


@dataclass(frozen=True)
class EpochPlan:
    """What each step of one epoch does, decided before the backend runs it: the index batch it
    trains on (into the training arrays), its learning rate, and how its images are augmented
    (``augment(step, images)`` returns a new array; ``None``: the images as they are)."""

    epoch: int
    batches: list
    lrs: tuple[float, ...]
    augment: Callable | None = None


def validation_split(labels, fraction: float):
    """(fit, validation) indices into the training set: stratified, the same for every seed."""
    import numpy as np

    from ..data.sources import stratified_split

    if fraction <= 0:
        return np.arange(len(labels)), np.arange(0)
    return stratified_split(labels, fraction, VAL_SPLIT_SEED)


def shard(n: int, world: World):
    """This rank's share of the held-out set: no padding, so summed statistics are exact."""
    import numpy as np

    return np.arange(world.rank, n, world.size)
