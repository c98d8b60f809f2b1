"""The coordinator at cluster scale, by simulation: the real coordinator, simulated actors.

:func:`simulate` runs the real :class:`~ntpt_ray.sweep.coordinator.Coordinator` (its state, store
and stop policy included) on ``actors`` simulated actors. :class:`SimulatedRay` stands in for the
Ray API the coordinator uses (``remote``, ``wait``, ``get``, ``put``, ``kill``); its actors are
:class:`SimulatedWorker` objects that answer :class:`~ntpt_ray.sweep.worker.RestartWorker`'s
protocol (``pid``, ``advance``) with synthetic replies, timed and filled from a real worker
(:func:`record`: the seconds of one validation period of ``per_actor`` slots, of one
verification and of starting up, and a decoded program with its verification record). A
restart's fate comes from its seed (:class:`Fates`).

The simulated clock is the real clock, minus the simulator's own work, plus every wait it skips:
when no reply is due, ``wait`` jumps to the next one instead of sleeping (but first sleeps, up
to that gap, while the coordinator's store writer is busy: that thread would have had the
driver's idle time on a cluster). So the coordinator's work takes its real time, replies queue
up behind a slow coordinator as they would on a cluster, and a sweep of many simulated minutes
runs in about the time the coordinator itself needs. The coordinator keeps its own schedule (when
it saves its state, reports progress, stamps a restart's start and end) on the simulated clock,
as it would on the wall clock of a cluster. The driver's own time is measured from
one ``wait`` returning to the next (the simulator's work taken out): Ray's own cost in the
driver (``wait``, ``get``, sending a call) is not in it, nor the wait for the last programs to
be durable once no actor is left (reported beside it).
"""

from __future__ import annotations

import heapq
import math
import statistics
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..store import ProgramStore
from ..train.run import restart_seeds
from .coordinator import Coordinator
from .spec import SweepSpec
from .state import SweepDirectory, SweepState
from .worker import Assignment, Backlog, CallLog, Checked, LibraryVersion, Reply, RestartWorker, watch_of


@dataclass(frozen=True)
class Recording:
    """What a real :class:`RestartWorker` did, replayed by the simulated ones."""

    startup_seconds: float  # building the worker (compiling the model, making the data)
    period_seconds: float  # one validation period (val_every steps) of per_actor restarts
    verify_seconds: float  # decoding and verifying one restart
    program: dict[str, Any]  # a decoded program, LearnedProgram.to_dict()
    verification: dict[str, Any]  # its Checked.verification


def record(spec: SweepSpec, *, periods: int = 2, data_dir: str | None = None) -> Recording:
    """Run a real worker of ``spec`` in this process: its start-up, ``periods`` validation
    periods of all its slots (the median) and two verifications (the second: the first pays for
    compiling the model at every test length). The worker's convergence rule is off, so that
    every slot still trains for the verifications."""
    quiet = spec.convergence.model_copy(update={"jump": 1.0, "min_accuracy": 1.0, "at_end": False})
    began = time.perf_counter()
    worker = RestartWorker(spec.model_copy(update={"convergence": quiet}), data_dir=data_dir)
    startup = time.perf_counter() - began
    slots = spec.restarts.per_actor
    start = [Assignment(r, s, 0) for r, s in enumerate(restart_seeds(spec.restarts.seed, slots))]
    train = []
    for _ in range(periods):
        train.append(worker.advance(start=start, library=LibraryVersion(0, {})).train_seconds)
        start = []
    verify, checked = [], None
    for restart in list(worker.slot_of)[:2]:
        began = time.perf_counter()
        checked = worker.verify(restart)
        verify.append(time.perf_counter() - began)
    return Recording(startup, statistics.median(train), verify[-1], checked.program,
                     checked.verification)


@dataclass(frozen=True)
class Fates:
    """What becomes of each restart, drawn from its seed. A share ``success`` jumps, at a random
    validation, to a plateau that verifies (30.9% of 256 fresh symbolic-MATH restarts verified
    with the shipped spec, README); a share ``false_alarm`` jumps to one that does not (the
    convergence rule orders about 2 checks per verifiable restart, README); the rest stay flat
    and fail at the end of their budget."""

    success: float = 0.3
    false_alarm: float = 0.2

    def of(self, seed: int, validations: int) -> tuple[str, int]:
        """``("verifies" | "false alarm" | "flat", the validation it jumps at)``."""
        rng = np.random.default_rng(seed)
        u, jump = rng.random(), int(rng.integers(2, max(validations, 2) + 1))
        if u < self.success:
            return "verifies", jump
        return ("false alarm" if u < self.success + self.false_alarm else "flat"), jump

    @staticmethod
    def accuracy(kind: str, jump: int, validation: int) -> float:
        """Relaxed validation accuracy at ``validation`` (1, 2, ...): a wobble around 0.16, and
        after the jump 0.5 (verifies) or 0.45 (a false alarm: never re-fires the rule)."""
        if kind != "flat" and validation >= jump:
            return 0.5 if kind == "verifies" else 0.45
        return 0.15 + 0.01 * (validation % 3)


class SimulatedWorker:
    """:class:`RestartWorker`'s protocol with synthetic replies: ``per_actor`` slots, each
    restart training ``val_every`` steps per period until its budget is spent, the spec's
    convergence rule applied as the real worker does, its accuracies and verdicts from
    :class:`Fates`, its timings and programs from a :class:`Recording`."""

    def __init__(self, spec: SweepSpec, recording: Recording, fates: Fates):
        self.slots, self.budget = spec.restarts.per_actor, spec.train.steps
        self.every, self.batch_size = spec.convergence.val_every, spec.train.batch_size
        self.validations = math.ceil(self.budget / self.every)
        self.recording, self.fates = recording, fates
        self.jobs: dict[int, Assignment] = {}
        self.steps: dict[int, int] = {}
        self.curves: dict[int, list[tuple[int, float]]] = {}
        self.fate: dict[int, tuple[str, int]] = {}
        self.started: dict[int, float] = {}
        self.watch = watch_of(spec)
        self.backlog = Backlog(self.slots)

    def pid(self) -> int:
        return id(self)

    def advance(self, *, start: list[Assignment] = (), library: LibraryVersion | None = None,
                periods: int = 1, refill: bool = False) -> Reply:
        """Start restarts, then train up to ``periods`` periods as :meth:`RestartWorker.advance`."""
        self.backlog.take(start, len(self.jobs))
        self._start_queued()
        log = CallLog(self.watch)
        done = 0
        while done < periods and self.jobs:
            done += 1
            period = {}
            for restart in self.jobs:
                self.steps[restart] = min(self.budget, self.steps[restart] + self.every)
                period[restart] = Fates.accuracy(*self.fate[restart], len(self.curves[restart]) + 1)
                self.curves[restart].append((self.steps[restart] * self.batch_size, period[restart]))
            finished = {r for r in period if self.steps[r] >= self.budget}
            freed = log.settle(period, finished, self._verify, self._release) and self._start_queued()
            if log.ends_call(freed, refill):
                break
        return Reply(log.accuracy, dict(self.steps), log.spent, log.checked,
                     self.recording.period_seconds * done,
                     self.recording.verify_seconds * len(log.checked), done, log.best)

    def _start_queued(self) -> bool:
        """Start queued restarts in the free slots; whether a slot is still free."""
        for job in self.backlog.next(self.slots - len(self.jobs)):
            self.jobs[job.restart], self.steps[job.restart], self.curves[job.restart] = job, 0, []
            self.fate[job.restart] = self.fates.of(job.seed, self.validations)
            self.started[job.restart] = time.time()
        return len(self.jobs) < self.slots

    def _verify(self, restart: int) -> Checked:
        job, (kind, jump) = self.jobs[restart], self.fate[restart]
        verified = kind == "verifies" and len(self.curves[restart]) >= jump
        verification = dict(self.recording.verification)
        if verified:
            verification["test_accuracy"] = dict.fromkeys(verification.get("test_accuracy") or {}, 1.0)
        return Checked(restart, job.seed, job.library_version, self.steps[restart] >= self.budget, verified,
                       verification, self.recording.program, list(self.curves[restart]),
                       self.started[restart])

    def _release(self, restart: int) -> None:
        self.watch.forget(restart)
        for table in (self.jobs, self.steps, self.curves, self.fate, self.started):
            table.pop(restart, None)


class _Ref:
    """An ObjectRef: the answer of one call (or a ``put`` value), due at a simulated time."""

    __slots__ = ("due", "value", "error", "method")

    def __init__(self, due: float, value: Any, error: Exception | None = None, method: str = ""):
        self.due, self.value, self.error, self.method = due, value, error, method

    def __lt__(self, other: _Ref) -> bool:  # heap order
        return self.due < other.due


class _Method:
    def __init__(self, ray: SimulatedRay, actor: _Handle, name: str):
        self.ray, self.actor, self.name = ray, actor, name

    def remote(self, *args: Any, **kwargs: Any) -> _Ref:
        return self.ray._call(self.actor, self.name, args, kwargs)


class _Handle:
    """An actor handle: ``handle.pid.remote()``, ``handle.advance.remote(...)``."""

    def __init__(self, ray: SimulatedRay, worker: SimulatedWorker):
        self.worker, self.free_at, self.dead = worker, 0.0, False
        self.pid, self.advance = _Method(ray, self, "pid"), _Method(ray, self, "advance")


class _ActorClass:
    def __init__(self, ray: SimulatedRay):
        self.ray = ray

    def remote(self, spec: SweepSpec, **_: Any) -> _Handle:
        began = time.perf_counter()
        handle = _Handle(self.ray, self.ray.make_worker(spec))
        self.ray.overhead += time.perf_counter() - began
        return handle


@dataclass
class Loop:
    """One pass of the driver between two ``wait`` calls."""

    seconds: float  # the driver's own time (the simulator's taken out)
    replies: int  # advance replies it handled
    pings: int  # start-up pings it handled


class SimulatedRay:
    """The part of the Ray API the coordinator uses, on simulated actors and a simulated clock.

    An actor answers one call at a time; a call's reply is due when the actor is free and the
    reply's own ``train_seconds + verify_seconds`` (start-up pings: ``startup_seconds``) have
    passed. Every ``wait`` closes a :class:`Loop` of the driver."""

    def __init__(self, make_worker: Callable[[SweepSpec], SimulatedWorker], startup_seconds: float):
        import ray.exceptions  # the coordinator catches Ray's own exception types

        self.exceptions = ray.exceptions
        self.make_worker, self.startup_seconds = make_worker, startup_seconds
        self.due: list[_Ref] = []  # a heap of the calls not yet returned by wait
        self.overhead = 0.0  # real seconds spent in the simulator
        self.skipped = 0.0  # simulated seconds waited without sleeping
        self.dispatch_overhead = 0.0  # of overhead, inside advance.remote (timed by the coordinator)
        self.calls = self.reports = self.killed = 0
        self.loops: list[Loop] = []
        self._mark: tuple[float, float] | None = None  # (perf_counter, overhead) when the driver went on
        self._replies = self._pings = 0
        self.background: Callable[[], bool] = lambda: False  # work in the driver's process that idles use

    def now(self) -> float:
        """The simulated clock (seconds)."""
        return time.perf_counter() - self.overhead + self.skipped

    def mark(self) -> None:
        """Close the driver's current loop (if one is open) and open the next."""
        t = time.perf_counter()
        if self._mark is not None:
            own = t - self._mark[0] - (self.overhead - self._mark[1])
            self.loops.append(Loop(own, self._replies, self._pings))
        self._replies = self._pings = 0
        self._mark = (t, self.overhead)

    # ---- the Ray API

    def remote(self, **_: Any) -> Callable[[type], _ActorClass]:
        return lambda _cls: _ActorClass(self)

    def wait(self, refs: list[_Ref], *, num_returns: int = 1,
             timeout: float | None = None) -> tuple[list[_Ref], list[_Ref]]:
        self.mark()  # the simulator's time from here on is overhead, until the next loop opens
        now = self.now()
        if self.due and self.due[0].due > now:
            gap = self.due[0].due - now
            gap = gap if timeout is None else min(gap, timeout)
            until = time.perf_counter() + gap
            while self.background() and time.perf_counter() < until:
                time.sleep(min(1e-3, max(until - time.perf_counter(), 0.0)))
            self.skipped += gap  # the clock moves by gap, slept or not (sleep is overhead)
            now += gap
        ready = []
        while self.due and len(ready) < num_returns and self.due[0].due <= now:
            ready.append(heapq.heappop(self.due))
        picked = set(ready)
        rest = [ref for ref in refs if ref not in picked] if picked else list(refs)
        t = time.perf_counter()
        self.overhead += t - self._mark[0]
        self._mark = (t, self.overhead)
        return ready, rest

    def get(self, ref: _Ref) -> Any:
        began = time.perf_counter()
        try:
            if ref.method == "advance":
                self.reports += 1
                self._replies += 1
            elif ref.method == "pid":
                self._pings += 1
            if ref.error is not None:
                raise ref.error
            return ref.value
        finally:
            self.overhead += time.perf_counter() - began

    def put(self, value: Any) -> _Ref:
        return _Ref(0.0, value)

    def kill(self, handle: _Handle, *, no_restart: bool = True) -> None:
        handle.dead = True
        self.killed += 1

    def _call(self, actor: _Handle, name: str, args: tuple, kwargs: dict[str, Any]) -> _Ref:
        began = time.perf_counter()
        now = self.now()
        kwargs = {k: v.value if isinstance(v, _Ref) else v for k, v in kwargs.items()}
        value, error = None, None
        try:
            value = getattr(actor.worker, name)(*args, **kwargs)
        except Exception as exc:  # surfaces from get(), as Ray would raise it
            error = exc
        seconds = (self.startup_seconds if name == "pid" else
                   0.0 if error else value.train_seconds + value.verify_seconds)
        ref = _Ref(max(now, actor.free_at) + seconds, value, error, name)
        actor.free_at = ref.due
        heapq.heappush(self.due, ref)
        spent = time.perf_counter() - began
        self.overhead += spent
        if name == "advance":
            self.calls += 1
            self.dispatch_overhead += spent
        return ref

    @property
    def outstanding(self) -> int:
        """Advance calls whose reply was never returned (killed with their actor at the end)."""
        return sum(ref.method == "advance" for ref in self.due)


class _TimedDirectory(SweepDirectory):
    """The real sweep directory, timing its saves of the state."""

    seconds = 0.0

    def save(self, state: SweepState, changed: Collection[int] | None = None) -> None:
        began = time.perf_counter()
        super().save(state, changed)
        self.seconds += time.perf_counter() - began


@dataclass
class SimulatedSweep:
    """One simulated sweep: what the coordinator did and what it cost."""

    actors: int
    restarts: int
    outcomes: int  # restarts with an outcome in the sweep's state
    verified: int  # in the sweep's state
    stored: int  # program folders in the store
    calls: int  # advance calls the coordinator sent
    reports: int  # advance replies it handled
    outstanding: int  # calls still running when the sweep stopped
    wall_seconds: float  # simulated, actors' start-up included
    real_seconds: float  # what the simulation took
    driver_seconds: float  # the driver's own time, every loop (the end's store wait taken out)
    store_wait_seconds: float  # with no actor left, waiting for the last programs to be durable
    coordinator_seconds: float  # the coordinator's own account (SweepResult), simulator taken out
    save_seconds: float  # of the driver's time, saving the state
    store_seconds: float  # the store's writer thread, writing verified programs (beside the driver)
    report_ms_median: float  # driver time of a loop that handled one reply
    report_ms_p90: float
    report_ms_max: float
    period_seconds: float
    verify_seconds: float

    @property
    def share(self) -> float:
        """The driver's share of the wall time."""
        return self.driver_seconds / self.wall_seconds

    @property
    def save_share(self) -> float:
        return self.save_seconds / self.wall_seconds

    @property
    def store_share(self) -> float:
        """The writer's busy share of the wall time (of a core beside the driver's)."""
        return self.store_seconds / self.wall_seconds

    @property
    def accounted_share(self) -> float:
        """The coordinator's own account's share of the wall time (what ``ntpt sweep`` prints)."""
        return self.coordinator_seconds / self.wall_seconds


def simulation_spec(spec: SweepSpec, actors: int, rounds: int) -> SweepSpec:
    """``spec`` with ``rounds`` restarts per slot of ``actors`` actors, every one run to its end."""
    total = actors * spec.restarts.per_actor * rounds
    return spec.model_copy(update={
        "restarts": spec.restarts.model_copy(update={"total": total}),
        "stop": spec.stop.model_copy(update={"policy": "all"}),
    })


def simulate(spec: SweepSpec, recording: Recording, *, actors: int, store: Path, rounds: int = 2,
             fates: Fates = Fates()) -> SimulatedSweep:
    """Run the real coordinator on ``actors`` simulated actors, ``rounds`` restarts per slot,
    with its state and programs in the (new) store ``store``."""
    spec = simulation_spec(spec, actors, rounds)
    ray = SimulatedRay(lambda s: SimulatedWorker(s, recording, fates), recording.startup_seconds)
    directory, programs = _TimedDirectory(store, spec), ProgramStore(store)
    with directory.lock():
        state = directory.create({}, "fresh")
        directory.seconds = 0.0
        coordinator = Coordinator(spec, programs, directory, state, actors=actors, data_dir=None,
                                  on_progress=lambda _: None, runtime=ray, clock=ray.now)
        ray.background = coordinator.storing
        real, began = time.perf_counter(), ray.now()
        ray.mark()
        result = coordinator.run()
        ray.mark()
        wall, real = ray.now() - began, time.perf_counter() - real
    one = [loop.seconds for loop in ray.loops if loop.replies == 1 and not loop.pings]
    stored = sum(1 for _ in (store / "programs").iterdir()) if (store / "programs").exists() else 0
    return SimulatedSweep(
        actors, spec.restarts.total, len(state.outcomes), state.verified, stored, ray.calls, ray.reports,
        ray.outstanding, wall, real, sum(loop.seconds for loop in ray.loops) - result.store_wait_seconds,
        result.store_wait_seconds,
        result.coordinator_seconds - ray.dispatch_overhead, directory.seconds, result.store_seconds,
        1e3 * statistics.median(one), 1e3 * float(np.percentile(one, 90)), 1e3 * max(one),
        recording.period_seconds, recording.verify_seconds)


def with_timings(recording: Recording, *, period: float | None = None,
                 verify: float | None = None, startup: float | None = None) -> Recording:
    """``recording`` with some of its timings replaced (``None`` keeps the recorded one)."""
    return replace(recording, period_seconds=recording.period_seconds if period is None else period,
                   verify_seconds=recording.verify_seconds if verify is None else verify,
                   startup_seconds=recording.startup_seconds if startup is None else startup)
