"""Random search: uniform draws of whole programs, made canonical and deduplicated, screened in
large vectorised batches."""

from __future__ import annotations

import numpy as np

from ..train.verify import Verifier
from .base import SearchRestart, SearchSettings
from .screen import screen
from .space import ProgramSpace, program_keys


class RandomRestart(SearchRestart):
    """``settings.programs`` distinct programs drawn from ``seed``, ``settings.batch`` a step."""

    def __init__(self, space: ProgramSpace, verifier: Verifier, seed: int, settings: SearchSettings):
        super().__init__()
        self.space, self.verifier, self.settings = space, verifier, settings
        self.rng = np.random.default_rng([seed, 0x5EA7C4])
        self.seen: set[bytes] = set()
        self.budget = min(settings.programs, space.size)

    def step(self) -> None:
        want = min(self.settings.batch, self.budget - self.examined)
        drawn = self.space.sample(want, self.rng)
        fresh = [k not in self.seen for k in program_keys(drawn)]
        batch = {name: v[fresh] for name, v in drawn.items()}
        self.seen.update(k for k, new in zip(program_keys(drawn), fresh) if new)
        found = screen(self.verifier, batch)
        self.examined += int(sum(fresh)) if found.index is None else found.index + 1  # up to the find
        self.test_accuracy = found.test_accuracy
        if found.index is not None:
            self.found = {name: v[found.index] for name, v in batch.items()}
        self.done = self.found is not None or self.examined >= self.budget or not any(fresh)
