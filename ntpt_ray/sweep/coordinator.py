"""The coordinator: runs a sweep's restarts on Ray actors and keeps what they find.

It hands restarts to :class:`~ntpt_ray.sweep.worker.RestartWorker` actors (one CPU each, a
vectorised batch of restart slots per actor), which verify a restart when the
:class:`~ntpt_ray.sweep.convergence.ConvergenceRule` fires or its budget is spent and train
several validation periods per call when there are many actors (:meth:`Coordinator._periods`),
stores every verified program (those of one pass over the replies as one batch, written by a
writer thread while the driver goes on; durable before their restarts count as verified),
publishes a better neural library to the actors as a new version (through Ray's object
store), and stops as the spec's stop policy says. Finished restarts reach the sweep's durable
state within a second or so (:meth:`Coordinator._save_due`, with the time spent so far); a lost
actor's restarts run again on another actor, with the same results (a restart's data come from
its seed); a sweep whose driver died continues with ``resume=True``. One driver at a time runs
a sweep (:meth:`SweepDirectory.lock`); an actor's error stops the sweep with one line naming
the restart, its traceback in the sweep's ``errors.log``.
"""

from __future__ import annotations

import gc
import math
import os
import re
import socket
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..cli.common import plural
from ..methods import space_size
from ..store import ProgramRecord, ProgramStore, default_store, program_id, write_batch
from ..train.device import actor_options, cluster_device
from ..train.run import restart_seeds
from .spec import SweepSpec, limit
from .state import SweepDirectory, SweepError, SweepState, now_iso, resolve_start_library
from .worker import Assignment, Checked, LibraryVersion, Reply, RestartFailed, RestartWorker, SearchWorker

STARTUP_TIMEOUT = 300.0  # seconds without any live actor before the sweep gives up
SAVE_EVERY = 1.0  # seconds: a finished restart is saved within this (or SAVE_SHARE's longer)
SAVE_SHARE = 0.005  # at most this share of the driver's time goes to saving the state
REPORTS_PER_SECOND = 50.0  # actors' replies a second the driver asks for, at most (see _periods)
MAX_PERIODS = 16  # validation periods per call, at most
PROGRESS_EVERY = 0.1  # seconds between progress reports (and one when the sweep stops)
LOOPBACK = "127.0.0.1"  # where an embedded Ray listens
COLOURS = re.compile(r"\x1b\[[0-9;]*m")  # terminal colours in Ray's tracebacks


@dataclass
class SweepProgress:
    """A snapshot of a running sweep, for progress displays."""

    done: int  # restarts finished (verified or budget spent), earlier sessions included
    total: int
    running: int  # restarts assigned to actors: training, or queued on one (see Coordinator._dispatch)
    verified: int
    best_accuracy: float  # best relaxed validation accuracy seen this session
    restarts_per_minute: float  # restarts finished per minute of this session
    library_version: int
    actors: int  # live actors
    lost_actors: int
    elapsed: float  # seconds since this session started
    examined: int = 0  # discrete methods: programs examined, this session's finished and running restarts
    space: int | None = None  # enumerate: the distinct programs in the whole space


@dataclass
class SweepResult:
    """What a sweep session did and found."""

    sweep: str
    store: Path
    total: int
    done: int
    verified: int  # verified programs of the sweep, earlier sessions included
    programs: list[str] = field(default_factory=list)  # ids stored by this session, in order
    seconds: float = 0.0  # this session's wall time
    startup_seconds: float = 0.0  # Ray start-up and actor creation until the first actor is up
    first_verified_seconds: float | None = None  # into this session
    restarts_finished: int = 0  # this session
    coordinator_seconds: float = 0.0  # time the coordinator spent on its own work
    train_seconds: float = 0.0  # actor time spent training (all actors, this session)
    verify_seconds: float = 0.0  # actor time spent decoding and verifying
    library_versions: int = 1
    lost_actors: int = 0
    rerun: int = 0  # restarts started again because their actor was lost
    stopped_by: str = ""
    method: str = "gradient"
    examined: int = 0  # discrete methods: programs examined by this session's finished restarts
    store_wait_seconds: float = 0.0  # with no actor left, waiting for the last programs to be durable
    store_seconds: float = 0.0  # the store's writer thread, writing verified programs (beside the driver)
    space: int | None = None  # enumerate: the distinct programs in the whole space

    @property
    def restarts_per_minute(self) -> float:
        return 60 * self.restarts_finished / self.seconds if self.seconds else 0.0

    @property
    def success_rate(self) -> float:
        return self.verified / self.done if self.done else 0.0


@dataclass
class _Verified:
    """A verified restart waiting to be stored, with when it was found."""

    checked: Checked
    found_at: float  # time.time()
    seconds_into_sweep: float  # over all the sweep's sessions


@dataclass
class _Actor:
    handle: Any
    restarts: set[int] = field(default_factory=set)
    library_version: int = -1  # the newest version it holds
    ready: bool = False
    name: str = ""  # "pid <n>", from its start-up ping


class Coordinator:
    """Runs one sweep session on an initialised Ray (see :func:`run_sweep`)."""

    def __init__(self, spec: SweepSpec, store: ProgramStore, directory: SweepDirectory,
                 state: SweepState, *, actors: int, data_dir: str | None,
                 on_progress: Callable[[SweepProgress], None] | None = None,
                 began: float | None = None, runtime: Any = None,
                 clock: Callable[[], float] = time.perf_counter):
        if runtime is None:  # the Ray API; ntpt_ray.sweep.simulation passes simulated actors
            import ray as runtime

        self.ray = runtime
        self.clock = clock  # schedules saves and progress, times restarts (a simulation's is simulated)
        self.method = spec.search.method
        worker = RestartWorker if self.method == "gradient" else SearchWorker
        self.worker_class = runtime.remote(**actor_options(spec.train.device))(worker)
        self.spec = spec
        self.store = store
        self.directory = directory
        self.state = state
        self.data_dir = data_dir
        self.on_progress = on_progress
        self.target_actors = actors
        total = spec.restarts.total
        self.seeds = restart_seeds(spec.restarts.seed, total)
        self.pending = deque(r for r in range(total) if r not in state.outcomes)
        self.period_seconds = 0.0  # an actor's validation period, as its last reply timed it
        self.versions = [self._publish(record.version, directory.library(record))
                         for record in state.libraries]
        self.library_score = max(record.score for record in state.libraries)
        self.actors: dict[Any, _Actor] = {}  # ObjectRef of its pending call or ping -> actor
        self.waiting: list = []  # those ObjectRefs, as the last wait left them (see _track)
        self.idle: list[_Actor] = []  # live actors with nothing to do
        self.live = 0  # actors that answered their start-up ping and were not lost since
        self.assigned = 0  # restarts the actors hold (training, or queued on one)
        self.result = SweepResult(spec.sweep_id, store.root, total, len(state.outcomes),
                                  state.verified, library_versions=len(state.libraries))
        self.result.method = self.method
        if self.method == "enumerate":
            self.result.space = space_size(spec.build_problem())
        self.examining: dict[int, int] = {}  # running restart -> programs examined so far
        self.best_accuracy = 0.0
        self.began = clock() if began is None else began  # on self.clock
        self.earlier_seconds = state.seconds  # of the sweep's earlier sessions
        self.verified_count = state.verified  # kept here: the state's is a sum over its outcomes
        self.changed: set[int] = set()  # restarts finished since the last save (saved by _save_due)
        self.saved_at = self.progressed_at = -math.inf  # self.clock() of the last ones
        self.save_seconds = 0.0  # what the last save took
        self.freezing = False  # whether saves freeze what exists (see run)
        self.record_spec = spec.model_dump()  # in every stored program's record
        self.source = spec.build_problem().source  # saved beside every stored program
        self.unstored: list[_Verified] = []  # verified in this pass: see _commit
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="ntpt-store")  # see _commit
        self.writing: deque[tuple[Future, list[_Verified]]] = deque()  # oldest first

    # ---- the loop

    def run(self) -> SweepResult:
        """Run until the stop policy is met; kill the actors; save the state.

        What exists when the sweep starts, and at each save of its state, mostly lives through
        the sweep (the state grows by a record per restart): it is frozen out of the garbage
        collector's passes (:func:`gc.freeze`) until the sweep ends, unless the process froze
        objects itself (then left as it has them). The state is written on a thread of its own
        (:meth:`SweepDirectory.background_journal`): a save costs the driver its encoding, not
        the file system's calls and fsync."""
        with self.directory.background_journal():
            if gc.get_freeze_count():
                return self._run()
            self.freezing = True
            gc.freeze()
            try:
                return self._run()
            finally:
                self.freezing = False
                gc.unfreeze()

    def _run(self) -> SweepResult:
        self.state.sessions += 1
        self._save(whole=True)
        if not self._stop_reason():
            for _ in range(min(self.target_actors, self._needed_actors())):
                self._start_actor()
        last_alive = self.clock()
        try:
            while not self._stop_reason():
                ready = self._wait()
                if self.live:
                    last_alive = self.clock()
                elif self.clock() - last_alive > STARTUP_TIMEOUT:
                    raise SweepError(f"no actor could start for {STARTUP_TIMEOUT:.0f} s: does the "
                                     "cluster have a free CPU? (state is saved; use --resume)")
                for ref in ready:
                    self._handle(ref)
                self._commit()
                self._save_due()
                self._progress()
            self._progress(force=True)
        finally:
            for actor in [*self.actors.values(), *self.idle]:
                self.ray.kill(actor.handle, no_restart=True)
            self.result.examined += sum(self.examining.values())  # restarts cut short by the stop
            try:
                self._commit(finish=True)  # every batch being written, and one an error cut short
            finally:
                self.writer.shutdown()
                self.result.seconds = self._elapsed()
                self._save(whole=True)
        self.result.stopped_by = self._stop_reason()
        self.result.done = len(self.state.outcomes)
        self.result.verified = self.state.verified
        return self.result

    def _wait(self) -> list:
        """The calls whose replies are in: one waited for, with every other one in already, so
        that a pass handles them all and stores their programs as one batch."""
        refs = self.waiting
        if not refs and self.writing:  # the last restarts' programs are being stored
            began = time.perf_counter()
            wait_for([self.writing[0][0]], timeout=1.0)
            self.result.store_wait_seconds += time.perf_counter() - began
            return []
        if not refs:
            raise SweepError("no actor left to run the sweep's restarts")
        ready, rest = self.ray.wait(refs, num_returns=1, timeout=1.0)
        if ready and rest:
            more, rest = self.ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        self.waiting = rest  # the ready ones leave self.actors in _handle
        return ready

    def _handle(self, ref) -> None:
        actor = self.actors.pop(ref)
        try:
            reply = self.ray.get(ref)
        except self.ray.exceptions.RayActorError as exc:
            if exc.actor_init_failed:  # the same error would stop every replacement
                raise self._failed(f"a sweep actor could not start: {_last_line(exc)}", exc) from None
            self._lost(actor)
            return
        except self.ray.exceptions.RayTaskError as exc:
            failed = exc.cause if isinstance(exc.cause, RestartFailed) else None
            raise self._failed(str(failed) if failed else f"an actor failed: {_last_line(exc)}", exc) from None
        began = time.perf_counter()
        if not actor.ready:  # its start-up ping
            actor.ready, actor.name = True, f"pid {reply}"
            self.live += 1
            if not self.result.startup_seconds:
                self.result.startup_seconds = self._elapsed()
        else:
            self._absorb(actor, reply)
        self._dispatch(actor)  # the pass runs only while the sweep goes on (see _run)
        self.result.coordinator_seconds += time.perf_counter() - began

    def _stop_reason(self) -> str:
        stop = self.spec.stop
        if stop.policy == "first" and self.verified_count >= 1:
            return "first verified program"
        if stop.policy == "programs" and self.verified_count >= stop.programs:
            return plural(stop.programs, "verified program")
        if not self.pending and len(self.state.outcomes) == self.spec.restarts.total:
            if self.method == "enumerate":  # every shard of the space is done
                found = "no program verified" if not self.state.verified else plural(
                    self.state.verified, "verified program")
                return f"the whole space of {self.result.space:,} distinct programs examined: {found}"
            return "all restarts done"  # every outcome is one of range(total): see _saved_state
        started = self.result.startup_seconds  # the limit counts from the first actor's start-up
        if stop.seconds is not None and started and self._elapsed() - started >= stop.seconds:
            return f"the time limit of {stop.seconds:g} s"
        return ""

    def _failed(self, what: str, exc: Exception) -> SweepError:
        """The error that stops the sweep because ``what`` happened; Ray's ``exc``, with the
        actor's traceback, goes to ``errors.log``."""
        log = self.directory.log_error(f"{what}\n{COLOURS.sub('', str(exc))}")
        return SweepError(f"{what} (traceback in {log}; state is saved: fix it and --resume)")

    # ---- actors

    def _needed_actors(self) -> int:
        return max(1, math.ceil(len(self.pending) / self.spec.restarts.per_actor))

    def _start_actor(self) -> None:
        handle = self.worker_class.remote(self.spec, data_dir=self.data_dir)
        self._track(handle.pid.remote(), _Actor(handle))

    def _lost(self, actor: _Actor) -> None:
        """Re-queue a dead actor's restarts (first in line) and start a replacement."""
        self.result.lost_actors += 1
        self.live -= actor.ready
        self.assigned -= len(actor.restarts)
        lost = actor.restarts - self.state.outcomes.keys()  # not those finished meanwhile
        self.result.rerun += len(lost)
        for restart in sorted(lost, reverse=True):
            self.pending.appendleft(restart)
            self.examining.pop(restart, None)
        if self.result.lost_actors > 10 * self.target_actors:
            raise SweepError(f"{plural(self.result.lost_actors, 'actor')} lost: giving up "
                             "(state is saved; use --resume)")
        self._start_actor()
        while self.idle and self.pending:
            self._dispatch(self.idle.pop())

    def _dispatch(self, actor: _Actor) -> None:
        """Send ``actor`` its next call: new restarts, the newest library, how many periods.

        While more than a round of restarts waits (a slot's worth for every actor), an actor is
        given up to a slot's worth beyond its slots, queued in its :class:`Backlog`: a slot it
        frees mid-call is filled without ending the call (a reply per finished restart, else).
        Near the end nothing is queued, so that no restart waits behind a busy actor's while
        another actor idles."""
        start = []
        if self.pending:
            per_actor = self.spec.restarts.per_actor
            queue = len(self.pending) > per_actor * self.target_actors
            free = per_actor * (1 + queue) - len(actor.restarts)
            version, at = len(self.versions) - 1, self.earlier_seconds + self._elapsed()
            while self.pending and len(start) < free:
                restart = self.pending.popleft()
                start.append(Assignment(restart, self.seeds[restart], version))
                self.state.restart_started(restart, at, actor.name)
                actor.restarts.add(restart)
            self.assigned += len(start)
        elif not actor.restarts:
            self.idle.append(actor)
            return
        library = None
        if actor.library_version < len(self.versions) - 1:
            library = self.versions[-1]
            actor.library_version = len(self.versions) - 1
        call = actor.handle.advance.remote(start=start, library=library, periods=self._periods(),
                                           refill=bool(self.pending))
        self._track(call, actor)

    def _track(self, ref, actor: _Actor) -> None:
        """Wait for ``ref``, ``actor``'s call or ping (the list kept for ``wait`` saves building
        one of every actor's call on each pass)."""
        self.actors[ref] = actor
        self.waiting.append(ref)

    def _periods(self) -> int:
        """Validation periods per call: enough that the actors' replies come at most
        REPORTS_PER_SECOND a second (one with few actors, at most MAX_PERIODS). A restart the
        rule fires on is verified within the call, and a call ends after a period that verified
        a program or (with restarts waiting) freed a slot, so a longer call delays no program;
        only a new library version waits for its end."""
        if not self.period_seconds:
            return 1
        wanted = len(self.actors) / (REPORTS_PER_SECOND * self.period_seconds)
        return max(1, min(MAX_PERIODS, math.ceil(wanted)))

    # ---- results

    def _absorb(self, actor: _Actor, reply: Reply) -> None:
        self.result.train_seconds += reply.train_seconds
        self.result.verify_seconds += reply.verify_seconds
        if reply.periods and reply.train_seconds:
            self.period_seconds = reply.train_seconds / reply.periods
        if self.method != "gradient":
            self.examining.update(reply.steps)
        self.best_accuracy = max(self.best_accuracy, reply.best_accuracy)
        for checked in reply.checked:
            self._checked(actor, checked)
        for restart in reply.spent:
            self._unassign(actor, restart)
            self._finish(restart, "failed")

    def _checked(self, actor: _Actor, c: Checked) -> None:
        self.examining.pop(c.restart, None)
        self.result.examined += c.examined
        if c.verified or c.finished:
            self._unassign(actor, c.restart)
        if c.verified:  # finished once stored: see _commit
            self.unstored.append(_Verified(c, time.time(), self.earlier_seconds + self._elapsed()))
        elif c.finished:
            self._finish(c.restart, "failed")

    def _unassign(self, actor: _Actor, restart: int) -> None:
        if restart in actor.restarts:
            actor.restarts.remove(restart)
            self.assigned -= 1

    def _finish(self, restart: int, outcome: str) -> None:
        if restart in self.state.outcomes:
            return
        self.state.outcomes[restart] = outcome
        self.state.restart_finished(restart, self.earlier_seconds + self._elapsed())
        self.result.restarts_finished += 1
        self.verified_count += outcome == "verified"
        self.changed.add(restart)

    def _save(self, whole: bool = False) -> None:
        """Write the state, with the wall time of this session so far: what changed since the
        last save (:meth:`SweepDirectory.save`), or the ``whole`` of it."""
        began = time.perf_counter()
        self.state.seconds = self.earlier_seconds + self._elapsed()
        self.directory.save(self.state, None if whole else self.changed)
        self.changed = set()
        if self.freezing:
            gc.freeze()
        self.save_seconds = time.perf_counter() - began
        self.saved_at = self.clock()

    def _save_due(self) -> None:
        """Save the finished restarts once SAVE_EVERY has passed since the last save, or longer
        when saving is slow: a save encodes what changed, and now and then rewrites every
        outcome, so saving on each finished restart would take much of the driver's time with
        many actors (see ntpt_ray.sweep.simulation)."""
        if self.changed and self.clock() - self.saved_at >= max(SAVE_EVERY, self.save_seconds / SAVE_SHARE):
            self._save()
            self.result.coordinator_seconds += self.save_seconds

    def storing(self) -> bool:
        """Whether the writer thread is still writing verified programs."""
        return any(not future.done() for future, _ in self.writing)

    def _record(self, v: _Verified) -> ProgramRecord:
        c = v.checked
        return ProgramRecord(
            id=program_id(self.result.sweep, c.restart), sweep=self.result.sweep, restart=c.restart,
            seed=c.seed, library_version=c.library_version, program=c.program,
            verification=c.verification, val_curve=c.val_curve, spec=self.record_spec,
            started_at=now_iso(c.started_at), found_at=now_iso(v.found_at),
            seconds_into_sweep=round(v.seconds_into_sweep, 3), method=self.method)

    def _write(self, batch: list[_Verified]) -> tuple[list[ProgramRecord], list[bool], float]:
        """The writer thread's job: the batch's records (made here, off the driver's loop),
        stored in one :func:`write_batch`."""
        records = [self._record(v) for v in batch]
        programs = [(record, v.checked.nets or None) for record, v in zip(records, batch)]
        stored, seconds = write_batch(self.store, programs, self.source)
        return records, stored, seconds

    def _commit(self, finish: bool = False) -> None:
        """Group commit: finish the restarts of every batch written by now as verified, in order
        (``finish``: wait for all of them), and hand the programs verified since the last batch
        to the writer thread as one batch once it is free (durable together, in two flushes of
        the file system; records, encoding and file system calls off the driver's loop): while
        it writes, the next batch grows. A failed write stops the sweep."""
        if not (self.writing or self.unstored):
            return
        began = time.perf_counter()
        while self.writing and (finish or self.writing[0][0].done()):
            self._written(*self.writing.popleft())
        if self.unstored and (finish or not self.writing):
            batch, self.unstored = self.unstored, []
            self.writing.append((self.writer.submit(self._write, batch), batch))
            if finish:
                self._written(*self.writing.popleft())
        self.result.coordinator_seconds += time.perf_counter() - began

    def _written(self, future, batch: list[_Verified]) -> None:
        records, stored, seconds = future.result()
        self.result.store_seconds += seconds
        for record, v, new in zip(records, batch, stored):
            self._stored(record, v.checked, new)

    def _stored(self, record: ProgramRecord, c: Checked, added: bool) -> None:
        """Program ``record`` is durable in the store (``added``: by this session): finish its
        restart as verified, and share its nets if they are the best yet."""
        if added:
            self.result.programs.append(record.id)
            if self.result.first_verified_seconds is None:
                self.result.first_verified_seconds = self._elapsed()
        if c.nets and self.spec.library.share:
            accuracy = c.verification.get("perceptual_accuracy") or {}
            score = float(np.mean(list(accuracy.values()))) if accuracy else 0.0
            if score > self.library_score:
                self.library_score = score
                library = self.directory.add_library(self.state, c.nets, record.id, score)
                self.versions.append(self._publish(library.version, c.nets))
                self.result.library_versions = len(self.versions)
        self._finish(c.restart, "verified")

    def _publish(self, version: int, nets) -> Any:
        return self.ray.put(LibraryVersion(version, nets))

    def _elapsed(self) -> float:
        return self.clock() - self.began

    def _progress(self, force: bool = False) -> None:
        """Report progress, at most every PROGRESS_EVERY seconds unless ``force``."""
        soon = self.clock() - self.progressed_at < PROGRESS_EVERY
        if self.on_progress is None or (soon and not force):
            return
        self.progressed_at = self.clock()
        elapsed = self._elapsed()
        self.on_progress(SweepProgress(
            done=len(self.state.outcomes), total=self.spec.restarts.total,
            running=self.assigned,
            verified=self.verified_count, best_accuracy=self.best_accuracy,
            restarts_per_minute=60 * self.result.restarts_finished / elapsed if elapsed else 0.0,
            library_version=len(self.versions) - 1,
            actors=self.live,
            lost_actors=self.result.lost_actors, elapsed=elapsed,
            examined=self.result.examined + sum(self.examining.values()), space=self.result.space))


def run_sweep(spec: SweepSpec, *, store: str | Path | None = None, address: str | None = None,
              resume: bool = False, data_dir: str | Path | None = None, actors: int | None = None,
              on_progress: Callable[[SweepProgress], None] | None = None) -> SweepResult:
    """Run (or with ``resume`` continue) a sweep; return what this session did.

    With no ``address`` an embedded local Ray is started (one CPU per core of this machine,
    listening on 127.0.0.1 only); ``address`` joins a running cluster (``"auto"`` or
    ``"host:port"``). Verified programs go to the program store: ``store``, else
    ``$NTPT_STORE``, else the spec's ``[output] store``. The sweep is locked for this driver
    before Ray starts; its saved state is read (and checked) before Ray starts too.
    """
    import ray

    began = time.perf_counter()
    spec = sized_for_method(spec)
    root = default_store(store) if store or os.environ.get("NTPT_STORE") else Path(spec.output.store)
    directory = SweepDirectory(root, spec)
    data = _check_data(spec, data_dir)
    started_ray = not ray.is_initialized()
    if started_ray and address is not None:
        check_address(address)
    with directory.lock():
        state = _saved_state(directory, resume)
        start = resolve_start_library(spec.library.start, root) if state is None else None
        if started_ray:
            connect(address)
        try:
            if state is None:
                state = directory.create(*start)
            cpus = int(ray.cluster_resources().get("CPU", 0))
            gpus = ray.cluster_resources().get("GPU", 0)
            device = cluster_device(spec.train.device, gpus) if spec.search.method == "gradient" else "cpu"
            slots = int(gpus) if device == "cuda" else cpus  # an actor per GPU, else per CPU
            wanted = spec.restarts.actors if actors is None else actors
            count = slots if wanted == "auto" else min(int(wanted), slots)
            if count < 1:
                raise SweepError(f"the Ray cluster has no CPU for an actor ({ray.cluster_resources()})")
            spec = spec.model_copy(update={"train": spec.train.model_copy(update={"device": device})})
            return Coordinator(spec, ProgramStore(root), directory, state, actors=count, data_dir=data,
                               on_progress=on_progress, began=began).run()
        finally:
            if started_ray:
                ray.shutdown()


def sized_for_method(spec: SweepSpec) -> SweepSpec:
    """``spec`` with ``[restarts] total`` set to the shard count when it enumerates the space
    (shards of about ``[search] programs`` programs; see :func:`ntpt_ray.methods.enumerate.shards`)."""
    if spec.search.method != "enumerate":
        return spec
    from ..methods.enumerate import shards

    count, _ = shards(space_size(spec.build_problem()), spec.search.programs, limit("MAX_RESTARTS"))
    return spec.model_copy(update={"restarts": spec.restarts.model_copy(update={"total": count})})


def _saved_state(directory: SweepDirectory, resume: bool) -> SweepState | None:
    """The sweep's saved state to continue (None for a new sweep). ``[restarts] total`` is not
    part of the sweep id: it may change between sessions, but must keep every restart that has
    an outcome (a sweep is done when each restart of ``range(total)`` has one)."""
    if not directory.exists:
        return None
    state = directory.load()
    sweep = directory.spec.sweep_id
    if not resume:
        raise SweepError(f"sweep {sweep} already has results in {directory.path} "
                         f"({plural(len(state.outcomes), 'restart')} done): pass --resume to continue "
                         "it, or change [restarts] seed or [output] store for a new sweep")
    total, last = directory.spec.restarts.total, max(state.outcomes, default=-1)
    if last >= total:
        raise SweepError(f"sweep {sweep} has the outcome of restart {last}, beyond [restarts] total = "
                         f"{total} (restarts 0..{total - 1}): resume with total >= {last + 1}")
    return state


def _last_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _check_data(spec: SweepSpec, data_dir: str | Path | None) -> str | None:
    """The data directory the actors read (perceptual sweeps), checked before Ray starts."""
    if not spec.problem.perceptual:
        return None
    from ..data.paths import data_dir as resolve_data_dir

    spec.build_problem().train_examples(1, np.random.default_rng(0), data_dir=data_dir)
    return str(resolve_data_dir(data_dir))


def connect(address: str | None = None, timeout: float = 10.0) -> None:
    """Start an embedded Ray (no address), listening on 127.0.0.1 only, or join the cluster at
    ``address`` (its own settings), failing fast with a clear error when nothing answers there."""
    import ray

    env = {"env_vars": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}}
    if address is None:
        _start_on_loopback(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                           runtime_env=env)
        return
    check_address(address, timeout)
    try:
        ray.init(address=address, log_to_driver=False, runtime_env=env)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise SweepError(f"--address {address}: cannot join the Ray cluster: {exc} (the cluster and "
                         "this shell must have the same RAY_AUTH_MODE)") from None


def check_address(address: str, timeout: float = 10.0) -> None:
    """Raise :class:`SweepError` unless something answers at ``address`` (``host:port``)."""
    host, sep, port = address.rpartition(":")
    if sep and port.isdigit():
        try:
            socket.create_connection((host, int(port)), timeout=timeout).close()
        except OSError as exc:
            raise SweepError(f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); "
                             "start one with `ray start --head` or clusters/local.sh up") from None


def _start_on_loopback(**options: Any) -> None:
    """``ray.init(**options)`` on a one-node Ray whose every server listens on 127.0.0.1.

    Ray's servers listen on all interfaces unless the node's address is 127.0.0.1, and
    ``ray.init`` replaces 127.0.0.1 with the machine's address unless Ray runs single-node
    (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read once, when Ray is imported): so single-node
    mode is switched on for this call only (a later ``--address`` join needs it off)."""
    import ray
    from ray._private import ray_constants

    cluster = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(_node_ip_address=LOOPBACK, **options)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = cluster
