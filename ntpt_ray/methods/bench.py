"""``ntpt bench-search``: every search method on every symbolic benchmark task, as real sweeps.

Each (task, method, seed) is one sweep on a shared embedded Ray that stops at its first
verified program or at the time budget; the figures are its time to that program (from the
sweep's start, Ray actor start-up included, and without it) and the programs it examined
(discrete methods) or restarts it finished (gradient).
"""

from __future__ import annotations

import math
import statistics
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..sweep.spec import SweepSpec, parse_spec, read_toml
from .base import METHODS

BUILTIN = ["math", *(f"{t}:{d}" for t in ("add2x2", "apply2x2") for d in ("top", "left", "bottom", "right"))]
TERPRET = [("test1", "test1", ["difficulty2"]), ("circuit", "circuit_swap", None),
           ("turing", "turing_invert", None), ("turing", "turing_prepend", None),
           ("turing", "turing_decrement", None), ("basic_block", "basic_block_access", None)]
"""TerpreT's model/data pairs (test1 is checked on difficulty2: its test1 batch contradicts train)."""


@dataclass
class BenchRun:
    task: str
    method: str
    seed: int
    first_verified_seconds: float | None  # from the sweep's start, actor start-up included
    search_seconds: float | None  # the same, less the start-up
    examined: int  # programs examined (discrete methods)
    restarts: int  # restarts finished
    seconds: float
    stopped_by: str


def task_specs(search: Path, terpret: Path | None) -> dict[str, dict[str, Any]]:
    """Sweep spec tables (no seed, method or stop yet) of every benchmark task."""
    base = read_toml(search / "math_onehot.toml")
    base.pop("tune", None)
    specs = {name: {**base, "name": f"bench-{name.replace(':', '-')}",
                    "problem": {"task": name, "perceptual": False}} for name in BUILTIN}
    if terpret is not None:
        block = read_toml(search / "terpret_basic_block.toml")
        for model, data, checks in TERPRET:
            problem = {"model": str(terpret / "models" / f"{model}.py"),
                       "data": str(terpret / "data" / f"{data}_data.json"),
                       "hypers": str(terpret / "data" / f"{data}_hypers.json")}
            if checks:
                problem["check_batches"] = checks
            specs[data] = {**block, "name": f"bench-{data}", "problem": problem}
    return specs


def bench_spec(table: dict[str, Any], method: str, seed: int, budget: float, store: Path) -> SweepSpec:
    """One benchmark sweep: ``method`` from restart seed ``seed``, stopped at the first verified
    program or after ``budget`` seconds."""
    gradient = method == "gradient"
    restarts = {**table.get("restarts", {}), "seed": seed, "total": 10_000 if not gradient else 64,
                "per_actor": table.get("restarts", {}).get("per_actor", 16) if gradient else 1}
    data = {**table, "restarts": restarts, "search": {"method": method},
            "stop": {"policy": "first", "seconds": budget}, "output": {"store": str(store)}}
    return parse_spec(data, source=f"bench {table['name']} {method}")


def run_bench(specs: dict[str, dict[str, Any]], methods: Iterable[str], seeds: Iterable[int], budget: float,
              actors: int, progress: Callable[[BenchRun], None] | None = None) -> list[BenchRun]:
    """Run every (task, method, seed) sweep on the initialised Ray; their results in order."""
    from ..sweep.coordinator import run_sweep

    runs = []
    with tempfile.TemporaryDirectory(prefix="ntpt-bench-search-") as store:
        for task, table in specs.items():
            for method in methods:
                for seed in seeds:
                    spec = bench_spec(table, method, seed, budget, Path(store))
                    result = run_sweep(spec, store=store, actors=actors)
                    first = result.first_verified_seconds
                    run = BenchRun(task, method, seed, first,
                                   None if first is None else first - result.startup_seconds,
                                   result.examined, result.restarts_finished, result.seconds,
                                   result.stopped_by)
                    runs.append(run)
                    if progress is not None:
                        progress(run)
    return runs


def summarise(runs: list[BenchRun]) -> list[dict[str, Any]]:
    """Per (task, method): n, found, median time to the first verified program (a run that found
    none counts as infinite: the median is then a lower bound), median work; ``fastest``: the
    method of the least median search time (start-up excluded) that found a program."""
    rows = []
    for task in dict.fromkeys(r.task for r in runs):
        for method in [m for m in METHODS if any(r.task == task and r.method == m for r in runs)]:
            mine = [r for r in runs if r.task == task and r.method == method]
            times = [r.first_verified_seconds if r.first_verified_seconds is not None else float("inf")
                     for r in mine]
            search = [r.search_seconds if r.search_seconds is not None else float("inf") for r in mine]
            rows.append({"task": task, "method": method, "n": len(mine),
                         "found": sum(r.first_verified_seconds is not None for r in mine),
                         "median_first_seconds": statistics.median(times),
                         "median_search_seconds": statistics.median(search),
                         "median_examined": statistics.median(r.examined for r in mine),
                         "median_restarts": statistics.median(r.restarts for r in mine)})
    for task in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == task]
        best = min(mine, key=lambda r: (r["median_search_seconds"], -r["found"]))
        for r in mine:
            r["fastest"] = r is best and r["found"] > 0
    return rows


def to_json(runs: list[BenchRun], rows: list[dict[str, Any]], command: str) -> dict[str, Any]:
    """The runs and summary as JSON data (a median that is infinite, no program found, as null)."""
    summary = [{k: None if isinstance(v, float) and math.isinf(v) else v for k, v in r.items()} for r in rows]
    return {"command": command, "runs": [asdict(r) for r in runs], "summary": summary}
