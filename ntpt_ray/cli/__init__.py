"""The ``ntpt`` command line: one typer app, its commands grouped by module.

Command modules import torch, optuna, ray and the like inside the commands that use them, so
``ntpt --help`` stays fast (tests/test_cli.py checks that importing this loads none of them).
"""

from __future__ import annotations

import os
import sys

import typer

from . import generalise, lifelong, plots, programs, simulation, specs, sweep, training, tune
from .common import console

app = typer.Typer(help="Neural TerpreT: learn verified programs that call neural libraries.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@app.callback()
def main() -> None:
    """One torch thread per process unless OMP_NUM_THREADS says otherwise; piped output keeps
    each line whole, however long."""
    console.soft_wrap = not console.is_terminal
    threads = os.environ.setdefault("OMP_NUM_THREADS", "1")  # read by torch when it loads
    if "torch" in sys.modules:  # loaded already (an embedding program, the tests)
        sys.modules["torch"].set_num_threads(int(threads))


COMMANDS = [training.check, training.train, training.show, training.evaluate, training.bench,
            training.data, sweep.sweep, sweep.bench_sweep, sweep.bench_search,
            simulation.bench_coordinator, tune.tune, lifelong.lifelong, generalise.generalise,
            specs.specs, plots.plot, programs.run]
for command in COMMANDS:
    app.command()(command)  # named after the function, bench_sweep as bench-sweep
app.add_typer(programs.app, name="programs")
