"""A sweep worker: one vectorised batch of restart slots, driven call by call by the coordinator.

Each :meth:`RestartWorker.advance` call does what the coordinator decided (verify some
restarts, drop some, start new ones in free slots, adopt a new library version) and then
trains every active slot for one validation period and reports its validation accuracy. The
worker keeps no decisions of its own, so losing it loses only the restarts it was training:
the coordinator re-runs them elsewhere. In a sweep it runs as a Ray actor with one CPU (and
one GPU with ``[train] device = "cuda"``).
A restart's training data come from its own seed (see :class:`RestartBatch`), so it finds the
same program whichever actor, slot and neighbours it has.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..library import LibrarySnapshot
from ..program import LearnedProgram
from ..train.restarts import RestartBatch
from ..train.verify import Verifier
from .spec import SweepSpec


@dataclass(frozen=True)
class Assignment:
    """Start restart ``restart`` with ``seed`` from library version ``library_version``."""

    restart: int
    seed: int
    library_version: int


@dataclass(frozen=True)
class LibraryVersion:
    """A version of the sweep's shared neural library (``nets`` empty in symbolic mode or
    when a perceptual sweep starts from freshly initialised nets)."""

    version: int
    nets: LibrarySnapshot


@dataclass
class Checked:
    """The outcome of discretising and verifying one restart."""

    restart: int
    seed: int
    library_version: int
    finished: bool  # its budget was spent
    verified: bool
    verification: dict[str, Any]  # Verification fields other than values/confidence
    program: dict[str, Any] | None  # LearnedProgram.to_dict() of the chosen candidate
    val_curve: list[tuple[int, float]]
    started_at: float  # time.time() of its first step
    nets: LibrarySnapshot = field(default_factory=dict)  # its library, when verified
    examined: int = 0  # discrete methods: distinct programs examined (smt: solver models)


@dataclass
class Reply:
    """What one :meth:`RestartWorker.advance` call did."""

    accuracy: dict[int, float]  # restart -> latest relaxed validation accuracy
    steps: dict[int, int]  # restart -> steps taken so far (discrete methods: programs examined)
    finished: list[int]  # restarts whose budget is now spent (waiting to be verified)
    checked: list[Checked]
    train_seconds: float
    verify_seconds: float


class RestartFailed(RuntimeError):
    """Training or verifying ``restarts`` raised ``error`` (one line; Ray carries the traceback)."""

    def __init__(self, restarts: list[int], error: str):
        super().__init__(restarts, error)  # what pickling re-creates it from
        self.restarts = restarts
        self.error = error

    def __str__(self) -> str:
        which = ", ".join(map(str, self.restarts))
        return f"restart{'' if len(self.restarts) == 1 else 's'} {which} failed on an actor: {self.error}"


@contextmanager
def _blame(restarts: Iterable[int]) -> Iterator[None]:
    """Re-raise an exception of the block as :class:`RestartFailed` of ``restarts``."""
    try:
        yield
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        raise RestartFailed(sorted(restarts), f"{type(exc).__name__}: {lines[0] if lines else ''}") from exc


class RestartWorker:
    """The ``[restarts] per_actor`` restart slots of a sweep's problem, trained as one tensor
    computation (all slots start empty)."""

    def __init__(self, spec: SweepSpec, *, data_dir: str | None = None, threads: int = 1):
        torch.set_num_threads(threads)
        self.spec = spec
        self.problem = self.spec.build_problem()
        self.config = self.spec.train_config()
        slots = self.spec.restarts.per_actor
        verifier = Verifier(self.problem, val_size=self.config.val_size,
                            test_size=self.config.test_size, seed=self.spec.restarts.seed,
                            data_dir=data_dir)
        self.batch = RestartBatch(self.problem, [0] * slots, self.config, verifier=verifier,
                                  data_dir=data_dir, device=self.spec.train.device)
        self.batch.active[:] = False
        self.slot_of: dict[int, int] = {}  # restart -> slot
        self.assignment: dict[int, Assignment] = {}
        self.started: dict[int, float] = {}
        self.libraries: dict[int, LibrarySnapshot] = {}

    def pid(self) -> int:
        """The worker's process id (fault-tolerance tests kill it)."""
        return os.getpid()

    @property
    def free_slots(self) -> int:
        return self.batch.restarts - len(self.slot_of)

    def advance(self, *, start: list[Assignment] = (), verify: list[int] = (), drop: list[int] = (),
                library: LibraryVersion | None = None) -> Reply:
        """Adopt ``library``, verify and drop restarts, start new ones, then train one period."""
        if library is not None:
            self.libraries[library.version] = library.nets
        began = time.perf_counter()
        checked = []
        for restart in verify:
            with _blame([restart]):
                checked.append(self._verify(restart))
        verify_seconds = time.perf_counter() - began
        for restart in [*drop, *(c.restart for c in checked if c.verified or c.finished)]:
            self._release(restart)
        if len(start) > self.free_slots:
            raise ValueError(f"{len(start)} restarts assigned to {self.free_slots} free slots")
        free = iter(sorted(set(range(self.batch.restarts)) - set(self.slot_of.values())))
        for job in start:
            slot = next(free)
            with _blame([job.restart]):
                self.batch.reset(slot, job.seed, self.libraries.get(job.library_version) or None)
            self.slot_of[job.restart] = slot
            self.assignment[job.restart] = job
            self.started[job.restart] = time.time()
        began = time.perf_counter()
        with _blame(self.slot_of):
            accuracy, finished = self._train_period()
        return Reply(accuracy, {r: int(self.batch.steps_done[s]) for r, s in self.slot_of.items()},
                     finished, checked, time.perf_counter() - began, verify_seconds)

    def _train_period(self) -> tuple[dict[int, float], list[int]]:
        batch, budget = self.batch, self.config.steps
        if not batch.active.any():
            return {}, []
        for _ in range(self.config.val_every):
            batch.step()
            batch.active &= batch.steps_done < budget
            if not batch.active.any():
                break
        training = [r for r, s in self.slot_of.items() if batch.steps_done[s] > 0]
        accuracy = batch.validate(record=np.isin(np.arange(batch.restarts),
                                                 [self.slot_of[r] for r in training]))
        finished = [r for r in training if batch.steps_done[self.slot_of[r]] >= budget]
        return {r: float(accuracy[self.slot_of[r]]) for r in training}, finished

    def _verify(self, restart: int) -> Checked:
        slot, job = self.slot_of[restart], self.assignment[restart]
        v = self.batch.verify(slot)
        result = self.batch.results[slot]
        program = LearnedProgram(self.problem, v.values, v.confidence)
        details = {"rank": v.rank, "val_accuracy": v.val_accuracy,
                   "argmax_verified": v.argmax_verified, "test_accuracy": v.test_accuracy,
                   "perceptual_accuracy": v.perceptual_accuracy}
        return Checked(restart, job.seed, job.library_version,
                       bool(self.batch.steps_done[slot] >= self.config.steps), v.verified, details,
                       program.to_dict(), list(result.val_curve), self.started[restart],
                       self.batch.library_snapshot(slot) if v.verified else {})

    def _release(self, restart: int) -> None:
        slot = self.slot_of.pop(restart, None)
        if slot is not None:
            self.batch.freeze(slot)
            self.assignment.pop(restart)
            self.started.pop(restart)


class SearchWorker:
    """The restart slots of a discrete search method (``[search] method``, see
    :mod:`ntpt_ray.methods`), driven by the coordinator like :class:`RestartWorker`: each
    :meth:`advance` examines one batch of programs per running restart and reports a restart
    as checked (verified, or its budget or shard spent) by itself."""

    def __init__(self, spec: SweepSpec, *, data_dir: str | None = None, threads: int = 1):
        from ..methods import MethodRunner

        torch.set_num_threads(threads)
        self.spec = spec
        self.problem = spec.build_problem()
        config = spec.train_config()
        verifier = Verifier(self.problem, val_size=config.val_size, test_size=config.test_size,
                            seed=spec.restarts.seed, data_dir=data_dir)
        self.runner = MethodRunner(self.problem, spec.search.settings(), verifier)
        self.running: dict[int, Any] = {}  # restart -> SearchRestart
        self.assignment: dict[int, Assignment] = {}
        self.started: dict[int, float] = {}

    def pid(self) -> int:
        """The worker's process id (fault-tolerance tests kill it)."""
        return os.getpid()

    def advance(self, *, start: list[Assignment] = (), verify: list[int] = (), drop: list[int] = (),
                library: LibraryVersion | None = None) -> Reply:
        """Drop restarts, start new ones, then examine one batch of each running restart."""
        for restart in drop:
            self._release(restart)
        if len(start) + len(self.running) > self.spec.restarts.per_actor:
            raise ValueError(f"{len(start)} restarts assigned to "
                             f"{self.spec.restarts.per_actor - len(self.running)} free slots")
        for job in start:
            with _blame([job.restart]):
                self.running[job.restart] = self.runner.restart(job.restart, job.seed,
                                                                self.spec.restarts.total)
            self.assignment[job.restart] = job
            self.started[job.restart] = time.time()
        began = time.perf_counter()
        checked = []
        for restart, search in list(self.running.items()):
            with _blame([restart]):
                search.step()
            if search.done:
                checked.append(self._checked(restart, search))
                self._release(restart)
        steps = {r: s.examined for r, s in self.running.items()}
        return Reply({}, steps, [], checked, time.perf_counter() - began, 0.0)

    def _checked(self, restart: int, search) -> Checked:
        job = self.assignment[restart]
        verified = search.found is not None
        values = search.found if verified else {}
        program = LearnedProgram(self.problem, values, {k: np.ones(np.shape(v)) for k, v in values.items()})
        details = {"method": self.spec.search.method, "examined": search.examined,
                   "val_accuracy": 1.0 if verified else None, "test_accuracy": search.test_accuracy,
                   **search.info}
        return Checked(restart, job.seed, job.library_version, True, verified, details,
                       program.to_dict() if verified else None, [], self.started[restart],
                       examined=search.examined)

    def _release(self, restart: int) -> None:
        self.running.pop(restart, None)
        self.assignment.pop(restart, None)
        self.started.pop(restart, None)
