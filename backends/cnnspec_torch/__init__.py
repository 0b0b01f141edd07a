"""PyTorch backend for cnnspec: compile a checked graph to an ``nn.Module``, export ONNX, write a
standalone ``model.py``. Imported only when the torch backend is asked for (and by plugin discovery,
which imports this package but not torch).

Importing it sets ``OMP_WAIT_POLICY=PASSIVE`` when neither the user nor an earlier ``import torch``
has decided: see ``passive_openmp``."""
from __future__ import annotations

import os
import sys

OMP_WAIT_POLICY = "OMP_WAIT_POLICY"


def passive_openmp() -> bool:
    """Make PyTorch's OpenMP threads sleep, not spin, while they wait at a barrier; True when set.

    Why: PyTorch's libgomp spins waiting threads by default. On a machine whose cores are shared
    (a container, a CI runner, a laptop running anything else) a spinning thread holds the core its
    descheduled sibling needs, and every op's barrier waits for that sibling. Measured on this
    project's 2-core AVX2 machine shared with another job (load 2.5-4.9), torch 2.13, 2 threads,
    fresh processes alternating, 7 pairs: torch eager ResNet-18 batch 1 ran at 10.8-16.5 img/s
    passive and 1.0-20.8 img/s with PyTorch's default, variable unset (passive/default per pair
    0.58-12.9x: the default won only in the 2 pairs where the other job left the cores free, and
    lost 6.5-12.9x in the other 5); batch 32 ran 1.09-1.44x faster passive in all 7; ``cnnspec
    train`` on the digits spec (10 epochs, whole process) took 0.99-1.12x as long with the default
    as passive, 3 pairs. That lottery is also what made ORT fp32
    against PyTorch eager swing between runs (README, deployment section). Whoever owns the cores
    can set ``OMP_WAIT_POLICY=ACTIVE`` (kept, below) for the batch-1 latency of an idle machine.

    Only where it can still work and decides nothing for the user: libgomp reads the variable once,
    when torch first loads it, so after ``import torch`` setting it would be a lie; and a value the
    user set, whatever it is, is kept (``OMP_WAIT_POLICY=ACTIVE`` gets the spinning back)."""
    if "torch" in sys.modules or OMP_WAIT_POLICY in os.environ:
        return False
    os.environ[OMP_WAIT_POLICY] = "PASSIVE"
    return True


passive_openmp()

from .backend import TorchBackend  # noqa: E402 - after the policy: nothing above may import torch

__all__ = ["TorchBackend"]
