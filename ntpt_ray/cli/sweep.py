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
    except SpecError as exc:
        fail(str(exc))
    if actors is not None and actors < 1:
        fail(f"--actors must be >= 1, got {actors}")
    progress = progress_display()  # shown from the first report on
    bar = progress.add_task(f"{spec.sweep_id}: restarts", total=spec.restarts.total, status="")

    def show(p) -> None:
        progress.start()
        progress.update(bar, completed=p.done, status=(
            f"running {p.running}  best val acc {p.best_accuracy:.2f}  verified {p.verified}  "
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
    for name, value in [
        ("restarts done", f"{result.done}/{result.total} ({result.restarts_finished} this session)"),
        ("verified programs", f"{result.verified} ({result.success_rate:.1%} of restarts done)"),
        ("time to first verified", "-" if first is None else f"{first:.1f} s"),
        ("wall time", f"{result.seconds:.1f} s (Ray and actors up after {result.startup_seconds:.1f} s)"),
        ("throughput", f"{result.restarts_per_minute:.1f} restarts/min"),
        ("actor time", f"training {result.train_seconds:.1f} s, decoding and verification "
                       f"{result.verify_seconds:.1f} s"),
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
