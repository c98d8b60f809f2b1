"""The durable state of one sweep, kept beside the program store so ``--resume`` can continue.

``<store>/sweeps/<sweep id>/`` holds ``state.json`` (the spec, every finished restart's
outcome, when each restart started and finished and on which actor, the library versions, the
time spent so far) and ``state.journal`` (what changed since ``state.json`` was written: a JSON
line per save, the restarts finished since the one before), ``library-v<k>.pt`` for
each library version, ``driver.lock`` (held by the driver running the sweep, naming its pid and
host) and, after an actor's error, ``errors.log`` (its traceback). ``state.json`` is rewritten
whole, atomically, when a session starts and ends, when a library version is added and once the
journal has outgrown it and ``SweepDirectory.journal_floor`` (so a save costs what changed, not
the whole sweep); each journal line is fsynced, and one that a crash cut short is ignored, so a
crash of any process leaves the last complete save (a running sweep's saves are written in order
on a thread of their own: :meth:`SweepDirectory.background_journal`). Restarts that were training when the sweep died are not in it: they run again.
Read the state with :func:`read_state` (or :meth:`SweepDirectory.load`), not ``state.json`` alone.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import torch

from ..atomic import atomic_write
from ..jsonfile import BadFile, read_json
from ..library import LibrarySnapshot
from .spec import SweepSpec

STATE = "state.json"
JOURNAL = "state.journal"
STATE_FIELDS = ("sweep", "spec", "outcomes", "libraries", "seconds", "sessions")
OUTCOMES = ("verified", "failed")  # of a finished restart
LOCK = "driver.lock"
ERRORS = "errors.log"


class SweepError(RuntimeError):
    """A sweep that cannot start or go on (its verified programs are stored all the same)."""


@dataclass
class LibraryRecord:
    """One version of a sweep's shared library: where it came from and how good it was."""

    version: int
    source: str  # "start: <path>", "fresh" or the id of the verified program it came from
    score: float  # mean test accuracy of that program with these nets (0 for version 0)
    file: str  # library-v<k>.pt beside state.json ("" when there are no nets)


@dataclass(slots=True)
class RestartTime:
    """When a restart ran (seconds into the sweep, over all its sessions) and where."""

    started: float  # when it was assigned to its actor (one queued there starts a little later)
    finished: float | None  # None while it runs (or if its session died: it runs again)
    actor: str  # "pid <n>" of the actor that ran it
    session: int  # 1 for the sweep's first session


@dataclass
class SweepState:
    """What a sweep has finished; written after every finished restart."""

    sweep: str
    spec: dict[str, Any]
    outcomes: dict[int, str] = field(default_factory=dict)  # restart -> "verified" | "failed"
    libraries: list[LibraryRecord] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the sweep's sessions, the running one so far included
    sessions: int = 0  # sessions started, the running one included
    times: dict[int, RestartTime] = field(default_factory=dict)  # restart -> its latest run
    generation: int = 0  # of the last state.json written: journal lines of another one are stale

    @property
    def verified(self) -> int:
        return sum(outcome == "verified" for outcome in self.outcomes.values())

    def restart_started(self, restart: int, at: float, actor: str) -> None:
        """Restart ``restart`` started ``at`` seconds into the sweep on ``actor`` (a re-run
        after its actor was lost replaces the earlier start)."""
        self.times[restart] = RestartTime(round(at, 3), None, actor, self.sessions)

    def restart_finished(self, restart: int, at: float) -> None:
        if restart in self.times:
            self.times[restart].finished = round(at, 3)


class SweepDirectory:
    """The folder of one sweep inside a store."""

    journal_floor = 1 << 20  # bytes: the journal is folded into state.json only beyond this size

    def __init__(self, store: Path, spec: SweepSpec):
        self.spec = spec
        self.path = Path(store) / "sweeps" / spec.sweep_id
        self.snapshot_bytes = self.journal_bytes = 0  # of state.json and state.journal, as last written
        self.appender: ThreadPoolExecutor | None = None  # see background_journal
        self.appending: deque[Future] = deque()  # its writes not yet seen done, oldest first

    @property
    def exists(self) -> bool:
        return (self.path / STATE).exists()

    def create(self, start_library: LibrarySnapshot, source: str) -> SweepState:
        """A new state, with library version 0 (the sweep's starting library)."""
        state = SweepState(self.spec.sweep_id, self.spec.model_dump())
        self.add_library(state, start_library, source, 0.0)
        return state

    def load(self) -> SweepState:
        """The saved state (:func:`read_state`); :class:`BadFile` (one line naming the file) if
        it is not one."""
        file = self.path / STATE
        data = read_state(self.path)
        self.snapshot_bytes = file.stat().st_size
        journal = self.path / JOURNAL
        self.journal_bytes = journal.stat().st_size if journal.exists() else 0
        try:
            outcomes = {int(k): v for k, v in data["outcomes"].items()}
            if not set(outcomes.values()) <= set(OUTCOMES):
                raise ValueError(f"an outcome other than 'verified' or 'failed' in {sorted(set(outcomes.values()))}")
            times = {int(k): RestartTime(**v) for k, v in data.get("times", {}).items()}  # older: none
            return SweepState(data["sweep"], dict(data["spec"]), outcomes,
                              [LibraryRecord(**lib) for lib in data["libraries"]],
                              float(data["seconds"]), int(data["sessions"]), times,
                              int(data.get("generation", 0)))
        except (AttributeError, TypeError, ValueError) as exc:
            raise BadFile(f"{file}: not a sweep state: {exc}") from None

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the sweep for this driver until the block ends: an exclusive ``flock`` on
        ``driver.lock``, which names this driver's pid and host. The kernel drops the lock of a
        driver that dies, so a dead driver's lock is simply taken over; a live one's raises
        :class:`SweepError` naming it. (The file stays: removing it would let two drivers lock
        two files of the same name.)"""
        self.path.mkdir(parents=True, exist_ok=True)
        file = self.path / LOCK
        with open(file, "a+", encoding="utf-8") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "another driver"
                raise SweepError(f"sweep {self.spec.sweep_id} is running already: {holder} holds "
                                 f"{file}; wait for it to end, or stop it and --resume") from None
            f.truncate(0)
            f.write(f"driver pid {os.getpid()} on {socket.gethostname()}\n")
            f.flush()
            try:
                yield
            finally:
                f.truncate(0)

    def log_error(self, text: str) -> Path:
        """Append ``text`` (a traceback), timestamped, to ``errors.log``; return its path."""
        file = self.path / ERRORS
        with open(file, "a", encoding="utf-8") as f:
            f.write(f"---- {now_iso()}\n{text.rstrip()}\n")
        return file

    def save(self, state: SweepState, changed: Collection[int] | None = None) -> None:
        """Write ``state``. With ``changed`` (the restarts finished since the last save:
        nothing else may have changed but the time spent and restarts started), append their
        outcomes and times to the journal as one line, fsynced; without it, or once the journal
        has outgrown ``state.json`` (and ``journal_floor``), rewrite ``state.json`` whole as a
        new generation (running restarts' start times too) and empty the journal."""
        if changed is None or self.journal_bytes > max(self.snapshot_bytes, self.journal_floor):
            state.generation += 1
            # orjson encodes the dataclasses directly: several times faster than asdict + json
            # with thousands of outcomes (see ntpt_ray.sweep.simulation)
            text = orjson.dumps(state, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
            self.snapshot_bytes, self.journal_bytes = len(text), 0
            self._write(_rewrite, self.path, text)
            return
        line = orjson.dumps({"generation": state.generation, "seconds": state.seconds,
                             "outcomes": {r: state.outcomes[r] for r in changed if r in state.outcomes},
                             "times": {r: state.times[r] for r in changed if r in state.times}},
                            option=orjson.OPT_NON_STR_KEYS) + b"\n"
        self.journal_bytes += len(line)
        self._write(_append, self.path / JOURNAL, line)

    def _write(self, job: Callable[[Path, bytes], None], path: Path, data: bytes) -> None:
        """``job(path, data)`` now, or in order on the background thread (see background_journal)."""
        if self.appender is None:
            job(path, data)
            return
        self._appended(wait=False)
        self.appending.append(self.appender.submit(job, path, data))

    @contextmanager
    def background_journal(self) -> Iterator[None]:
        """While the block runs, :meth:`save` writes on a thread of its own, in order (journal
        lines and rewrites of ``state.json``), and returns once the state is encoded: the caller
        goes on while it is written and fsynced (a sweep's driver, see
        :mod:`ntpt_ray.sweep.coordinator`). Everything saved is durable when the block ends; a
        write's error is raised by the next save, or at the block's end."""
        self.appender = ThreadPoolExecutor(1, thread_name_prefix="ntpt-journal")
        try:
            yield
        finally:
            appender, self.appender = self.appender, None
            appender.shutdown(wait=True)
            self._appended(wait=True)

    def _appended(self, wait: bool) -> None:
        """Forget the background writes that are done (``wait``: all of them, once done),
        raising the first one's error."""
        while self.appending and (wait or self.appending[0].done()):
            self.appending.popleft().result()

    def add_library(self, state: SweepState, nets: LibrarySnapshot, source: str,
                    score: float) -> LibraryRecord:
        """Store ``nets`` as the next library version and record it in ``state``."""
        version = len(state.libraries)
        file = f"library-v{version}.pt" if nets else ""
        if nets:
            atomic_write(self.path / file, lambda f: torch.save(nets, f), binary=True)
        record = LibraryRecord(version, source, score, file)
        state.libraries.append(record)
        self.save(state)
        return record

    def library(self, record: LibraryRecord) -> LibrarySnapshot:
        return torch.load(self.path / record.file, map_location="cpu") if record.file else {}


def _rewrite(folder: Path, text: bytes) -> None:
    """Replace ``state.json`` in ``folder`` with ``text`` (atomically) and empty the journal."""
    atomic_write(folder / STATE, lambda f: f.write(text), binary=True)
    journal = folder / JOURNAL
    if journal.exists():  # its lines are of the last generation: stale even if this is lost
        os.truncate(journal, 0)


def _append(journal: Path, line: bytes) -> None:
    """Append ``line`` to ``journal``, fsynced."""
    with open(journal, "ab") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_state(folder: Path, required: tuple[str, ...] = STATE_FIELDS) -> dict[str, Any]:
    """A sweep folder's saved state as JSON data: ``state.json`` with the lines of
    ``state.journal`` of its generation replayed over it, in order; a last line without its
    newline (a crash cut it short) is left out. :class:`BadFile` (one line naming the file, and
    the line of the journal) if either is not one."""
    data = read_json(folder / STATE, required=required)
    journal = folder / JOURNAL
    if not journal.exists():
        return data
    generation = data.get("generation", 0)
    for number, line in enumerate(journal.read_bytes().split(b"\n")[:-1], 1):
        try:
            change = orjson.loads(line)
            if not set(change["outcomes"].values()) <= set(OUTCOMES):
                raise ValueError(f"an outcome other than 'verified' or 'failed' in {change['outcomes']}")
            if change["generation"] == generation:
                data["outcomes"].update(change["outcomes"])
                data.setdefault("times", {}).update(change["times"])
                data["seconds"] = change["seconds"]
        except (AttributeError, KeyError, TypeError, ValueError) as exc:  # JSONDecodeError is a ValueError
            raise BadFile(f"{journal}:{number}: not a sweep state journal line: {exc}") from None
    return data


def resolve_start_library(start: str | None, store: Path) -> tuple[LibrarySnapshot, str]:
    """The nets a sweep starts from, and a description of where they came from.

    ``start`` is a ``library.pt`` file, a run directory or stored program folder holding one,
    or ``sweep:NAME``: the latest library version of the most recent sweep called NAME in the
    same store.
    """
    if start is None:
        return {}, "fresh"
    if start.startswith("sweep:"):
        name = start.removeprefix("sweep:")
        candidates = sorted((store / "sweeps").glob(f"{name}-*/{STATE}"),
                            key=lambda p: p.stat().st_mtime)
        for state_file in reversed(candidates):
            data = read_json(state_file, required=("spec", "libraries"))
            try:
                if data["spec"]["name"] != name:
                    continue
                latest = LibraryRecord(**data["libraries"][-1])
            except (IndexError, KeyError, TypeError) as exc:
                raise BadFile(f"{state_file}: not a sweep state: {exc!r}") from None
            if latest.file:
                nets = torch.load(state_file.parent / latest.file, map_location="cpu")
                return nets, f"start: {start} v{latest.version}"
        raise FileNotFoundError(f"[library] start: no sweep named '{name}' with a library in "
                                f"{store / 'sweeps'}; run that sweep first")
    path = Path(start)
    file = path / "library.pt" if path.is_dir() else path
    if not file.exists():
        raise FileNotFoundError(f"[library] start: no library at {file}")
    return torch.load(file, map_location="cpu"), f"start: {start}"


def now_iso(t: float | None = None) -> str:
    """``t`` (default now) as an ISO-8601 UTC timestamp."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if t is None else t))
