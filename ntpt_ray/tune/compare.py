"""Success rates of parameter sets measured side by side on fresh restarts (not the tuning
seeds), so that the best trial's luck on its own seeds does not count."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..sweep.coordinator import run_sweep
from ..sweep.spec import SweepSpec
from .study import tuned_spec

CHECK_SEED = 1000  # chunk k of a comparison runs restart seeds of [restarts] seed 1000 + k


@dataclass
class Measured:
    """One parameter set's results over all chunks."""

    label: str
    params: dict[str, Any]
    verified: int = 0
    restarts: int = 0
    first_verified: list[float] = field(default_factory=list)  # per chunk that found one
    restarts_per_minute: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.verified / self.restarts if self.restarts else 0.0

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        """Wilson score interval of the success rate (95% by default)."""
        n, p = self.restarts, self.rate
        if not n:
            return 0.0, 1.0
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return centre - half, centre + half

    @property
    def median_first_verified(self) -> float | None:
        return statistics.median(self.first_verified) if self.first_verified else None

    @property
    def median_restarts_per_minute(self) -> float | None:
        return statistics.median(self.restarts_per_minute) if self.restarts_per_minute else None


def two_proportion_p(a: Measured, b: Measured) -> float:
    """Two-sided p-value of a two-proportion z-test that ``a`` and ``b`` succeed equally often."""
    pooled = (a.verified + b.verified) / (a.restarts + b.restarts)
    se = math.sqrt(pooled * (1 - pooled) * (1 / a.restarts + 1 / b.restarts))
    return 1.0 if se == 0 else math.erfc(abs(a.rate - b.rate) / se / math.sqrt(2))


def compare(spec: SweepSpec, candidates: dict[str, dict[str, Any]], *, restarts: int,
            chunks: int = 4, store: str | Path | None = None, data_dir: str | Path | None = None,
            progress: Callable[[str], None] = lambda _: None) -> list[Measured]:
    """Run every candidate parameter set on ``restarts`` restarts, in ``chunks`` sweeps that
    alternate between candidates and share restart seeds (chunk ``k``: seed ``1000 + k``). A
    chunk already in the store is read back rather than run again. Ray must be initialised."""
    size = math.ceil(restarts / chunks)
    out = [Measured(label, params) for label, params in candidates.items()]
    for k in range(chunks):
        for measured in out:
            sweep = tuned_spec(spec, measured.params, name=f"{spec.name}-check-{measured.label}-c{k}",
                               restarts=size, seed=CHECK_SEED + k, run_all=True)
            found = run_sweep(sweep, store=store, data_dir=data_dir, resume=True)
            measured.verified += found.verified
            measured.restarts += found.done
            if found.first_verified_seconds is not None:
                measured.first_verified.append(found.first_verified_seconds)
            if found.restarts_finished:
                measured.restarts_per_minute.append(found.restarts_per_minute)
            progress(f"chunk {k + 1}/{chunks} {measured.label}: {found.verified}/{found.done} verified"
                     f" (total {measured.verified}/{measured.restarts}, {measured.rate:.1%})")
    return out
