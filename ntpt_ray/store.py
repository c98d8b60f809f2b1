"""The durable store of verified programs: one folder per program, with its provenance.

``root/programs/<id>/`` holds ``record.json`` (a :class:`ProgramRecord`) and the files of a run
directory (``program.json``, ``program.ntpt``, ``model.py``, ``library.pt`` when the program has
nets), so ``ntpt show``/``ntpt evaluate`` read a stored program as they read a run. A program is
written into a temporary folder and renamed into place: a folder without ``record.json`` never
appears, and of several writers of one id (a restart re-run after a crash, racing processes)
exactly one stores it. :meth:`ProgramStore.add_many` makes a batch durable together (a group
commit: every file written before one flush of the file system, the renames in another).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import MISSING, asdict, dataclass, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import orjson
import torch

from .atomic import sync_filesystem, write_new
from .jsonfile import BadFile, read_json
from .library import LibrarySnapshot
from .program import LearnedProgram
from .train.run import jsonable, read_program, save_program

RECORD = "record.json"


def write_batch(store: ProgramStore, programs: Sequence[tuple[ProgramRecord, LibrarySnapshot | None]],
                source: str | None) -> tuple[list[bool], float]:
    """``store.add_many(programs, source=source)`` and the seconds it took: the work of a sweep
    coordinator's store writer thread."""
    began = time.perf_counter()
    return store.add_many(programs, source=source), time.perf_counter() - began


def default_store(explicit: str | Path | None = None) -> Path:
    """The store's root: ``explicit``, else ``$NTPT_STORE``, else ``runs/store`` (relative to
    the working directory)."""
    if explicit is not None:
        return Path(explicit).expanduser()
    return Path(os.environ.get("NTPT_STORE") or "runs/store").expanduser()


def program_id(sweep: str, restart: int) -> str:
    """The id of the program found by restart ``restart`` of sweep ``sweep``."""
    return f"{sweep}-r{restart:05d}"


def program_hash(program: dict[str, Any]) -> str:
    """First 12 hex digits of the sha256 of a program's model, hypers and Param values
    (a :meth:`LearnedProgram.to_dict`): identical programs share it."""
    key = {k: program[k] for k in ("model", "hypers", "values")}
    text = json.dumps(jsonable(key), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class ProgramRecord:
    """Provenance of one verified program."""

    id: str  # program_id(sweep, restart): one program per restart of a sweep
    sweep: str  # sweep id, e.g. "math-onehot-3fa2c1"
    restart: int  # restart index within the sweep
    seed: int  # the restart's seed
    library_version: int  # version of the sweep's shared library the restart started from
    program: dict  # LearnedProgram.to_dict()
    verification: dict  # test_accuracy, perceptual_accuracy ({check set: acc}), val_accuracy, rank, ...
    val_curve: list  # [(examples seen, relaxed validation accuracy), ...]
    spec: dict  # the sweep spec as a plain dict
    started_at: str  # ISO-8601 UTC timestamps
    found_at: str
    seconds_into_sweep: float
    program_hash: str = ""  # program_hash(program); computed by the store if empty
    method: str = "gradient"  # the search method that found it: gradient, random, enumerate, smt

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProgramRecord:
        """Inverse of :meth:`to_dict` after a JSON round trip (tuple points)."""
        return cls(**{**data, "val_curve": [tuple(point) for point in data["val_curve"]]})


REQUIRED = tuple(f.name for f in fields(ProgramRecord) if f.default is MISSING)


@dataclass
class StoredProgram:
    """A program in the store: its record, its folder, and (loaded on first use) the program
    and its library snapshot (``{}`` when it has no nets)."""

    record: ProgramRecord
    path: Path

    @cached_property
    def program(self) -> LearnedProgram:
        return read_program(self.path / "program.json")

    @cached_property
    def library(self) -> LibrarySnapshot:
        file = self.path / "library.pt"
        return torch.load(file, map_location="cpu") if file.exists() else {}


def copy_program(folder: Path, dest: Path, name: str) -> Path:
    """Copy a program folder (stored, or a run directory) to ``dest``, or into it as
    ``dest/name`` if it is a folder already; the copy's path."""
    dest = Path(dest)
    target = dest / name if dest.is_dir() else dest
    shutil.copytree(folder, target)
    return target


class UnknownProgram(KeyError):
    """No program, or more than one, matches an id or prefix."""

    def __str__(self) -> str:  # KeyError quotes its message
        return str(self.args[0])


class ProgramStore:
    """Verified programs under ``root/programs/<id>/`` (created on the first :meth:`add`)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.programs = self.root / "programs"

    def path(self, id: str) -> Path:
        """The folder of program ``id`` (whether or not it is stored)."""
        return self.programs / id

    def add(self, record: ProgramRecord, library: LibrarySnapshot | None = None, *,
            source: str | None = None) -> bool:
        """Store a program atomically, with its model ``source`` (default: the shipped model the
        record names); ``False`` (and nothing written) when its id is already there, complete or not."""
        return self.add_many([(record, library)], source=source)[0]

    def add_many(self, programs: Sequence[tuple[ProgramRecord, LibrarySnapshot | None]], *,
                 source: str | None = None) -> list[bool]:
        """:meth:`add` each ``(record, library)``, durable together when this returns: every
        program is written before one flush of the file system (:func:`~.atomic.sync_filesystem`),
        the renames made durable by a second.
        Whether each was stored (``False``: its id was there already, or earlier in the batch)."""
        for record, _ in programs:
            if not record.id or record.id.startswith(".") or Path(record.id).name != record.id:
                raise ValueError(f"a program id is a plain folder name, got {record.id!r}")
        self.programs.mkdir(parents=True, exist_ok=True)
        stored = [False] * len(programs)
        staged: list[tuple[int, Path]] = []  # (index in programs, its temporary folder)
        written: list[Path] = []  # every file, then every temporary folder: made durable together
        try:
            for i, (record, library) in enumerate(programs):
                if self.path(record.id).exists():
                    continue
                tmp = self.root / f".tmp-{secrets.token_hex(8)}"  # private until renamed: plain writes
                tmp.mkdir()
                staged.append((i, tmp))
                self._write(tmp, record, library, source, written)
            sync_filesystem(self.root, [*written, *(tmp for _, tmp in staged)])
            for i, tmp in staged:
                target = self.path(programs[i][0].id)
                try:
                    os.rename(tmp, target)  # fails onto an existing non-empty folder
                    stored[i] = True
                except OSError:
                    if not target.exists():
                        raise
        finally:
            for _, tmp in staged:
                shutil.rmtree(tmp, ignore_errors=True)  # gone already when renamed
        if any(stored):
            sync_filesystem(self.root, [self.programs])
        return stored

    @staticmethod
    def _write(folder: Path, record: ProgramRecord, library: LibrarySnapshot | None,
               source: str | None, written: list[Path]) -> None:
        """Write a program's files into ``folder`` unsynced, appending their paths to ``written``."""
        def write(path: Path, fill: Callable[[Any], None], binary: bool = False) -> None:
            write_new(path, fill, binary)
            written.append(path)

        if not record.program_hash:
            record = replace(record, program_hash=program_hash(record.program))
        save_program(folder, LearnedProgram.from_dict(record.program, source=source), library, write=write)
        data = {f.name: getattr(record, f.name) for f in fields(record)}  # to_dict's deep copy, skipped
        options = orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
        text = orjson.dumps(data, option=options)
        write(folder / RECORD, lambda f: f.write(text), binary=True)

    def get(self, id_or_prefix: str) -> StoredProgram:
        """The program with this id, else the only one whose id starts with it."""
        ids = self._ids()
        if id_or_prefix not in ids:
            matches = [i for i in ids if i.startswith(id_or_prefix)]
            if not matches:
                count = f"{len(ids)} program{'' if len(ids) == 1 else 's'}"
                raise UnknownProgram(f"no program '{id_or_prefix}' in store {self.root} "
                                     f"({count}; `ntpt programs list`)")
            if len(matches) > 1:
                shown = ", ".join(matches[:10]) + (", ..." if len(matches) > 10 else "")
                raise UnknownProgram(f"'{id_or_prefix}' matches {len(matches)} programs: {shown}")
            id_or_prefix = matches[0]
        return StoredProgram(self._record(id_or_prefix), self.path(id_or_prefix))

    def list(self, sweep: str | None = None,
             on_skip: Callable[[BadFile], None] | None = None) -> list[ProgramRecord]:
        """Records of the stored programs (of one sweep, if given), oldest found first. A record
        that cannot be read is left out (and left alone), its error passed to ``on_skip``."""
        records = []
        for i in self._ids():
            try:
                records.append(self._record(i))
            except BadFile as exc:
                if on_skip is not None:
                    on_skip(exc)
        if sweep is not None:
            records = [r for r in records if r.sweep == sweep]
        return sorted(records, key=lambda r: (r.found_at, r.id))

    def export(self, id_or_prefix: str, dest: Path) -> Path:
        """Copy a program's folder to ``dest`` (into it, as ``dest/<id>``, if it is a folder
        already) and return the copy's path."""
        stored = self.get(id_or_prefix)
        return copy_program(stored.path, dest, stored.record.id)

    def __contains__(self, id: object) -> bool:
        return isinstance(id, str) and (self.path(id) / RECORD).is_file()

    def __len__(self) -> int:
        return len(self._ids())

    def _ids(self) -> list[str]:
        """Ids of the complete programs (temporary and half-written folders are skipped)."""
        if not self.programs.is_dir():
            return []
        try:
            entries = list(self.programs.iterdir())
        except OSError as exc:
            raise BadFile(f"{self.programs}: cannot read it: {exc.strerror or exc}") from None
        return sorted(p.name for p in entries if not p.name.startswith(".") and (p / RECORD).is_file())

    def _record(self, id: str) -> ProgramRecord:
        """The record of program ``id``; :class:`BadFile` naming ``record.json`` if it is unreadable."""
        file = self.path(id) / RECORD
        data = read_json(file, required=REQUIRED)
        try:
            return ProgramRecord.from_dict(data)
        except (TypeError, ValueError) as exc:  # a field of the wrong kind
            raise BadFile(f"{file}: not a program record: {exc}") from None

