"""``ntpt bench-coordinator``: the real coordinator on many simulated actors (no Ray processes)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import console, fail, new_table, plural, print_table, spec_file


def bench_coordinator(
    actors: Annotated[str, typer.Option(help="Actor counts to simulate, comma-separated.")] = "2,10,100,1000",
    spec_ref: Annotated[Path, typer.Option("--spec", help=(
        "The sweep spec whose worker is recorded: a file or a shipped spec's name."))] = Path("math_onehot"),
    rounds: Annotated[int, typer.Option(help="Restarts per actor slot, each run to its end.")] = 2,
    period: Annotated[float | None, typer.Option(
        help="Seconds per validation period (default: recorded from a real worker).")] = None,
    verify: Annotated[float | None, typer.Option(
        help="Seconds per verification (default: recorded from a real worker).")] = None,
    success: Annotated[float | None, typer.Option(
        help="Share of restarts that verify (default: Fates.success, the measured symbolic-MATH rate).")] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the figures as JSON.")] = None,
) -> None:
    """Measure the sweep coordinator's own time per report, and its share of the wall time, on
    simulated actors timed from a real worker of the spec."""
    import dataclasses
    import json
    import tempfile

    from ..atomic import atomic_write
    from ..sweep import SpecError, load_spec
    from ..sweep.simulation import Fates, record, simulate, with_timings

    try:
        counts = [int(a) for a in actors.split(",")]
    except ValueError:
        fail(f"--actors expects counts like 2,10,100, got '{actors}'")
    if min(counts) < 1 or rounds < 1:
        fail("--actors and --rounds must be >= 1")
    fates = Fates() if success is None else Fates(success=success)
    if not 0 <= fates.success <= 1 - fates.false_alarm:
        fail(f"--success must be in [0, {1 - fates.false_alarm:g}], got {success}")
    try:
        spec = load_spec(spec_file(spec_ref))
    except SpecError as exc:
        fail(str(exc))
    console.print(f"recording a real {spec.name} worker ({plural(spec.restarts.per_actor, 'slot')}) ...")
    recording = with_timings(record(spec), period=period, verify=verify)
    console.print(f"validation period ({plural(spec.convergence.val_every, 'step')}) "
                  f"{recording.period_seconds:.2f} s, verification {recording.verify_seconds:.2f} s, "
                  f"start-up {recording.startup_seconds:.1f} s")
    runs = []
    for count in counts:
        with tempfile.TemporaryDirectory(prefix="ntpt-bench-coordinator-") as store:
            run = simulate(spec, recording, actors=count, store=Path(store), rounds=rounds,
                           fates=fates)
        runs.append(run)
        console.print(f"{plural(count, 'actor')}: {run.reports} reports, {run.report_ms_median:.3f} ms per "
                      f"report (median), {run.share:.2%} of {run.wall_seconds:.0f} s (simulated in "
                      f"{run.real_seconds:.0f} s)")
    table = new_table("actors", "restarts", "reports", "verified", "ms/report (median)", "ms/report (p90)",
                      "share of wall", "state saves", "store writer", "store wait at the end", "own account",
                      "wall (simulated)",
                      title=f"the coordinator on simulated {spec.name} actors, {plural(rounds, 'round')}")
    for r in runs:
        table.add_row(str(r.actors), str(r.restarts), str(r.reports), str(r.verified),
                      f"{r.report_ms_median:.3f}", f"{r.report_ms_p90:.3f}", f"{r.share:.2%}",
                      f"{r.save_share:.2%}", f"{r.store_share:.2%}", f"{r.store_wait_seconds:.2f} s",
                      f"{r.accounted_share:.2%}",
                      f"{r.wall_seconds:.0f} s")
    print_table(table)
    if out is not None:
        data = {"spec": spec.name, "rounds": rounds, "recording": {
                    k: v for k, v in dataclasses.asdict(recording).items() if k.endswith("seconds")},
                "runs": [{**dataclasses.asdict(r), "share": r.share, "accounted_share": r.accounted_share}
                         for r in runs]}
        atomic_write(out, lambda f: json.dump(data, f, indent=1))
