"""A sweep worker: one vectorised batch of restart slots, driven call by call by the coordinator.

Each :meth:`RestartWorker.advance` call does what the coordinator decided (start new restarts
in free slots, adopt a new library version, train for so many validation periods) and reports
every validation accuracy. The worker applies the sweep's convergence rule itself after each
validation (:class:`~ntpt_ray.sweep.convergence.Watch`): a restart is verified as soon as the
rule fires or its budget is spent, so one call can train several periods without the
coordinator. It keeps nothing the sweep needs to recover: losing it loses only the restarts it
was training, and the coordinator re-runs them elsewhere. In a sweep it runs as a Ray actor
with one CPU (and one GPU with ``[train] device = "cuda"``).
A restart's training data come from its own seed (see :class:`RestartBatch`), so it finds the
same program whichever actor, slot and neighbours it has.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch

from ..library import LibrarySnapshot
from ..program import LearnedProgram
from ..train.restarts import RestartBatch
from ..train.verify import Verifier
from .convergence import ConvergenceRule, Watch
from .spec import SweepSpec


class Assignment(NamedTuple):
    """Start restart ``restart`` with ``seed`` from library version ``library_version`` (a
    named tuple: the coordinator makes one per restart)."""

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

    accuracy: dict[int, list[float]]  # restart -> its relaxed validation accuracies in this call
    steps: dict[int, int]  # running restart -> steps taken so far (discrete methods: programs examined)
    spent: list[int]  # restarts whose budget ran out unverified (at_end = false): released
    checked: list[Checked]  # restarts verified in this call (released unless a false alarm)
    train_seconds: float
    verify_seconds: float
    periods: int = 1  # validation periods trained (discrete methods: batches examined)
    best_accuracy: float = 0.0  # the best of ``accuracy``'s values


class Backlog:
    """The restarts an actor was assigned beyond its free slots (at most ``slots`` of them),
    first in, first started as slots free: the coordinator queues them on an actor so that a
    slot freed in the middle of a call is filled without ending the call."""

    def __init__(self, slots: int):
        self.slots = slots
        self.jobs: deque[Assignment] = deque()

    def take(self, start: Collection[Assignment], running: int) -> None:
        """Queue ``start`` behind those queued (``running`` restarts hold slots)."""
        if running + len(self.jobs) + len(start) > 2 * self.slots:
            raise ValueError(f"{len(start)} restarts assigned to an actor running {running} with "
                             f"{len(self.jobs)} queued (at most {2 * self.slots} in all)")
        self.jobs.extend(start)

    def next(self, free: int) -> list[Assignment]:
        """Up to ``free`` restarts to start now, first queued first."""
        return [self.jobs.popleft() for _ in range(min(free, len(self.jobs)))]


class CallLog:
    """What an ``advance`` call has seen so far, period by period: every validation, the
    restarts spent unverified, the verifications; it applies the worker's :class:`Watch`."""

    def __init__(self, watch: Watch):
        self.watch = watch
        self.accuracy: dict[int, list[float]] = {}
        self.spent: list[int] = []
        self.checked: list[Checked] = []
        self.best = 0.0  # the best validation accuracy of the call

    def settle(self, period: dict[int, float], finished: Collection[int],
               verify: Callable[[int], Checked], release: Callable[[int], None]) -> bool:
        """Record one period's validations ``{restart: accuracy}`` (``finished``: budgets now
        spent), verify or drop restarts as the watch says, ``release`` those done; whether a
        slot was freed."""
        freed = False
        for restart, value in period.items():
            self.accuracy.setdefault(restart, []).append(value)
            self.best = max(self.best, value)
            action = self.watch.validated(restart, value, restart in finished)
            if action == "drop":
                self.spent.append(restart)
            elif action == "verify":
                self.checked.append(verify(restart))
                if not (self.checked[-1].verified or self.checked[-1].finished):
                    self.watch.failed(restart)
                    continue
            if action is not None:
                release(restart)
                freed = True
        return freed

    def ends_call(self, freed: bool, refill: bool) -> bool:
        return ends_call(self.checked, freed, refill)


def ends_call(checked: list[Checked], freed: bool, refill: bool) -> bool:
    """Whether an ``advance`` call ends after this period: one of ``checked`` verified a program
    (stored at once), or the period ``freed`` a slot that waiting restarts (``refill``) could take."""
    return (refill and freed) or any(c.verified for c in checked)


class RestartFailed(RuntimeError):
    """Training or verifying ``restarts`` raised ``error`` (one line; Ray carries the traceback)."""

    def __init__(self, restarts: list[int], error: str):
        super().__init__(restarts, error)  # what pickling re-creates it from
        self.restarts = restarts
        self.error = error

    def __str__(self) -> str:
        which = ", ".join(map(str, self.restarts))
        return f"restart{'' if len(self.restarts) == 1 else 's'} {which} failed on an actor: {self.error}"


def watch_of(spec: SweepSpec) -> Watch:
    """The spec's convergence rule, as a worker applies it."""
    c = spec.convergence
    return Watch(ConvergenceRule(c.jump, c.window, c.min_accuracy), c.at_end)


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
        self.watch = watch_of(spec)
        self.backlog = Backlog(slots)

    def pid(self) -> int:
        """The worker's process id (fault-tolerance tests kill it)."""
        return os.getpid()

    @property
    def free_slots(self) -> int:
        return self.batch.restarts - len(self.slot_of)

    def advance(self, *, start: list[Assignment] = (), library: LibraryVersion | None = None,
                periods: int = 1, refill: bool = False) -> Reply:
        """Adopt ``library``, start new restarts, then train up to ``periods`` validation
        periods. After each, a restart the convergence rule fires on, or whose budget is spent
        (``[convergence] at_end``), is verified at once; verified and spent restarts leave their
        slots. The call ends after a period that verified a program (so that it is stored at
        once) or, with ``refill`` (restarts wait for slots), that freed a slot none of its queued
        restarts took (restarts beyond its free slots wait in its :class:`Backlog`)."""
        if library is not None:
            self.libraries[library.version] = library.nets
        self.backlog.take(start, len(self.slot_of))
        self._start_queued()
        log = CallLog(self.watch)
        seconds = {"train": 0.0, "verify": 0.0}

        def verify(restart: int) -> Checked:
            began = time.perf_counter()
            with _blame([restart]):
                checked = self.verify(restart)
            seconds["verify"] += time.perf_counter() - began
            return checked

        done = 0
        while done < periods and self.batch.active.any():
            began = time.perf_counter()
            with _blame(self.slot_of):
                period, finished = self._train_period()
            seconds["train"] += time.perf_counter() - began
            done += 1
            freed = log.settle(period, finished, verify, self._release) and self._start_queued()
            if log.ends_call(freed, refill):
                break
        return Reply(log.accuracy, {r: int(self.batch.steps_done[s]) for r, s in self.slot_of.items()},
                     log.spent, log.checked, seconds["train"], seconds["verify"], done, log.best)

    def _start_queued(self) -> bool:
        """Start queued restarts in the free slots; whether a slot is still free."""
        free = sorted(set(range(self.batch.restarts)) - set(self.slot_of.values()))
        for slot, job in zip(free, self.backlog.next(len(free))):
            with _blame([job.restart]):
                self.batch.reset(slot, job.seed, self.libraries.get(job.library_version) or None)
            self.slot_of[job.restart] = slot
            self.assignment[job.restart] = job
            self.started[job.restart] = time.time()
        return self.free_slots > 0

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

    def verify(self, restart: int) -> Checked:
        """Decode and verify running restart ``restart`` now (it keeps its slot)."""
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
        self.watch.forget(restart)
        slot = self.slot_of.pop(restart, None)
        if slot is not None:
            self.batch.freeze(slot)
            self.assignment.pop(restart)
            self.started.pop(restart)


class SearchWorker:
    """The restart slots of a discrete search method (``[search] method``, see
    :mod:`ntpt_ray.methods`), driven by the coordinator like :class:`RestartWorker`: each
    :meth:`advance` examines ``periods`` batches of programs per running restart and reports a
    restart as checked (verified, or its budget or shard spent) by itself."""

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
        self.backlog = Backlog(spec.restarts.per_actor)

    def pid(self) -> int:
        """The worker's process id (fault-tolerance tests kill it)."""
        return os.getpid()

    def advance(self, *, start: list[Assignment] = (), library: LibraryVersion | None = None,
                periods: int = 1, refill: bool = False) -> Reply:
        """Start new restarts, then examine up to ``periods`` batches of each running restart;
        the call ends, as :meth:`RestartWorker.advance`'s, after a batch that verified a program
        or (with ``refill``) finished a restart that no queued restart replaced."""
        self.backlog.take(start, len(self.running))
        began = time.perf_counter()
        self._start_queued()
        checked = []
        done = 0
        while done < periods and self.running:
            done += 1
            for restart, search in list(self.running.items()):
                with _blame([restart]):
                    search.step()
                if search.done:
                    checked.append(self._checked(restart, search))
                    self._release(restart)
            if ends_call(checked, bool(checked) and self._start_queued(), refill):
                break
        steps = {r: s.examined for r, s in self.running.items()}
        return Reply({}, steps, [], checked, time.perf_counter() - began, 0.0, done)

    def _start_queued(self) -> bool:
        """Start queued restarts in the free slots; whether a slot is still free."""
        for job in self.backlog.next(self.backlog.slots - len(self.running)):
            with _blame([job.restart]):
                self.running[job.restart] = self.runner.restart(job.restart, job.seed,
                                                                self.spec.restarts.total)
            self.assignment[job.restart] = job
            self.started[job.restart] = time.time()
        return len(self.running) < self.backlog.slots

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
