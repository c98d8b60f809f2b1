"""Exhaustive search: the distinct-program space in its fixed order, one shard per restart."""

from __future__ import annotations

import math

from ..train.verify import Verifier
from .base import SearchRestart, SearchSettings
from .screen import screen
from .space import ProgramSpace


def shards(size: int, programs: int, most: int) -> tuple[int, int]:
    """``(count, shard size)``: a space of ``size`` split into at most ``most`` shards of about
    ``programs`` programs (larger shards when the space needs more than ``most``)."""
    count = max(1, min(math.ceil(size / programs), most))
    return count, math.ceil(size / count)


class EnumerateRestart(SearchRestart):
    """Shard ``shard`` of ``count``: indices ``shard * width .. (shard + 1) * width - 1``."""

    def __init__(self, space: ProgramSpace, verifier: Verifier, shard: int, count: int,
                 settings: SearchSettings):
        super().__init__()
        self.space, self.verifier, self.settings = space, verifier, settings
        width = math.ceil(space.size / count)
        self.start, self.stop = shard * width, min((shard + 1) * width, space.size)

    def step(self) -> None:
        begin = self.start + self.examined
        batch = self.space.programs(begin, min(begin + self.settings.batch, self.stop))
        found = screen(self.verifier, batch)
        self.examined += len(next(iter(batch.values()))) if found.index is None else found.index + 1
        self.test_accuracy = found.test_accuracy
        if found.index is not None:
            self.found = {name: v[found.index] for name, v in batch.items()}
            self.info["index"] = begin + found.index
        self.done = self.found is not None or begin + self.settings.batch >= self.stop
