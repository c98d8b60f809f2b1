"""Discrete search on this machine, without Ray: ``ntpt train --method``."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ..problems import Problem
from ..program import LearnedProgram
from ..train.config import TrainConfig
from ..train.restarts import RestartResult
from ..train.run import RunSummary, restart_seeds
from ..train.verify import Verification, Verifier
from .base import SearchRestart, SearchSettings
from .enumerate import shards
from .runner import MethodRunner


def search_restarts(problem: Problem, settings: SearchSettings, *, restarts: int, config: TrainConfig,
                    seed: int = 0, data_dir=None,
                    on_batch: Callable[[int, SearchRestart], None] | None = None) -> RunSummary:
    """Run ``restarts`` restarts of a discrete method one after another (enumerate: the shards
    of the whole space, ``restarts`` ignored) until one verifies; ``on_batch(restart, search)``
    after each batch."""
    summary = RunSummary(problem, config)
    verifier = Verifier(problem, val_size=config.val_size, test_size=config.test_size, seed=seed,
                        data_dir=data_dir)
    runner = MethodRunner(problem, settings, verifier)
    if settings.method == "enumerate":
        restarts, _ = shards(runner.space.size, settings.programs, 1 << 62)
    seeds = restart_seeds(seed, min(restarts, 1 << 20))
    for index in range(restarts):
        began = time.perf_counter()
        search = runner.restart(index, seeds[index % len(seeds)], restarts)
        while not search.done:
            search.step()
            if on_batch is not None:
                on_batch(index, search)
        summary.verify_seconds += time.perf_counter() - began
        values = search.found or {}
        confidence = {k: np.ones(np.shape(v)) for k, v in values.items()}
        summary.results.append(RestartResult(seeds[index % len(seeds)], verification=Verification(
            search.found is not None, False, 0, 1.0 if search.found is not None else 0.0, values,
            confidence, search.test_accuracy)))
        if search.found is not None:
            summary.winner = LearnedProgram(problem, values, confidence)
            break
    return summary
