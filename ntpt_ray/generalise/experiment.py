"""The MATH generalisation experiment (Fig. 8) on Ray: parts, each resumable, results on disk.

Parts, in order, each written atomically to ``DIR/parts/NAME.json`` when done (``resume``
skips those there):

1. ``library``: the start nets, saved as ``DIR/library.pt`` (see :mod:`.spec` for the sources).
2. ``sweep``: the MATH sweep from that library (the sweep machinery, its store and state in
   ``DIR/store``; a stopped sweep resumes there).
3. ``continued`` (a Ray task): the best verified restart's nets trained on, program fixed
   (``DIR/ntpt_library.pt``), then ``ntpt`` (a Ray task): its test by length.
4. one Ray task per baseline (:data:`~.spec.BASELINES`): trained, then tested.

Ray tasks ask for one CPU each (and a GPU with ``device = "cuda"``, or ``"auto"`` on a cluster
that has one) and report progress to a small actor the driver polls. At the end the driver
writes ``DIR/results.json`` and the figures.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..jsonfile import read_json
from ..library import LibrarySnapshot
from ..parts import QuietDisplay, add_wall_time, reporter, run_parts
from ..train.device import cluster_device
from .spec import BASELINES, GeneraliseSpec

RETRIES = 2  # reruns of a Ray task whose worker died
FALLBACK_SWEEPS = ("add2x2", "apply2x2")  # run when [library] start is not given
SPEC_FILE = "spec.json"
SECTIONS = {"library": ("library",), "sweep": ("library", "ntpt"),
            "continued": ("library", "ntpt", "continued"), "ntpt": ("library", "ntpt", "continued", "evaluate")}
"""The spec sections each part's result depends on; a baseline's: ``BASELINE_SECTIONS``."""
BASELINE_SECTIONS = ("library", "lstm", "ngpu", "baselines", "evaluate")


class GeneraliseError(RuntimeError):
    """The experiment cannot go on; the message says why."""


def _write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda f: json.dump(data, f, indent=1))


def _save_nets(path: Path, nets: LibrarySnapshot) -> None:
    import torch

    atomic_write(path, lambda f: torch.save(nets, f), binary=True)


def part_path(out: Path, name: str) -> Path:
    return out / "parts" / f"{name}.json"


def done_parts(out: Path) -> set[str]:
    """The parts finished in ``out``."""
    return {p.stem for p in (out / "parts").glob("*.json")}


def check_resume(spec: GeneraliseSpec, out: Path, resume: bool) -> None:
    """Refuse to start over a run without ``resume``, or to resume one whose finished parts ran
    with other settings (sections no finished part depends on may change); record the settings."""
    path = out / SPEC_FILE
    current = spec.protocol()
    done = done_parts(out)
    if done and not resume:
        raise GeneraliseError(f"{out} already has results: pass --resume to go on, or another --out")
    if resume and path.is_file():
        before = read_json(path)
        used = {section for part in done for section in SECTIONS.get(part, BASELINE_SECTIONS)}
        changed = sorted(k for k in used if before.get(k) != current.get(k))
        if changed:
            sections = "[" + "], [".join(changed) + "]"
            raise GeneraliseError(f"{out} holds parts run with other settings ({sections} differ from "
                                  f"{path}): use another --out, or those settings")
    _write_json(path, current)


# ---- 1. the start library

def lifelong_library(run: Path) -> tuple[Path, str]:
    """The library of a lifelong run's NTPT lifetime with the best final ``net_0``."""
    records = sorted((run / "lifetimes" / "ntpt").glob("*.json"))
    best = None
    for record in records:
        data = read_json(record)
        nets = data.get("net_accuracy") or data.get("final_nets") or {}
        library = run / "libraries" / "ntpt" / f"{record.stem}.pt"
        if "net_0" in nets and library.is_file() and (best is None or nets["net_0"] > best[0]):
            best = (nets["net_0"], library)
    if best is None:
        raise GeneraliseError(f"[library] start: {run} has no NTPT lifetime with its nets "
                              "(lifetimes/ntpt/NNN.json beside libraries/ntpt/NNN.pt)")
    return best[1], f"{best[1]} (lifelong lifetime {best[1].stem}, final net_0 {best[0]:.4f})"


def start_library(spec: GeneraliseSpec, out: Path, *, address: str | None, data_dir: str | None,
                  on_sweep: Callable | None) -> dict:
    """Resolve the start nets into ``DIR/library.pt``; the part's record."""
    import torch

    from ..sweep import run_sweep
    from ..sweep.state import resolve_start_library

    store = out / "store"
    start = spec.library.start
    if start is None:
        for name in FALLBACK_SWEEPS:
            sweep = _sweep_spec(name, {"output": {"store": str(store)}})
            resume = (store / "sweeps" / sweep.sweep_id).exists()
            run_sweep(sweep, address=address, resume=resume, data_dir=data_dir, on_progress=on_sweep)
        nets, source = resolve_start_library(f"sweep:{FALLBACK_SWEEPS[-1]}", store)
        source = f"fallback: the shipped {' and '.join(FALLBACK_SWEEPS)} sweeps in {store} ({source})"
    elif (Path(start) / "lifetimes").is_dir():
        file, source = lifelong_library(Path(start))
        nets = torch.load(file, map_location="cpu")
    else:
        nets, source = resolve_start_library(start, store)
    missing = sorted({"net_0", "net_1"} - set(nets))
    if missing:
        raise GeneraliseError(f"[library] start: {source} has no {', '.join(missing)}")
    _save_nets(out / "library.pt", nets)
    from .ntpt import library_accuracy

    return {"source": source, "net_accuracy": library_accuracy(nets, data_dir)}


# ---- 2. the MATH sweep

def _sweep_spec(ref: str, changes: dict[str, dict]):
    """A shipped or given sweep spec with some of its sections' fields replaced."""
    from ..specs import resolve_spec
    from ..sweep import parse_spec
    from ..sweep.spec import read_toml

    path = resolve_spec(ref)
    data = read_toml(path)
    for section, fields in changes.items():
        data[section] = {**data.get(section, {}), **fields}
    return parse_spec(data, source=str(path), base=path.parent)


def math_sweep_spec(spec: GeneraliseSpec, out: Path):
    """The MATH sweep of the experiment: ``[ntpt] sweep`` from ``DIR/library.pt``, in ``DIR/store``."""
    return _sweep_spec(spec.ntpt.sweep, {
        "library": {"start": str((out / "library.pt").resolve())},
        "restarts": {"total": spec.ntpt.restarts},
        "stop": {"policy": spec.ntpt.stop},
        "output": {"store": str(out / "store")}})


def run_math_sweep(spec: GeneraliseSpec, out: Path, *, address: str | None, data_dir: str | None,
                   on_sweep: Callable | None) -> dict:
    """Run (or resume) the MATH sweep; the part's record, with the best verified program."""
    from ..store import ProgramStore
    from ..sweep import run_sweep
    from ..sweep.state import SweepDirectory

    sweep = math_sweep_spec(spec, out)
    store = out / "store"
    directory = SweepDirectory(store, sweep)
    result = run_sweep(sweep, address=address, resume=directory.exists, data_dir=data_dir,
                       on_progress=on_sweep)
    state = directory.load()
    programs = [r for r in ProgramStore(store).list(sweep=sweep.sweep_id)]

    def score(record) -> float:
        accuracy = record.verification.get("perceptual_accuracy") or {}
        return sum(accuracy.values()) / max(len(accuracy), 1)

    best = max(programs, key=score, default=None)
    return {"sweep": sweep.sweep_id, "run": len(state.outcomes), "verified": state.verified,
            "programs": [r.id for r in programs], "best": None if best is None else best.id,
            "first_verified_s": result.first_verified_seconds, "seconds": state.seconds,
            "found_at_examples": None if best is None else _examples_at_verification(best)}


def _examples_at_verification(record) -> int | None:
    """Training examples the best program's restart had seen when it was verified."""
    return int(record.val_curve[-1][0]) if record.val_curve else None


# ---- 3, 4: Ray tasks

def _run_part(kind: str, spec: GeneraliseSpec, out: str, data_dir: str | None, board, key: str) -> dict:
    """One part in a Ray worker: ``continued``, ``ntpt`` or a baseline's name."""
    import torch

    from ..store import ProgramStore

    progress = reporter(board, key)
    root = Path(out)
    seed = spec.evaluate.seed
    if kind in BASELINES:
        from .training import train_baseline

        library = torch.load(root / "library.pt") if not kind.endswith("-onehot") else None
        return train_baseline(spec, kind, library, seed=seed * 1000 + BASELINES.index(kind),
                              data_dir=data_dir, progress=progress)
    sweep = read_json(part_path(root, "sweep"))
    stored = ProgramStore(root / "store").get(sweep["best"])
    if kind == "continued":
        from .ntpt import continue_training

        nets, record = continue_training(spec, stored.program, stored.library, seed=seed, data_dir=data_dir,
                                         progress=progress)
        _save_nets(root / "ntpt_library.pt", nets)
        return {"program": stored.record.id, **record}
    from .ntpt import test_ntpt

    nets = torch.load(root / "ntpt_library.pt")
    return {"program": stored.record.id,
            **test_ntpt(spec, stored.program, nets, data_dir=data_dir, progress=progress)}


def _run_tasks(spec: GeneraliseSpec, out: Path, todo: list[str], data_dir: str | None, display) -> None:
    """Run the Ray parts in ``todo`` (``ntpt`` after ``continued``), writing each as it ends."""
    import ray

    gpus = int(cluster_device(spec.baselines.device, ray.cluster_resources().get("GPU", 0)) == "cuda")
    remote = ray.remote(num_cpus=1, max_retries=RETRIES)(_run_part)

    def submit(kind: str, board):
        options = {"num_gpus": gpus} if kind in BASELINES and gpus else {}
        return remote.options(**options).remote(kind, spec, str(out), data_dir, board, kind)

    waiting = ["ntpt"] if "ntpt" in todo and "continued" in todo else []

    def finished(kind: str, record: dict) -> list[str]:
        _write_json(part_path(out, kind), record)
        return [waiting.pop()] if kind == "continued" and waiting else []

    run_parts([kind for kind in todo if kind not in waiting], submit, finished, display, shown=todo,
              error=lambda kind, why: GeneraliseError(f"part {kind} failed: {why}"))


def parts_to_run(spec: GeneraliseSpec, out: Path) -> list[str]:
    """The Ray parts of a run: NTPT's two once the sweep has verified a program (or before the
    sweep has run), then the baselines."""
    sweep = part_path(out, "sweep")
    found = not sweep.is_file() or read_json(sweep)["best"] is not None
    return [*(("continued", "ntpt") if found else ()), *spec.baselines.models]


def run_experiment(spec: GeneraliseSpec, out: Path, *, resume: bool = False, address: str | None = None,
                   data_dir: str | None = None, display=None, on_sweep: Callable | None = None) -> dict:
    """Run every part still to run (on an embedded Ray, or the cluster at ``address``) and write
    ``DIR/results.json`` and the figures."""
    import ray

    from ..data.paths import data_dir as resolve_data_dir
    from ..sweep.coordinator import connect
    from .figures import draw_all
    from .results import aggregate

    data_dir = str(resolve_data_dir(data_dir))  # the workers read this folder, wherever they run
    out.mkdir(parents=True, exist_ok=True)
    check_resume(spec, out, resume)
    start = time.perf_counter()
    done = done_parts(out) if resume else set()
    started_ray = not ray.is_initialized() and not {"library", "sweep", *parts_to_run(spec, out)} <= done
    if started_ray:  # one Ray for every part (the sweeps join it); none when all are done
        connect(address)
    try:
        if "library" not in done:
            _write_json(part_path(out, "library"),
                        start_library(spec, out, address=address, data_dir=data_dir, on_sweep=on_sweep))
        if "sweep" not in done:
            _write_json(part_path(out, "sweep"),
                        run_math_sweep(spec, out, address=address, data_dir=data_dir, on_sweep=on_sweep))
        todo = [k for k in parts_to_run(spec, out) if k not in done]
        if todo:
            _run_tasks(spec, out, todo, data_dir, display or QuietDisplay)
    finally:
        if started_ray:
            ray.shutdown()
    parts = {p.stem: read_json(p) for p in sorted((out / "parts").glob("*.json"))}
    wall_s = add_wall_time(out, time.perf_counter() - start)
    results = aggregate(spec, parts, wall_s=wall_s)
    _write_json(out / "results.json", results)
    draw_all(results, out)
    return results
