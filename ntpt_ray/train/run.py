"""Training many restarts on one machine, in vectorised chunks, and saving what they found."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_write
from ..jsonfile import BadFile, read_json
from ..library import LibrarySnapshot
from ..problems import Problem
from ..program import LearnedProgram
from .restarts import RestartBatch, RestartResult, TrainConfig
from .verify import Verifier


@dataclass
class RunSummary:
    """Everything one ``train_restarts`` call found."""

    problem: Problem
    config: TrainConfig
    results: list[RestartResult] = field(default_factory=list)
    train_seconds: float = 0.0
    verify_seconds: float = 0.0
    winner: LearnedProgram | None = None
    winner_library: LibrarySnapshot = field(default_factory=dict)

    @property
    def verified(self) -> int:
        return sum(r.verified for r in self.results)

    @property
    def argmax_verified(self) -> int:
        return sum(bool(r.verification and r.verification.argmax_verified) for r in self.results)


def restart_seeds(seed: int, restarts: int) -> list[int]:
    """Seeds of a run's restarts: distinct across runs with different ``seed``."""
    return [seed * 100_003 + i for i in range(restarts)]


def train_restarts(problem: Problem, *, restarts: int, vectorise: int, config: TrainConfig,
                   seed: int = 0, library: LibrarySnapshot | None = None, data_dir=None,
                   device: str = "cpu", on_step: Callable[[RestartBatch, float, Any], None] | None = None,
                   on_chunk: Callable[[RestartBatch], None] | None = None) -> RunSummary:
    """Train ``restarts`` restarts, ``vectorise`` at a time on ``device``, then decode and
    verify each."""
    if restarts < 1 or vectorise < 1:
        raise ValueError("restarts and vectorise must be >= 1")
    summary = RunSummary(problem, config)
    verifier = Verifier(problem, val_size=config.val_size, test_size=config.test_size,
                        seed=seed, data_dir=data_dir)
    seeds = restart_seeds(seed, restarts)
    best_score: tuple | None = None
    for start in range(0, restarts, vectorise):
        # each restart's batches come from its own seed (as in a sweep), whatever its chunk
        chunk = RestartBatch(problem, seeds[start:start + vectorise], config, library=library,
                             verifier=verifier, data_dir=data_dir, device=device)
        began = time.perf_counter()
        chunk.train(on_step)
        summary.train_seconds += time.perf_counter() - began
        began = time.perf_counter()
        for r, result in enumerate(chunk.verify_all()):
            v = result.verification
            score = (v.val_accuracy, -v.rank)  # among verified ones: nearest its argmax
            if v.verified and (best_score is None or score > best_score):
                best_score = score
                summary.winner = LearnedProgram(problem, v.values, v.confidence)
                summary.winner_library = chunk.library_snapshot(r)
        summary.verify_seconds += time.perf_counter() - began
        summary.results.extend(chunk.results)
        if on_chunk is not None:
            on_chunk(chunk)
    return summary


def jsonable(x: Any) -> Any:
    """``x`` with numpy arrays and scalars turned into plain lists and numbers (for JSON)."""
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    return x


def save_run(summary: RunSummary, out: Path) -> Path:
    """Write ``run.json`` (configuration and every restart's outcome) and, when a restart was
    verified, the winner: ``program.json`` (Param values and confidences), ``program.ntpt``
    (its listing), ``model.py`` (the NTPT source it fixes) and ``library.pt`` (its nets).
    Writes are atomic."""
    out = Path(out)
    record = {
        "task": summary.problem.task.name, "model": summary.problem.model,
        "perceptual": summary.problem.perceptual, "hypers": summary.problem.hypers,
        "config": asdict(summary.config), "restarts": len(summary.results),
        "verified": summary.verified, "argmax_verified": summary.argmax_verified,
        "train_seconds": round(summary.train_seconds, 2),
        "verify_seconds": round(summary.verify_seconds, 2),
        "results": [
            {"seed": r.seed, "verified": r.verified, "val_curve": r.val_curve,
             **({} if r.verification is None else {
                 k: v for k, v in asdict(r.verification).items() if k not in ("confidence",)})}
            for r in summary.results],
    }
    atomic_write(out / "run.json", lambda f: json.dump(jsonable(record), f, indent=1))
    if summary.winner is not None:
        save_program(out, summary.winner, summary.winner_library)
    return out


def save_program(folder: Path, program: LearnedProgram, library: LibrarySnapshot | None, *,
                 write: Callable[..., None] = atomic_write) -> None:
    """Write a program folder, as :func:`load_program` reads it: ``program.json``,
    ``program.ntpt`` (the listing), ``model.py`` (the NTPT source) and, when there are nets,
    ``library.pt``; each file with ``write(path, fill, binary=...)``."""
    source = program.problem.source
    write(folder / "model.py", lambda f: f.write(source))
    write(folder / "program.json", lambda f: f.write(program.to_json()))
    write(folder / "program.ntpt", lambda f: f.write(program.listing()))
    if library:
        write(folder / "library.pt", lambda f: torch.save(library, f), binary=True)


def load_program(path: Path) -> tuple[LearnedProgram, LibrarySnapshot]:
    """A saved program (a run directory or its ``program.json``) and its library, if any."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    file = folder / "program.json" if path.is_dir() else path
    if not file.exists():
        raise FileNotFoundError(f"no verified program at {file}"
                                + ("" if path.exists() else " (no such file or folder)"))
    program = read_program(file)
    library_file = folder / "library.pt"
    library = torch.load(library_file, map_location="cpu") if library_file.exists() else {}
    return program, library


def read_program(file: Path) -> LearnedProgram:
    """A ``program.json`` with the model source saved beside it (``model.py``); :class:`BadFile`
    naming the file when it is not one."""
    data = read_json(file, required=("task", "model", "hypers", "perceptual", "values"))
    source_file = Path(file).parent / "model.py"
    source = source_file.read_text() if source_file.exists() else None
    try:
        return LearnedProgram.from_dict(data, source=source)
    except (AttributeError, TypeError) as exc:  # a field of the wrong kind
        raise BadFile(f"{file}: not a saved program: {exc}") from None
