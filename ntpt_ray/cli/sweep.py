"""``ntpt sweep``: run a sweep spec on Ray with live progress and a summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import (
    DataDir,
    console,
    fail,
    file_error,
    new_table,
    plural,
    print_table,
    progress_display,
    spec_file,
)


def sweep(
    spec_ref: Annotated[Path, typer.Argument(
        metavar="SPEC", help="A sweep spec: a TOML file, or a shipped spec's name (`ntpt specs`).")],
    address: Annotated[str | None, typer.Option(
        help="Join this Ray cluster ('auto' or HOST:PORT); default: an embedded local Ray.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the sweep from its stored state.")] = False,
    store: Annotated[Path | None, typer.Option(
        help="Program store (default: $NTPT_STORE, else the spec's \\[output] store).")] = None,
    actors: Annotated[int | None, typer.Option(help="Actors (default: the spec's).")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the spec's \\[restarts] seed.")] = None,
    method: Annotated[str | None, typer.Option(
        help="Search method: gradient, random, enumerate or smt (default: the spec's \\[search] "
             "method; the discrete ones need a symbolic problem).")] = None,
    device: Annotated[str | None, typer.Option(
        help="Where gradient search runs: auto (cuda where the cluster has a GPU), cpu or cuda "
             "(default: the spec's \\[train] device).")] = None,
    plot: Annotated[bool, typer.Option(
        "--plot", help="At the end, draw the sweep's curves and restarts/min.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Search for verified programs with many restarts on Ray actors; store what verifies."""
    from ..store import ProgramStore
    from ..sweep import SpecError, SweepError, load_spec, run_sweep

    try:
        spec = load_spec(spec_file(spec_ref))
        if seed is not None:
            spec = spec.model_copy(update={"restarts": spec.restarts.model_copy(update={"seed": seed})})
        if method is not None:
            spec = with_method(spec, method)
        if device is not None:
            spec = with_device(spec, device)
    except SpecError as exc:
        fail(str(exc))
    if actors is not None and actors < 1:
        fail(f"--actors must be >= 1, got {actors}")
    progress = progress_display()  # shown from the first report on
    bar = progress.add_task(f"{spec.sweep_id}: restarts", total=spec.restarts.total, status="")

    def show(p) -> None:
        progress.start()
        if spec.search.method != "gradient":
            progress.update(bar, total=p.total)  # enumerate: the shards of the space
            space = f" of {p.space:,} ({p.examined / p.space:.2%})" if p.space else ""
            searched = f"examined {p.examined:,}{space}  "
        else:
            searched = f"best val acc {p.best_accuracy:.2f}  "
        progress.update(bar, completed=p.done, status=(
            f"running {p.running}  {searched}verified {p.verified}  "
            f"{p.restarts_per_minute:.1f} restarts/min  library v{p.library_version}  "
            f"actors {p.actors}" + (f" (lost {p.lost_actors})" if p.lost_actors else "")))

    try:
        result = run_sweep(spec, store=store, address=address, resume=resume, data_dir=data_dir,
                           actors=actors, on_progress=show)
    except (SweepError, ValueError, ConnectionError, OSError) as exc:  # a bad state.json is a ValueError
        if progress.live.is_started:
            progress.stop()
        fail(file_error(exc) if isinstance(exc, OSError) else str(exc))
    progress.stop()
    table = new_table("name", "value", wrap=("value",), show_header=False,
                      title=f"sweep {result.sweep}: stopped by {result.stopped_by}")
    first = result.first_verified_seconds
    rows = [] if result.method == "gradient" else [
        ("method", result.method),
        ("programs examined", f"{result.examined:,} this session" + (
            f" of {result.space:,} distinct programs" if result.space else ""))]
    for name, value in [
        *rows,
        ("restarts done", f"{result.done}/{result.total} ({result.restarts_finished} this session)"),
        ("verified programs", f"{result.verified} ({result.success_rate:.1%} of restarts done)"),
        ("time to first verified", "-" if first is None else f"{first:.1f} s"),
        ("wall time", f"{result.seconds:.1f} s (Ray and actors up after {result.startup_seconds:.1f} s)"),
        ("throughput", f"{result.restarts_per_minute:.1f} restarts/min"),
        ("actor time", f"training {result.train_seconds:.1f} s, decoding and verification "
                       f"{result.verify_seconds:.1f} s" if result.method == "gradient" else
                       f"searching and screening {result.train_seconds:.1f} s"),
        ("coordinator overhead", f"{result.coordinator_seconds:.2f} s "
                                 f"({result.coordinator_seconds / max(result.seconds, 1e-9):.2%})"),
        ("library versions", str(result.library_versions)),
        ("actors lost / restarts re-run", f"{result.lost_actors} / {result.rerun}"),
        ("store", str(result.store)),
    ]:
        table.add_row(name, value)
    print_table(table)
    if plot:
        from ..plots import plot_sweep

        console.print(f"wrote {plot_sweep(result.store / 'sweeps' / result.sweep)}")
    if result.programs:
        stored = ProgramStore(result.store).get(result.programs[0])
        console.print(f"first program stored this session: {stored.record.id}")
        console.print(stored.program.listing(), highlight=False)
        console.print(f"`ntpt programs show {stored.record.id}` prints it with its provenance")


def with_method(spec, method: str):
    """``spec`` searched with ``method`` (its ``[search] method`` replaced and checked)."""
    from ..sweep import parse_spec

    data = spec.model_dump(exclude_none=True)
    data["search"] = {**data.get("search", {}), "method": method}
    return parse_spec(data, source=f"--method {method}")


def with_device(spec, device: str):
    """``spec`` with its ``[train] device`` replaced (and checked)."""
    from ..sweep import parse_spec

    data = spec.model_dump(exclude_none=True)
    data["train"] = {**data.get("train", {}), "device": device}
    return parse_spec(data, source=f"--device {device}")


def bench_sweep(
    spec_ref: Annotated[Path, typer.Argument(
        metavar="SPEC", help="A symbolic sweep spec: a file or a shipped spec's name.")] = Path("math_onehot"),
    restarts: Annotated[int, typer.Option(help="Restarts per scaling sweep.")] = 32,
    per_actor: Annotated[int, typer.Option(help="Restarts vectorised per actor (scaling).")] = 8,
    steps: Annotated[int, typer.Option(help="Budget per restart (scaling).")] = 300,
    repeats: Annotated[int, typer.Option(help="Alternated 1-actor/2-actor pairs.")] = 3,
    seeds: Annotated[int, typer.Option(help="Sweeps timed to their first verified program.")] = 5,
    out: Annotated[Path | None, typer.Option(help="Also write the figures as JSON.")] = None,
) -> None:
    """Benchmark sweeps on an embedded Ray: 1 vs 2 actors, coordinator overhead, time to the
    first verified program."""
    import dataclasses
    import json
    import statistics

    import ray

    from ..sweep import SpecError, load_spec
    from ..sweep.bench import run_bench
    from ..sweep.coordinator import connect

    try:
        spec = load_spec(spec_file(spec_ref))
    except SpecError as exc:
        fail(str(exc))
    connect()  # an embedded Ray, shared by every sweep of the benchmark
    try:
        bench = run_bench(spec, restarts=restarts, per_actor=per_actor, steps=steps,
                          repeats=repeats, seeds=range(seeds), progress=console.print)
    finally:
        ray.shutdown()
    one, two = bench.median_rate(1), bench.median_rate(2)
    table = new_table("actors", "restarts/min", "runs",
                      title=f"{spec.name}: {plural(restarts, 'restart')} x {plural(steps, 'step')}, "
                            f"{per_actor} per actor, {plural(repeats, 'run')} each (medians)")
    for actors, rate in ((1, one), (2, two)):
        runs = ", ".join(f"{r.restarts_per_minute:.1f}" for r in bench.scaling if r.actors == actors)
        table.add_row(str(actors), f"{rate:.1f}", runs)
    print_table(table)
    console.print(f"2 actors / 1 actor: [bold]{two / one:.2f}x[/]; coordinator overhead "
                  f"{bench.overhead:.2%} of wall time (median)")
    times = [t for t in bench.first_verified.values() if t is not None]
    found = f"{len(times)} of {plural(len(bench.first_verified), 'sweep')} found one"
    if times:
        console.print(f"time to the first verified program, 2 actors: median "
                      f"[bold]{statistics.median(times):.1f} s[/] ({found}; "
                      + ", ".join(f"seed {s}: {'-' if t is None else f'{t:.1f}'} s"
                                  for s, t in bench.first_verified.items()) + ")")
    else:
        console.print(f"no sweep found a verified program ({found})")
    if out is not None:
        out.write_text(json.dumps({**dataclasses.asdict(bench), "ratio": two / one,
                                   "overhead": bench.overhead}, indent=1))


def bench_search(
    out: Annotated[Path, typer.Option(help="Write every run and the summary here (JSON).")],
    seeds: Annotated[int, typer.Option(help="Seeds (sweeps) per task and method.")] = 5,
    budget: Annotated[float, typer.Option(help="Seconds each sweep may run before it stops.")] = 60.0,
    methods: Annotated[str, typer.Option(help="Comma-separated methods.")] = "gradient,random,enumerate,smt",
    tasks: Annotated[str | None, typer.Option(
        help="Comma-separated tasks (default: math, add2x2:*, apply2x2:* and the TerpreT suite).")] = None,
    terpret: Annotated[Path | None, typer.Option(
        help="TerpreT's models/ and data/ (default: ../shared/terpret beside the checkout).")] = None,
    actors: Annotated[int, typer.Option(help="Actors per sweep.")] = 1,
) -> None:
    """Benchmark the search methods: time to the first verified program and programs examined
    (or restarts), median over seeds, on symbolic MATH, ADD2X2, APPLY2X2 and TerpreT's tasks."""
    import json
    import math
    import shlex
    import sys
    from importlib import resources

    import ray

    from ..atomic import atomic_write
    from ..methods import METHODS
    from ..methods.bench import run_bench, summarise, task_specs, to_json
    from ..sweep import SpecError
    from ..sweep.coordinator import connect

    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    unknown = sorted(set(chosen) - set(METHODS))
    if unknown:
        fail(f"--methods: unknown {', '.join(unknown)}; allowed: {', '.join(METHODS)}")
    if seeds < 1 or budget <= 0:
        fail("--seeds must be >= 1 and --budget > 0")
    folder = terpret or Path(__file__).resolve().parents[3] / "shared" / "terpret"
    try:
        specs = task_specs(Path(str(resources.files("ntpt_ray.search"))), folder if folder.is_dir() else None)
    except SpecError as exc:
        fail(str(exc))
    if tasks is not None:
        wanted = [t.strip() for t in tasks.split(",") if t.strip()]
        missing = [t for t in wanted if t not in specs]
        if missing:
            fail(f"--tasks: unknown {', '.join(missing)}; allowed: {', '.join(specs)}")
        specs = {t: specs[t] for t in wanted}

    done = []
    command = shlex.join(["ntpt", "bench-search", *sys.argv[2:]])

    def show(run) -> None:
        done.append(run)  # the file holds every run so far: a cut-short benchmark keeps them
        atomic_write(out, lambda f: json.dump(to_json(done, summarise(done), command), f, indent=1))
        found = "-" if run.first_verified_seconds is None else f"{run.first_verified_seconds:.1f} s"
        console.print(f"{run.task} {run.method} seed {run.seed}: first verified {found}, examined "
                      f"{run.examined:,}, restarts {run.restarts} ({run.stopped_by})", highlight=False)

    connect()
    try:
        runs = run_bench(specs, chosen, range(seeds), budget, actors, progress=show)
    except (SpecError, ValueError) as exc:
        fail(str(exc))
    finally:
        ray.shutdown()
    rows = summarise(runs)
    table = new_table("task", "method", "n", "found", "median first verified (s)", "without start-up (s)",
                      "median examined", "median restarts", "", title=f"search methods, budget {budget:g} s "
                      f"per sweep ({plural(actors, 'actor')}); '>' where a seed found none in the budget")
    for r in rows:
        inf = r["found"] < r["n"] and math.isinf(r["median_first_seconds"])
        first = f">{budget:g}" if inf else f"{r['median_first_seconds']:.1f}"
        search = f">{budget:g}" if inf else f"{r['median_search_seconds']:.1f}"
        table.add_row(r["task"], r["method"], str(r["n"]), str(r["found"]), first, search,
                      f"{r['median_examined']:,.0f}", f"{r['median_restarts']:g}",
                      "fastest" if r["fastest"] else "")
    print_table(table)
    atomic_write(out, lambda f: json.dump(to_json(runs, rows, command), f, indent=1))
    console.print(f"wrote {out}")
