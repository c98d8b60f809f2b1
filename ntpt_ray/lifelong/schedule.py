"""The lifelong schedule: which task each training batch comes from, as time goes on.

Time ``t`` counts training examples. Task ``k`` (of K, in lifetime order) has the triangular
weight ``max(0, 1 - |t - (k + 1/2) P| / (width P))``; the weights are normalised over tasks and
each batch is one task drawn from them. With ``width = 1`` task k dominates ``[kP, (k+1)P)``
and the first task is never shown after ``1.5 P``: the window in which reverse transfer shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Schedule:
    """``tasks`` in lifetime order, ``per_task`` examples (P) each, ``width`` of a task's
    triangle in units of P."""

    tasks: tuple[str, ...]
    per_task: int
    width: float = 1.0

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("a schedule needs at least one task")
        if self.per_task < 1 or not self.width > 0:
            raise ValueError(f"per_task must be >= 1 and width > 0, got {self.per_task}, {self.width}")

    @property
    def total(self) -> int:
        """Examples in a lifetime: K x P."""
        return len(self.tasks) * self.per_task

    def weights(self, t: float | np.ndarray) -> np.ndarray:
        """The task distribution ``[K]`` at time ``t`` (or ``[T, K]`` for an array of times)."""
        times = np.atleast_1d(np.asarray(t, dtype=np.float64))
        centres = (np.arange(len(self.tasks)) + 0.5) * self.per_task
        w = np.clip(1 - np.abs(times[:, None] - centres[None, :]) / (self.width * self.per_task), 0, None)
        nearest = np.abs(times[:, None] - centres[None, :]).argmin(1)
        empty = w.sum(1) == 0  # beyond every triangle (only with width < 1/2): the nearest task
        w[empty, nearest[empty]] = 1.0
        w /= w.sum(1, keepdims=True)
        return w[0] if np.ndim(t) == 0 else w

    def draw(self, t: int, rng: np.random.Generator) -> int:
        """The task of the batch that starts at time ``t``."""
        return int(rng.choice(len(self.tasks), p=self.weights(t)))
