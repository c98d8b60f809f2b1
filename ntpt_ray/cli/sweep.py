"""``ntpt sweep``: run a sweep spec on Ray with live progress and a summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .common import DataDir, console, fail


def sweep(
    spec_file: Annotated[Path, typer.Argument(metavar="SPEC", help="A sweep spec (search/*.toml).")],
    address: Annotated[str | None, typer.Option(
        help="Join this Ray cluster ('auto' or HOST:PORT); default: an embedded local Ray.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the sweep from its stored state.")] = False,
    store: Annotated[Path | None, typer.Option(
        help="Program store (default: the spec's [output] store, else $NTPT_STORE).")] = None,
    actors: Annotated[int | None, typer.Option(help="Actors (default: the spec's).")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the spec's [restarts] seed.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Search for verified programs with many restarts on Ray actors; store what verifies."""
    from ..store import ProgramStore
    from ..sweep import SpecError, SweepError, load_spec, run_sweep

    try:
        spec = load_spec(spec_file)
        if seed is not None:
            spec = spec.model_copy(update={"restarts": spec.restarts.model_copy(update={"seed": seed})})
    except SpecError as exc:
        fail(str(exc))
    if actors is not None and actors < 1:
        fail(f"--actors must be >= 1, got {actors}")
    columns = [TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.fields[status]}", markup=False)]
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task(f"{spec.sweep_id}: restarts", total=spec.restarts.total, status="")

        def show(p) -> None:
            progress.update(bar, completed=p.done, status=(
                f"running {p.running}  best val acc {p.best_accuracy:.2f}  verified {p.verified}  "
                f"{p.restarts_per_minute:.1f} restarts/min  library v{p.library_version}  "
                f"actors {p.actors}" + (f" (lost {p.lost_actors})" if p.lost_actors else "")))

        try:
            result = run_sweep(spec, store=store, address=address, resume=resume, data_dir=data_dir,
                               actors=actors, on_progress=show)
        except (SweepError, FileNotFoundError, ValueError, ConnectionError) as exc:
            fail(str(exc))
    table = Table(title=f"sweep {result.sweep}: stopped by {result.stopped_by}", show_header=False)
    first = result.first_verified_seconds
    for name, value in [
        ("restarts done", f"{result.done}/{result.total} ({result.restarts_finished} this session)"),
        ("verified programs", f"{result.verified} ({result.success_rate:.1%} of restarts done)"),
        ("time to first verified", "-" if first is None else f"{first:.1f} s"),
        ("wall time", f"{result.seconds:.1f} s (Ray and actors up after {result.startup_seconds:.1f} s)"),
        ("throughput", f"{result.restarts_per_minute:.1f} restarts/min"),
        ("coordinator overhead", f"{result.coordinator_seconds:.2f} s "
                                 f"({result.coordinator_seconds / max(result.seconds, 1e-9):.2%})"),
        ("library versions", str(result.library_versions)),
        ("actors lost / restarts re-run", f"{result.lost_actors} / {result.rerun}"),
        ("store", str(result.store)),
    ]:
        table.add_row(name, value)
    console.print(table)
    if result.programs:
        stored = ProgramStore(result.store).get(result.programs[0])
        console.print(f"first program stored this session: {stored.record.id}")
        console.print(stored.program.listing(), highlight=False)
        console.print(f"`ntpt programs show {stored.record.id}` prints it with its provenance")
