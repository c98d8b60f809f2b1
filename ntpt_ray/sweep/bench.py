"""The sweep benchmark behind the README's figures, on one Ray instance started once.

* Scaling: the same sweep (every restart run to its budget) with 1 actor and with 2 actors,
  alternated ``repeats`` times; restarts per minute of sweep time after the actors are up.
* Coordinator overhead: the share of a sweep's wall time the coordinator spends on its own
  work (decisions, state and store writes), from the same runs.
* Time to first verified program: the spec as shipped (stop at the first verified program)
  with several seeds; seconds from the sweep's start, actor start-up included.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .coordinator import SweepResult, run_sweep
from .spec import SweepSpec


@dataclass
class ScalingRun:
    actors: int
    restarts: int
    seconds: float  # after the actors were up
    coordinator_seconds: float
    wall_seconds: float

    @property
    def restarts_per_minute(self) -> float:
        return 60 * self.restarts / self.seconds


@dataclass
class SweepBench:
    scaling: list[ScalingRun] = field(default_factory=list)
    first_verified: dict[int, float | None] = field(default_factory=dict)  # seed -> seconds
    first_verified_restarts: dict[int, int] = field(default_factory=dict)  # seed -> restarts done

    def median_rate(self, actors: int) -> float:
        return statistics.median(r.restarts_per_minute for r in self.scaling if r.actors == actors)

    @property
    def overhead(self) -> float:
        """Median share of wall time spent in the coordinator."""
        return statistics.median(r.coordinator_seconds / r.wall_seconds for r in self.scaling)


def scaling_spec(spec: SweepSpec, *, restarts: int, per_actor: int, steps: int) -> SweepSpec:
    """``spec`` changed to run exactly ``restarts`` restarts of ``steps`` steps each."""
    return spec.model_copy(update={
        "restarts": spec.restarts.model_copy(update={"total": restarts, "per_actor": per_actor}),
        "train": spec.train.model_copy(update={"steps": steps}),
        "stop": spec.stop.model_copy(update={"policy": "all"}),
    })


def _run(spec: SweepSpec, actors: int) -> SweepResult:
    with tempfile.TemporaryDirectory(prefix="ntpt-bench-") as store:
        return run_sweep(spec, store=store, actors=actors)


def run_bench(spec: SweepSpec, *, restarts: int = 32, per_actor: int = 8, steps: int = 300,
              repeats: int = 3, seeds: Sequence[int] = range(5),
              progress: Callable[[str], None] = lambda _: None) -> SweepBench:
    """Measure scaling, overhead and time to first verified program (Ray must be initialised)."""
    out = SweepBench()
    scaled = scaling_spec(spec, restarts=restarts, per_actor=per_actor, steps=steps)
    for k in range(repeats):
        for actors in (1, 2):
            result = _run(scaled, actors)
            run = ScalingRun(actors, result.restarts_finished,
                             result.seconds - result.startup_seconds, result.coordinator_seconds,
                             result.seconds)
            out.scaling.append(run)
            progress(f"scaling {k + 1}/{repeats}, {actors} actor(s): {run.restarts_per_minute:.1f} "
                     f"restarts/min, coordinator {run.coordinator_seconds / run.wall_seconds:.2%}")
    for seed in seeds:
        seeded = spec.model_copy(update={"restarts": spec.restarts.model_copy(update={"seed": seed})})
        result = _run(seeded, 2)
        out.first_verified[seed] = result.first_verified_seconds
        out.first_verified_restarts[seed] = result.done
        found = result.first_verified_seconds
        progress(f"seed {seed}: " + ("no verified program" if found is None
                                     else f"first verified program after {found:.1f} s"))
    return out
