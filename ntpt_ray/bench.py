"""The benchmark behind the README's figures: vectorised restarts and decoding, measured.

* Throughput: median wall time of one training step with R restarts vectorised and with a
  single restart, measured alternately in one process; restarts per minute follow for the
  configured budget, and their ratio is what vectorising buys. Every relaxed path asked for
  (``reference``, ``fast``) is timed in the same interleaved loop, so their ratio is measured
  side by side.
* Success: per-restart rate of verified programs over many restarts, decoding each restart by
  its argmax and by beams of several widths.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

from .problems import Problem
from .train.restarts import RestartBatch, TrainConfig
from .train.run import restart_seeds
from .train.verify import Verifier


@dataclass
class Throughput:
    vectorised: int
    step_seconds_vectorised: float  # median
    step_seconds_single: float  # median
    steps: int  # the budget restarts/min refers to
    samples: int
    path: str = "fast"

    @property
    def restarts_per_minute_vectorised(self) -> float:
        return 60 * self.vectorised / (self.steps * self.step_seconds_vectorised)

    @property
    def restarts_per_minute_single(self) -> float:
        return 60 / (self.steps * self.step_seconds_single)

    @property
    def ratio(self) -> float:
        return self.restarts_per_minute_vectorised / self.restarts_per_minute_single


def measure_throughput(problem: Problem, config: TrainConfig, *, vectorised: int = 32,
                       samples: int = 15, warmup: int = 3,
                       paths: tuple[str, ...] = ("fast",)) -> dict[str, Throughput]:
    """Time training steps of R vectorised restarts against one restart, for each relaxed
    path, all interleaved in one loop; ``{path: Throughput}``."""
    verifier = Verifier(problem, val_size=8, test_size=8)
    batches = {(path, r): RestartBatch(problem, range(vectorised) if r > 1 else [vectorised], config,
                                       verifier=verifier, path=path)
               for path in paths for r in (vectorised, 1)}
    times: dict[tuple[str, int], list[float]] = {key: [] for key in batches}
    for k in range(warmup + samples):
        for key, batch in batches.items():
            began = time.perf_counter()
            batch.step()
            if k >= warmup:
                times[key].append(time.perf_counter() - began)
    return {path: Throughput(vectorised, statistics.median(times[path, vectorised]),
                             statistics.median(times[path, 1]), config.steps, samples, path)
            for path in paths}


@dataclass
class Success:
    restarts: int
    verified: dict[str, int] = field(default_factory=dict)  # "argmax" / "beam K" -> restarts
    decode_seconds: dict[str, float] = field(default_factory=dict)
    train_seconds: float = 0.0


def measure_success(problem: Problem, config: TrainConfig, *, restarts: int = 128,
                    vectorise: int = 32, beams: tuple[int, ...] = (1024, 8192), seed: int = 0,
                    path: str = "fast", progress=None) -> Success:
    """Train ``restarts`` restarts and count the verified ones under each decoding."""
    out = Success(restarts)
    verifiers = {beam: Verifier(problem, val_size=config.val_size, test_size=config.test_size, seed=seed)
                 for beam in beams}  # each width its own: what one verified is not known to the next
    seeds = restart_seeds(seed, restarts)
    for start in range(0, restarts, vectorise):
        chunk = RestartBatch(problem, seeds[start:start + vectorise], config, verifier=verifiers[beams[0]],
                             data_seed=seed, path=path)
        began = time.perf_counter()
        chunk.train(progress)
        out.train_seconds += time.perf_counter() - began
        for beam in beams:
            began = time.perf_counter()
            found = [chunk.verify(r, beam, verifiers[beam]) for r in range(chunk.restarts)]
            key = f"beam {beam}"
            out.decode_seconds[key] = out.decode_seconds.get(key, 0) + time.perf_counter() - began
            out.verified[key] = out.verified.get(key, 0) + sum(v.verified for v in found)
            if beam == beams[0]:
                out.verified["argmax"] = out.verified.get("argmax", 0) + sum(
                    v.argmax_verified for v in found)
    return out
