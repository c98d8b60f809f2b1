"""The lifelong experiment on Ray: every model's lifetimes as Ray tasks, results on disk.

A *unit* is one Ray task: up to ``[lifetimes] per_task`` lifetimes of one model vectorised
into one tensor computation. The driver writes each finished lifetime atomically to
``DIR/lifetimes/MODEL/NNN.json`` (NTPT's final nets to ``DIR/libraries/ntpt/NNN.pt``, a library a
sweep can start from); ``resume`` skips those already there, and Ray reruns a unit
whose worker dies (``max_retries``). Workers report progress to a small actor the driver
polls for the live display. At the end the driver aggregates ``DIR/results.json`` and draws
the figures. ``tune`` first runs the learning-rate grid of ``[tune]`` on the validation pools
(``DIR/tuning.json``) and the lifetimes then use the chosen rates.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..jsonfile import read_json
from ..parts import QuietDisplay, add_wall_time, reporter, run_parts
from .spec import MODELS, LifelongSpec

RETRIES = 3  # reruns of a unit whose worker died


class LifelongError(RuntimeError):
    """The experiment cannot go on; the message says why."""


def _write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda f: json.dump(data, f, indent=1))


def lifetime_path(out: Path, model: str, lifetime: int) -> Path:
    return out / "lifetimes" / model / f"{lifetime:03d}.json"


def library_path(out: Path, lifetime: int) -> Path:
    """An NTPT lifetime's final nets: a ``library.pt`` that ``[library] start`` of a sweep accepts."""
    return out / "libraries" / "ntpt" / f"{lifetime:03d}.pt"


def save_lifetime(out: Path, record: dict) -> None:
    """Write one finished lifetime: its nets (NTPT) first, then its record, the mark of a done lifetime."""
    library = record.pop("library", None)
    if library is not None:
        import torch

        atomic_write(library_path(out, record["lifetime"]), lambda f: torch.save(library, f), binary=True)
    _write_json(lifetime_path(out, record["model"], record["lifetime"]), record)


SPEC_FILE = "spec.json"
UNCHECKED = {("name",), ("description",), ("lifetimes", "count")}  # may change between resumes


def check_resume(spec: LifelongSpec, out: Path, resume: bool) -> None:
    """Refuse to add lifetimes to ``out`` under settings other than those its lifetimes ran with
    (``DIR/spec.json``); a fresh run records them."""
    path = out / SPEC_FILE
    current = spec.protocol()
    if not (resume and path.is_file()):
        _write_json(path, current)
        return
    before = read_json(path)
    changed = [".".join(key) for key in sorted(_leaves(before) | _leaves(current))
               if key not in UNCHECKED and _get(before, key) != _get(current, key)]
    if changed:
        raise LifelongError(f"{out} holds lifetimes run with other settings ({', '.join(changed)} differ "
                            f"from {path}): use another --out, or the settings in {path}")


def _leaves(tree: dict, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    return {k for key, value in tree.items()
            for k in (_leaves(value, (*prefix, key)) if isinstance(value, dict) else {(*prefix, key)})}


def _get(tree: dict, key: tuple[str, ...]) -> Any:
    for part in key:
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def units_to_run(spec: LifelongSpec, out: Path, models: Sequence[str], resume: bool) -> list[tuple[str, list[int]]]:
    """``(model, lifetimes)`` per unit still to run; with ``resume``, finished lifetimes are skipped."""
    units = []
    for model in models:
        missing = [i for i in range(spec.lifetimes.count)
                   if not (resume and lifetime_path(out, model, i).is_file())]
        size = spec.lifetimes.per_task
        units += [(model, missing[j:j + size]) for j in range(0, len(missing), size)]
    return units


def _unit(spec: LifelongSpec, model: str, lifetimes: list[int], lr: float | None, per_task: int | None,
          split: str, data_dir: str | None, board, key: str) -> list[dict]:
    """One unit of lifetimes in a Ray worker."""
    from .lifetime import run_lifetimes

    pid_file = os.environ.get("NTPT_LIFELONG_PID_DIR")
    if pid_file:  # lets tests find (and kill) the worker of a unit
        Path(pid_file, key).write_text(str(os.getpid()))
    return run_lifetimes(spec, model, lifetimes, lr=lr, per_task=per_task, split=split,
                         data_dir=data_dir, progress=reporter(board, key))


def _run_units(jobs: list[tuple[str, dict]], on_done, display) -> None:
    """Submit ``(key, kwargs)`` units, call ``on_done(key, records)`` as each finishes."""
    import ray

    unit = ray.remote(num_cpus=1, max_retries=RETRIES)(_unit)
    kwargs = dict(jobs)

    def finished(key: str, records: list[dict]) -> list[str]:
        on_done(key, records)
        return []

    run_parts(list(kwargs), lambda key, board: unit.remote(board=board, key=key, **kwargs[key]),
              finished, display, shown=list(kwargs),
              error=lambda key, why: LifelongError(f"unit {key} failed after {RETRIES} reruns: {why}"))


def tune(spec: LifelongSpec, out: Path, models: Sequence[str], *, data_dir: str | None, resume: bool,
         display) -> dict[str, float]:
    """The learning-rate grid on the validation pools; returns the chosen rate per model."""
    path = out / "tuning.json"
    table: dict[str, dict[str, float]] = read_json(path)["scores"] if resume and path.is_file() else {}
    jobs = []
    for model in models:
        grid = spec.tune.ntpt_lr if model == "ntpt" else spec.tune.baseline_lr
        for lr in grid:
            if f"{lr:g}" not in table.get(model, {}):
                jobs.append((f"tune:{model}:{lr:g}", dict(
                    spec=spec, model=model, lifetimes=list(range(spec.tune.lifetimes)), lr=lr,
                    per_task=spec.tune.per_task, split="val", data_dir=data_dir)))

    def done(key: str, records: list[dict]) -> None:
        for record in records:
            record.pop("library", None)
        _, model, lr = key.split(":")
        scores = [v for r in records for v in r["final"].values() if v is not None]
        table.setdefault(model, {})[lr] = sum(scores) / len(scores)
        _write_json(path, {"scores": table, "chosen": _choose(table), "per_task": spec.tune.per_task})

    _run_units(jobs, done, display)
    return {model: float(lr) for model, lr in _choose(table).items() if model in models}


def _choose(table: dict[str, dict[str, float]]) -> dict[str, str]:
    return {model: max(scores, key=scores.get) for model, scores in table.items() if scores}


def run_experiment(spec: LifelongSpec, out: Path, *, models: Sequence[str] = MODELS, resume: bool = False,
                   tune_first: bool = False, address: str | None = None, data_dir: str | None = None,
                   display=None) -> dict:
    """Run every lifetime still to run (on an embedded Ray, or the cluster at ``address``) and
    write ``DIR/results.json`` and the figures."""
    import ray

    from ..sweep.coordinator import connect

    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise LifelongError(f"unknown models {unknown}; allowed: {', '.join(MODELS)}")
    out.mkdir(parents=True, exist_ok=True)
    if not resume and (out / "lifetimes").exists():
        raise LifelongError(f"{out} already has lifetimes: pass --resume to go on, or another --out")
    check_resume(spec, out, resume)
    started_ray = not ray.is_initialized()
    if started_ray:
        connect(address)
    try:
        return _run(spec, out, models, resume, tune_first, data_dir, display or QuietDisplay)
    finally:
        if started_ray:
            ray.shutdown()


def _run(spec, out, models, resume, tune_first, data_dir, display) -> dict:
    from .figures import draw_all
    from .results import aggregate

    start = time.perf_counter()
    chosen = tune(spec, out, models, data_dir=data_dir, resume=resume, display=display) if tune_first else {}
    jobs = [(f"{model}:{','.join(map(str, lifetimes))}",
             dict(spec=spec, model=model, lifetimes=lifetimes, lr=chosen.get(model), per_task=None,
                  split="test", data_dir=data_dir))
            for model, lifetimes in units_to_run(spec, out, models, resume)]

    def done(key: str, records: list[dict]) -> None:
        for record in records:
            save_lifetime(out, record)

    _run_units(jobs, done, display)
    records = {model: [read_json(path) for path in sorted((out / "lifetimes" / model).glob("*.json"))]
               for model in MODELS}  # every model with lifetimes in DIR, run now or before
    wall_s = add_wall_time(out, time.perf_counter() - start)
    results = aggregate(spec, records, wall_s=wall_s,
                        tuning=read_json(out / "tuning.json") if (out / "tuning.json").is_file() else None)
    _write_json(out / "results.json", results)
    draw_all(results, out)
    return results
