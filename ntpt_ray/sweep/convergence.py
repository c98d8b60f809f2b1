"""When has a restart converged? A jump in its validation accuracy.

Gradient search over programs tends to sit on a plateau and then snap into a program within a
few hundred examples; the snap shows as a jump of the relaxed validation accuracy. The sweep
verifies a restart (decodes and runs it discretely) when that happens instead of waiting for
its budget to run out, so a verified restart frees its slot early.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ConvergenceRule:
    """Fire when the latest validation accuracy

    * reached ``min_accuracy``,
    * rose by at least ``jump`` above the lowest of the ``window`` validations before it, and
    * beat, by at least ``jump / 2``, the accuracy at which this restart was last verified
      without success (so a restart is not re-verified on every validation of a plateau).
    """

    jump: float = 0.1
    window: int = 4
    min_accuracy: float = 0.3

    def __post_init__(self) -> None:
        if not 0 <= self.jump <= 1 or not 0 <= self.min_accuracy <= 1:
            raise ValueError("jump and min_accuracy are accuracies in [0, 1]")
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")

    def fires(self, curve: Sequence[float], last_checked: float | None = None) -> bool:
        """Whether a restart with validation accuracies ``curve`` (oldest first) should be
        verified now; ``last_checked`` is its accuracy at its last failed verification."""
        if len(curve) < 2:
            return False
        latest = curve[-1]
        before = curve[-1 - self.window:-1]
        if latest < self.min_accuracy or latest - min(before) < self.jump:
            return False
        return last_checked is None or latest >= last_checked + self.jump / 2


class Watch:
    """A worker's view of its restarts' validations: what to do after each one. Verify a
    restart when the rule fires on its curve, or when its budget is spent (``at_end``); drop a
    spent one otherwise."""

    def __init__(self, rule: ConvergenceRule, at_end: bool):
        self.rule, self.at_end = rule, at_end
        self.curves: dict[int, list[float]] = {}
        self.last_failed: dict[int, float] = {}  # restart -> its accuracy at its last failed check

    def validated(self, restart: int, accuracy: float, spent: bool) -> str | None:
        """``"verify"``, ``"drop"`` or ``None`` for ``restart`` after a validation at ``accuracy``."""
        curve = self.curves.setdefault(restart, [])
        curve.append(accuracy)
        if spent:
            return "verify" if self.at_end else "drop"
        return "verify" if self.rule.fires(curve, self.last_failed.get(restart)) else None

    def failed(self, restart: int) -> None:
        """``restart`` was verified without success (and trains on)."""
        self.last_failed[restart] = self.curves[restart][-1]

    def forget(self, restart: int) -> None:
        self.curves.pop(restart, None)
        self.last_failed.pop(restart, None)
