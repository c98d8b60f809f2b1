"""``ntpt lifelong``: the paper's lifelong experiment on Ray, with live progress."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from .common import DataDir, console, fail, spec_file


def lifelong(
    spec_ref: Annotated[Path, typer.Argument(
        metavar="SPEC", help="A lifelong spec: a TOML file, or a shipped spec's name (`ntpt specs`).")],
    lifetimes: Annotated[int | None, typer.Option(help="Lifetimes per model (default: the spec's).")] = None,
    models: Annotated[str, typer.Option(help="Comma-separated: ntpt, indep, pnn, mtnn-1, mtnn-2.")] = (
        "ntpt,indep,pnn,mtnn-1,mtnn-2"),
    out: Annotated[Path, typer.Option(help="Results folder: lifetimes/, results.json, fig6.png, fig7.png.")] = (
        Path("runs/lifelong")),
    address: Annotated[str | None, typer.Option(
        help="Join this Ray cluster ('auto' or HOST:PORT); default: an embedded local Ray.")] = None,
    resume: Annotated[bool, typer.Option(help="Skip the lifetimes already in --out.")] = False,
    tune: Annotated[bool, typer.Option(
        help="First choose learning rates on the validation pools (the spec's [tune] grid).")] = False,
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a spec field, SECTION.FIELD=VALUE (repeatable), e.g. ntpt.library_lr=1e-4.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Eight 2x2 tasks, one growing neural library, and four neural baselines (Fig. 6-7)."""
    from ..lifelong.experiment import LifelongError, run_experiment
    from ..lifelong.results import markdown_table
    from ..lifelong.spec import load_lifelong_spec
    from ..sweep import SpecError, SweepError

    try:
        spec = load_lifelong_spec(spec_file(spec_ref), overrides or ())
    except SpecError as exc:
        fail(str(exc))
    if lifetimes is not None:
        if lifetimes < 1:
            fail(f"--lifetimes must be >= 1, got {lifetimes}")
        spec = spec.model_copy(update={"lifetimes": spec.lifetimes.model_copy(update={"count": lifetimes})})
    chosen = [m.strip() for m in models.split(",") if m.strip()]
    try:
        results = run_experiment(spec, out, models=chosen, resume=resume, tune_first=tune, address=address,
                                 data_dir=None if data_dir is None else str(data_dir), display=_bars)
    except (LifelongError, SweepError, ValueError) as exc:
        fail(str(exc))
    console.print(markdown_table(results), markup=False, highlight=False)
    console.print(f"wrote {out / 'results.json'}, {out / 'fig6.png'}, {out / 'fig7.png'} "
                  f"({results['wall_s'] / 60:.1f} min)", markup=False, highlight=False)


@contextmanager
def _bars(keys: list[str]):
    """One progress bar per unit, fed with ``{unit: (examples done, total)}`` snapshots."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    progress = Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                        TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=console)
    bars = {key: progress.add_task(key, total=None) for key in keys}

    def update(snapshot: dict[str, tuple[int, int]]) -> None:
        for key, (done, total) in snapshot.items():
            if key in bars:
                progress.update(bars[key], completed=done, total=total)

    with progress:
        yield update
