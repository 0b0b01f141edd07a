"""Where this process sits in a ``torchrun`` launch, read from the environment torchrun sets."""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import UsageError


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
