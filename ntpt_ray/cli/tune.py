"""``ntpt tune``: an Optuna study over a sweep spec's ``[tune]`` parameters, its report, its
best parameters as a new spec, and a side-by-side check of them against the spec's own."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from .common import (
    COMPACT,
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


def tune(
    spec_ref: Annotated[Path, typer.Argument(
        metavar="SPEC", help="A sweep spec with a \\[tune] table: a file or a shipped spec's name.")],
    trials: Annotated[int | None, typer.Option(
        help="Finished trials the study should have; a re-run resumes (default: \\[tune] trials).")] = None,
    storage: Annotated[str | None, typer.Option(
        help="Optuna storage: an SQLAlchemy URL or journal:PATH (default: \\[tune] storage).")] = None,
    study: Annotated[str | None, typer.Option(help="Study name (default: the spec's name).")] = None,
    parallel: Annotated[int | None, typer.Option(
        help="Trials at once (default: one per CPU, at most 4); each gets CPUs/parallel actors.")] = None,
    address: Annotated[str | None, typer.Option(
        help="Join this Ray cluster ('auto' or HOST:PORT); default: an embedded local Ray.")] = None,
    store: Annotated[Path | None, typer.Option(
        help="Program store for what trials verify (default: $NTPT_STORE, else the spec's).")] = None,
    best: Annotated[bool, typer.Option(
        "--best", help="Write the best trial's parameters as a new spec (see --out); run nothing.")] = False,
    out: Annotated[Path | None, typer.Option(
        help="--best: the new spec (default: SPEC.tuned.toml; for a shipped spec's name, in the "
             "current directory).")] = None,
    report: Annotated[bool, typer.Option(
        "--report", help="Print the trials and save PNG plots (see --plots); run nothing.")] = False,
    plots: Annotated[Path | None, typer.Option(
        help="--report: folder for the plots (default: runs/tune/STUDY).")] = None,
    compare: Annotated[int | None, typer.Option(
        help="Measure the spec's own parameters and the best trial's side by side, each on this "
             "many fresh restarts.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Tune a sweep's learning rates, entropy schedule, batch and budget with Optuna: each trial
    is a small sweep on Ray, scored by the share of its restarts that verify."""
    import optuna

    from ..sweep import SpecError, SweepError, load_spec
    from ..tune import TuneError
    from ..tune.study import tune_section

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the trial lines below say it all
    if sum([best, report, compare is not None]) > 1:
        fail("--best, --report and --compare are separate steps: give one of them")
    for name, value in (("--trials", trials), ("--parallel", parallel), ("--compare", compare)):
        if value is not None and value < 1:
            fail(f"{name} must be >= 1, got {value}")
    path = spec_file(spec_ref)
    try:
        spec = load_spec(path)
        url = storage or tune_section(spec).storage
        if best:
            tuned = (spec_ref if spec_ref.is_file() else Path(path.name)).with_suffix(".tuned.toml")
            _write_best(spec, path, url, study, out or tuned)
        elif report:
            _report(spec, url, study, plots)
        elif compare is not None:
            _compare(spec, url, study, compare, store, address, data_dir)
        else:
            _run(spec, url, study, trials, parallel, store, address, data_dir)
    except (SpecError, TuneError, SweepError, ConnectionError, OSError) as exc:
        fail(file_error(exc) if isinstance(exc, OSError) else str(exc))


def _run(spec, url, study, trials, parallel, store, address, data_dir) -> None:
    from ..tune import run_study
    from ..tune.report import format_params

    progress = progress_display()
    bars: dict[int, int] = {}
    lock = threading.Lock()

    def show(number: int, p) -> None:
        with lock:
            progress.start()
            if number not in bars:
                bars[number] = progress.add_task(f"trial {number}", total=p.total, status="")
            progress.update(bars[number], completed=p.done, status=(
                f"verified {p.verified}  best val acc {p.best_accuracy:.2f}  actors {p.actors}"))

    def finished(study, trial) -> None:
        with lock:
            if trial.number in bars:
                progress.remove_task(bars.pop(trial.number))
        attrs = trial.user_attrs
        outcome = (f"{trial.value:.1%}" if trial.value is not None else "-") + \
            f" ({attrs.get('verified', '-')}/{attrs.get('restarts', '-')} verified)"
        console.print(f"trial {trial.number} {trial.state.name.lower()}: {outcome}  "
                      f"{format_params(trial.params)}",
                      highlight=False, soft_wrap=True)

    try:
        result = run_study(spec, trials=trials, storage=url, study_name=study, parallel=parallel,
                           store=store, address=address, data_dir=data_dir, on_progress=show,
                           on_trial=finished)
    finally:
        if progress.live.is_started:
            progress.stop()
    console.print(f"study '{result.study}' in {result.storage}: {plural(result.finished, 'finished trial')} "
                  f"({len(result.ran)} this run)")
    if result.best is not None:
        _print_best(result.best)
    console.print("next: `ntpt tune SPEC --report`, `--best`, `--compare 256`", highlight=False)


def _print_best(trial) -> None:
    attrs = trial.user_attrs
    first = attrs.get("first_verified_seconds")
    console.print(f"best: trial {trial.number}, {trial.value:.1%} of "
                  f"{plural(attrs.get('restarts', 0), 'restart')} verified, the first after {'-' if first is None else f'{first:.1f}'} s: " +
                  ", ".join(f"{k} = {v!r}" for k, v in trial.params.items()), highlight=False,
                  soft_wrap=True)


def _load(spec, url, study):
    from ..tune.storage import load_existing_study

    return load_existing_study(url, study or spec.name)


def _best(spec, url, study):
    from ..tune import TuneError, best_trial

    loaded = _load(spec, url, study)
    found = best_trial(loaded)
    if found is None:
        raise TuneError(f"study '{loaded.study_name}' has no completed trial yet")
    return loaded, found


def _write_best(spec, source: Path, url, study, out: Path) -> None:
    from ..tune.best import write_best_spec

    loaded, trial = _best(spec, url, study)
    write_best_spec(source, trial, out, study=loaded.study_name)
    _print_best(trial)
    console.print(f"wrote {out}: `ntpt sweep {out}` uses these parameters", highlight=False)


def _report(spec, url, study, plots: Path | None) -> None:
    from ..tune import best_trial
    from ..tune.report import TRIAL_COLUMNS, save_plots, trial_row

    loaded = _load(spec, url, study)
    params = list(spec.tune.params)
    table = new_table(*TRIAL_COLUMNS, **COMPACT, title=(
        f"study '{loaded.study_name}' ({url}): {plural(spec.tune.restarts, 'restart')} per trial; "
        "first (s): seconds to the first verified program"))
    trials = loaded.get_trials(deepcopy=False)
    for trial in trials:
        table.add_row(*trial_row(trial, params))
    print_table(table)
    states = Counter(trial.state.name.lower() for trial in trials)
    console.print(", ".join(f"{n} {s}" for s, n in states.items()) or "no trials yet")
    found = best_trial(loaded)
    if found is not None:
        _print_best(found)
    folder = plots or Path("runs/tune") / loaded.study_name
    for name, saved in save_plots(loaded, folder).items():
        console.print(f"{name}: {saved}" if isinstance(saved, Path) else f"{name}: not drawn ({saved})",
                      highlight=False)


def _compare(spec, url, study, restarts: int, store, address, data_dir) -> None:
    import ray

    from ..sweep.coordinator import connect
    from ..tune import TuneError, best_trial
    from ..tune.compare import compare, two_proportion_p
    from ..tune.report import format_params
    from ..tune.study import default_params

    loaded, overall = _best(spec, url, study)
    trial = best_trial(loaded, tuned_only=True)
    if trial is None:
        raise TuneError(f"study '{loaded.study_name}' has no completed trial besides the spec's own")
    if trial.number != overall.number:
        console.print(f"the best trial is the spec's own values (trial {overall.number}); "
                      f"comparing with the best other trial, {trial.number}")
    candidates = {"spec": default_params(spec), "best": dict(trial.params)}
    connect(address)
    try:
        measured = compare(spec, candidates, restarts=restarts, store=store, data_dir=data_dir,
                           progress=console.print)
    finally:
        ray.shutdown()
    table = new_table("run", "verified", "success", "95% interval", "first (s)", "per min", "parameters",
                      **COMPACT, title=(f"{spec.name}: the spec's parameters vs study trial {trial.number} "
                                        "on fresh restart seeds; medians of the seconds to the first "
                                        "verified program and of restarts per minute"))
    for m in measured:
        low, high = m.interval()
        first, rpm = m.median_first_verified, m.median_restarts_per_minute
        table.add_row(m.label, f"{m.verified}/{m.restarts}", f"{m.rate:.1%}", f"{low:.1%}-{high:.1%}",
                      "-" if first is None else f"{first:.1f}", "-" if rpm is None else f"{rpm:.1f}",
                      format_params(m.params))
    print_table(table)
    console.print(f"two-proportion z-test, spec vs best: p = {two_proportion_p(*measured):.3g}")
