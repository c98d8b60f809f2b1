"""``ntpt generalise``: the MATH generalisation experiment (Fig. 8) on Ray, with live progress."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from .common import DataDir, console, fail, progress_display, spec_file


def generalise(
    spec_ref: Annotated[Path, typer.Argument(
        metavar="SPEC", help="A generalisation spec: a TOML file, or a shipped spec's name (`ntpt specs`).")],
    out: Annotated[Path, typer.Option(help="Results folder: parts/, results.json, fig8a.png, fig8b.png.")] = (
        Path("runs/generalise")),
    address: Annotated[str | None, typer.Option(
        help="Join this Ray cluster ('auto' or HOST:PORT); default: an embedded local Ray.")] = None,
    resume: Annotated[bool, typer.Option(help="Skip the parts already in --out.")] = False,
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a spec field, SECTION.FIELD=VALUE (repeatable), e.g. lstm.hidden=1024.")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """NTPT's MATH program from a library against LSTM and Neural GPU baselines, 1 to 16 digits."""
    from ..generalise.experiment import GeneraliseError, run_experiment
    from ..generalise.results import markdown_table
    from ..generalise.spec import load_generalise_spec
    from ..sweep import SpecError, SweepError

    try:
        spec = load_generalise_spec(spec_file(spec_ref), overrides or ())
    except SpecError as exc:
        fail(str(exc))
    progress = progress_display()
    sweep_bars: dict[str, int] = {}

    def on_sweep(p) -> None:
        progress.start()
        key = f"sweep ({p.total} restarts)"
        if key not in sweep_bars:
            sweep_bars[key] = progress.add_task(key, total=p.total, status="")
        progress.update(sweep_bars[key], completed=p.done, status=f"verified {p.verified}  "
                        f"best val acc {p.best_accuracy:.2f}  actors {p.actors}")

    @contextmanager
    def bars(keys: list[str]):
        progress.start()
        tasks = {key: progress.add_task(key, total=1, status="") for key in keys}  # totals: first report

        def update(snapshot: dict[str, tuple[int, int]]) -> None:
            for key, (done, total) in snapshot.items():
                if key in tasks:
                    progress.update(tasks[key], completed=done, total=total)

        yield update

    try:
        results = run_experiment(spec, out, resume=resume, address=address,
                                 data_dir=None if data_dir is None else str(data_dir), display=bars,
                                 on_sweep=on_sweep)
    except (GeneraliseError, SweepError, ValueError, OSError) as exc:
        fail(str(exc))
    finally:
        if progress.live.is_started:
            progress.stop()
    restarts = results["restarts"]
    low, high = restarts["interval"]
    console.print(f"NTPT restarts verified: {restarts['verified']}/{restarts['run']} "
                  f"(95% interval {low:.1%} to {high:.1%}); nets {results['net_accuracy']}",
                  markup=False, highlight=False)
    console.print(markdown_table(results), markup=False, highlight=False)
    console.print(f"wrote {out / 'results.json'}, {out / 'fig8a.png'}, {out / 'fig8b.png'} "
                  f"({results['wall_s'] / 60:.1f} min)", markup=False, highlight=False)
