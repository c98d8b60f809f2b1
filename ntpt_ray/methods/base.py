"""What every discrete search method shares: its settings, one restart's state, and the check
that a spec's problem can be searched without gradients."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

METHODS = ("gradient", "random", "enumerate", "smt")
DISCRETE = METHODS[1:]


@dataclass(frozen=True)
class SearchSettings:
    """How a discrete method searches (a spec's ``[search]`` section)."""

    method: str = "random"
    programs: int = 100_000  # random: distinct programs per restart; enumerate: per shard
    batch: int = 4096  # programs screened per vectorised batch (one actor call)
    smt_examples: int = 4  # examples the solver starts from (failing ones are added)
    smt_rounds: int = 64  # solver calls per smt restart, at most
    smt_timeout: float = 120.0  # seconds per solver call


class SearchRestart(ABC):
    """One restart of a discrete method: :meth:`step` examines its next batch of programs."""

    def __init__(self) -> None:
        self.examined = 0  # distinct programs examined (smt: solver models checked)
        self.done = False  # budget spent, shard exhausted, or a verified program found
        self.found: dict[str, np.ndarray] | None = None  # the verified program
        self.test_accuracy: dict[str, float] = {}
        self.info: dict[str, object] = {}  # method-specific facts for the record

    @abstractmethod
    def step(self) -> None:
        """Examine the next batch (sets ``done``, and ``found`` when a program verifies)."""


def check_searchable(method: str, perceptual: bool) -> None:
    """Raise ValueError unless ``method`` can search a problem with this perception."""
    if method not in METHODS:
        raise ValueError(f"unknown search method '{method}'; allowed: {', '.join(METHODS)}")
    if method in DISCRETE and perceptual:
        raise ValueError(f"method '{method}' needs exact perception (perceptual = false): a perceptual "
                         "task's nets are untrained, so only gradient search can learn them")
