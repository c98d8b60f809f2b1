"""The ``ntpt`` command line: one typer app, its commands grouped by module."""

from __future__ import annotations

import os

import typer

from . import programs, sweep, training, tune

app = typer.Typer(help="Neural TerpreT: learn verified programs that call neural libraries.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@app.callback()
def main() -> None:
    """One torch thread per process unless OMP_NUM_THREADS says otherwise."""
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))


for command in (training.check, training.train, training.show, training.evaluate, training.bench,
                training.data):
    app.command()(command)
app.command()(sweep.sweep)
app.command(name="bench-sweep")(sweep.bench_sweep)
app.command()(tune.tune)
app.command()(programs.run)
app.add_typer(programs.app, name="programs")
