"""The durable state of one sweep, kept beside the program store so ``--resume`` can continue.

``<store>/sweeps/<sweep id>/`` holds ``state.json`` (the spec, every finished restart's
outcome, the library versions, the time already spent) and ``library-v<k>.pt`` for each
library version. Every change is an atomic rewrite, so a crash of any process leaves the last
complete state. Restarts that were training when the sweep died are not in it: they run again.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write
from ..library import LibrarySnapshot
from .spec import SweepSpec

STATE = "state.json"


@dataclass
class LibraryRecord:
    """One version of a sweep's shared library: where it came from and how good it was."""

    version: int
    source: str  # "start: <path>", "fresh" or the id of the verified program it came from
    score: float  # mean test accuracy of that program with these nets (0 for version 0)
    file: str  # library-v<k>.pt beside state.json ("" when there are no nets)


@dataclass
class SweepState:
    """What a sweep has finished; written after every finished restart."""

    sweep: str
    spec: dict[str, Any]
    outcomes: dict[int, str] = field(default_factory=dict)  # restart -> "verified" | "failed"
    libraries: list[LibraryRecord] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the sweep's earlier sessions
    sessions: int = 0

    @property
    def verified(self) -> int:
        return sum(outcome == "verified" for outcome in self.outcomes.values())


class SweepDirectory:
    """The folder of one sweep inside a store."""

    def __init__(self, store: Path, spec: SweepSpec):
        self.spec = spec
        self.path = Path(store) / "sweeps" / spec.sweep_id

    @property
    def exists(self) -> bool:
        return (self.path / STATE).exists()

    def create(self, start_library: LibrarySnapshot, source: str) -> SweepState:
        """A new state, with library version 0 (the sweep's starting library)."""
        state = SweepState(self.spec.sweep_id, self.spec.model_dump())
        self.add_library(state, start_library, source, 0.0)
        return state

    def load(self) -> SweepState:
        data = json.loads((self.path / STATE).read_text())
        return SweepState(data["sweep"], data["spec"],
                          {int(k): v for k, v in data["outcomes"].items()},
                          [LibraryRecord(**lib) for lib in data["libraries"]],
                          data["seconds"], data["sessions"])

    def save(self, state: SweepState) -> None:
        atomic_write(self.path / STATE, lambda f: json.dump(asdict(state), f, indent=1))

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
        return torch.load(self.path / record.file) if record.file else {}


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
            data = json.loads(state_file.read_text())
            if data["spec"]["name"] != name:
                continue
            latest = LibraryRecord(**data["libraries"][-1])
            if latest.file:
                return torch.load(state_file.parent / latest.file), f"start: {start} v{latest.version}"
        raise FileNotFoundError(f"[library] start: no sweep named '{name}' with a library in "
                                f"{store / 'sweeps'}; run that sweep first")
    path = Path(start)
    file = path / "library.pt" if path.is_dir() else path
    if not file.exists():
        raise FileNotFoundError(f"[library] start: no library at {file}")
    return torch.load(file), f"start: {start}"


def now_iso(t: float | None = None) -> str:
    """``t`` (default now) as an ISO-8601 UTC timestamp."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if t is None else t))
