"""Pictures of what runs and sweeps saved: validation curves of their restarts (verified ones
marked) and, for perceptual runs, the accuracy of the learned nets.

What each source keeps, so what can be drawn:

* a run directory of ``ntpt train``: ``run.json`` holds every restart's validation curve and
  verification (for perceptual runs, the program's accuracy with its own nets per check set);
* a stored program: ``record.json`` holds its restart's curve, verification and time;
* a sweep, ``<store>/sweeps/<id>/state.json`` and its journal: each restart's outcome, when it
  started and finished and on which actor, and the library versions. Only the verified restarts' curves
  survive, in their store records; the curves of the others are not saved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .jsonfile import read_json
from .store import RECORD, REQUIRED, ProgramRecord, ProgramStore

Point = tuple[int, float]  # (examples seen, relaxed validation accuracy)


@dataclass
class Curve:
    """One restart's validation curve."""

    label: str
    points: list[Point]
    verified: bool


@dataclass
class Curves:
    """The restarts of a run or a stored program, with what its nets scored."""

    title: str
    curves: list[Curve]
    perceptual: bool = False
    program_accuracy: dict[str, float] = field(default_factory=dict)  # check set -> with its own nets
    net_accuracy: dict[str, float] = field(default_factory=dict)  # library net -> on its test set


@dataclass
class SweepHistory:
    """What a sweep's state and its stored programs tell about it over time."""

    sweep: str
    total: int  # restarts in the spec
    done: int  # restarts finished
    seconds: float  # wall time of its sessions
    curves: list[Curve]  # the verified restarts' (no other curve is saved)
    found: list[float]  # seconds into the sweep of each verified program, in order
    libraries: list[tuple[float, int, float]]  # (seconds into the sweep, version, score), k >= 1
    finished: list[float] = field(default_factory=list)  # seconds into the sweep, each restart's end
    actors: int = 0  # actors that ran restarts (older state.json files saved no times: 0)

    def restarts_per_minute(self, bins: int = 20) -> tuple[list[float], list[float]]:
        """Restarts finished per minute in ``bins`` equal spans of the sweep's time: (the
        spans' middles in seconds, their rates); empty when no restart's end is known."""
        end = max([self.seconds, *self.finished])
        if not self.finished or end <= 0:
            return [], []
        width = end / bins
        counts = [0] * bins
        for t in self.finished:
            counts[min(int(t / width), bins - 1)] += 1
        return [width * (k + 0.5) for k in range(bins)], [60 * c / width for c in counts]


def default_out(label: str) -> Path:
    """Where a figure goes unless told: ``runs/plots/<label>.png``."""
    return Path("runs/plots") / f"{label.replace(':', '-')}.png"


def run_curves(folder: Path) -> Curves:
    """Every restart of a run directory (``run.json``); the program accuracy is the winner's,
    the verified restart ``train_restarts`` keeps (best validation accuracy, then beam rank)."""
    data = read_json(folder / "run.json", required=("task", "results"))
    results = data["results"]
    curves = [Curve(f"seed {r['seed']}", [tuple(p) for p in r["val_curve"]], bool(r["verified"]))
              for r in results]
    verified = [r for r in results if r["verified"]]
    winner = max(verified, key=lambda r: (r["val_accuracy"], -r["rank"])) if verified else {}
    mode = "perceptual" if data.get("perceptual") else "symbolic"
    return Curves(f"{data['task']} ({mode}): {len(verified)} of {len(results)} restarts verified",
                  curves, bool(data.get("perceptual")), winner.get("perceptual_accuracy") or {})


def program_curves(folder: Path) -> Curves:
    """The one restart of a stored program (``record.json``)."""
    record = ProgramRecord.from_dict(read_json(folder / RECORD, required=REQUIRED))
    perceptual = bool(record.program.get("perceptual"))
    return Curves(f"{record.id}: restart {record.restart} of sweep {record.sweep}, verified",
                  [Curve(f"restart {record.restart}", list(record.val_curve), True)], perceptual,
                  record.verification.get("perceptual_accuracy") or {})


def sweep_history(folder: Path) -> SweepHistory:
    """A sweep folder (``<store>/sweeps/<id>``) and the programs it stored."""
    from .sweep.state import read_state  # state.json and its journal

    state = read_state(folder, required=("sweep", "spec", "outcomes", "libraries", "seconds"))
    records = {r.id: r for r in ProgramStore(folder.parent.parent).list(sweep=state["sweep"])}
    found = sorted(records.values(), key=lambda r: r.seconds_into_sweep)
    libraries = [(records[lib["source"]].seconds_into_sweep, lib["version"], lib["score"])
                 for lib in state["libraries"] if lib["source"] in records]
    times = state.get("times", {}).values()
    return SweepHistory(state["sweep"], state["spec"]["restarts"]["total"], len(state["outcomes"]),
                        state["seconds"], [Curve(f"restart {r.restart}", list(r.val_curve), True) for r in found],
                        [r.seconds_into_sweep for r in found], libraries,
                        sorted(t["finished"] for t in times if t["finished"] is not None),
                        len({(t["session"], t["actor"]) for t in times}))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _draw_curves(ax, curves: list[Curve]) -> None:
    for curve in sorted(curves, key=lambda c: c.verified):  # verified ones on top
        if not curve.points:
            continue
        seen, accuracy = zip(*curve.points)
        if curve.verified:
            ax.plot(seen, accuracy, lw=1.2, color="tab:green")
            ax.plot(seen[-1], accuracy[-1], "o", color="tab:green", ms=5)
        else:
            ax.plot(seen, accuracy, lw=0.7, color="tab:gray", alpha=0.5)
    verified = sum(c.verified for c in curves)
    ax.plot([], [], color="tab:green", marker="o", label=f"verified ({verified})")
    if len(curves) > verified:
        ax.plot([], [], color="tab:gray", label=f"not verified ({len(curves) - verified})")
    ax.set(xlabel="training examples seen", ylabel="relaxed validation accuracy", ylim=(-0.02, 1.02))
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)


def _save(fig, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    _pyplot().close(fig)
    return out


def draw_curves(curves: Curves, out: Path) -> Path:
    """Validation curves and, when there are any, the accuracies with the learned nets."""
    plt = _pyplot()
    bars = {**{f"{name} (test set)": acc for name, acc in curves.net_accuracy.items()},
            **{f"program, set {name}": acc for name, acc in curves.program_accuracy.items()}}
    fig, axes = plt.subplots(1, 2 if bars else 1, figsize=(13 if bars else 8, 4.5), squeeze=False)
    _draw_curves(axes[0, 0], curves.curves)
    axes[0, 0].set_title(curves.title, fontsize=10)
    if bars:
        ax = axes[0, 1]
        colours = ["tab:blue" if k.endswith("(test set)") else "tab:orange" for k in bars]
        ax.bar(range(len(bars)), list(bars.values()), color=colours)
        ax.set_xticks(range(len(bars)), list(bars), rotation=60, ha="right", fontsize=8)
        ax.set(ylim=(0, 1), ylabel="accuracy", title="with the learned nets")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, out)


def plot_sweep(folder: Path, out: Path | None = None) -> Path:
    """Draw a sweep (``<store>/sweeps/<id>``): the verified restarts' validation curves, the
    verified programs and library versions over time, and restarts finished per minute over
    time; returns the PNG's path (default :func:`default_out` of the sweep id)."""
    history = sweep_history(Path(folder))
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator
    fig, (left, right, pace) = plt.subplots(1, 3, figsize=(19, 4.5))
    _draw_curves(left, history.curves)
    left.set_title(f"sweep {history.sweep}: verified restarts (other curves are not saved)", fontsize=10)
    times = [0.0, *history.found, max([history.seconds, *history.found])]
    counts = [*range(len(history.found) + 1), len(history.found)]
    right.step(times, counts, where="post", color="tab:green")
    right.set(xlabel="seconds into the sweep", ylabel="verified programs")
    right.yaxis.set_major_locator(MaxNLocator(integer=True))
    rate = 60 * history.done / history.seconds if history.seconds else 0.0
    right.set_title(f"{history.done} of {history.total} restarts in {history.seconds:.0f} s: "
                    f"{rate:.1f} restarts/min on average", fontsize=10)
    if history.libraries:
        score = right.twinx()
        when, _, scores = zip(*history.libraries)
        score.plot(when, scores, "s--", color="tab:blue")
        for t, v, s in history.libraries:
            score.annotate(f"v{v}", (t, s), textcoords="offset points", xytext=(3, 3), fontsize=8)
        score.set(ylabel="library score (program accuracy with its nets)", ylim=(0, 1))
    right.grid(alpha=0.3)
    middles, rates = history.restarts_per_minute()
    if middles:
        pace.plot(middles, rates, "o-", color="tab:purple", ms=3)
        pace.set_title(f"restarts finished per minute ({history.actors} actors in all)", fontsize=10)
    else:
        pace.set_title("restarts per minute: this sweep's state saved no restart times", fontsize=10)
    pace.set(xlabel="seconds into the sweep", ylabel="restarts/min", ylim=(0, None))
    pace.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, out or default_out(history.sweep))
