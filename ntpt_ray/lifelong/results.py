"""Aggregating lifetimes into ``results.json`` and the Fig. 7 table beside the paper's numbers.

``results.json``: ``final`` ``{model: {task: mean test accuracy}}``, ``final_std`` (population
std over lifetimes), ``curves`` ``{model: {"examples": [...], "accuracy": {task: {"mean",
"std"}}}}`` (NTPT adds ``relaxed``, ``verified`` - the share of lifetimes whose program is
verified - and ``nets``), ``net_accuracy`` (NTPT's nets at the end), ``programs`` ``{task:
listing}`` (the first lifetime's), ``verified`` ``{task: [verified, lifetimes]}``, ``shown``
(the times ADD2X2:top's ... batches began, first lifetime), ``lifetimes`` ``{model: n}``,
``lr``, ``tuning``, ``wall_s`` and ``protocol`` (the spec's settings).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .spec import LifelongSpec

PAPER_FIG7 = {  # Gaunt et al. 2017, Fig. 7: final accuracy (%) per task and model
    "indep": [35, 32, 34, 32, 38, 39, 39, 39],
    "pnn": [35, 36, 33, 35, 39, 51, 48, 51],
    "mtnn-1": [26, 38, 40, 44, 40, 41, 41, 42],
    "mtnn-2": [24, 47, 56, 60, 38, 39, 40, 37],
    "ntpt": [87, 87, 86, 86, 98, 100, 100, 100],
}
PAPER_TASK_ORDER = ("add2x2:top", "add2x2:left", "add2x2:bottom", "add2x2:right",
                    "apply2x2:top", "apply2x2:left", "apply2x2:bottom", "apply2x2:right")


def _stats(rows: list[list[float | None]]) -> dict[str, list[float | None]]:
    """Mean and std over lifetimes at each point (None where no lifetime has a value)."""
    array = np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)
    seen = ~np.isnan(array).all(0)
    mean = np.full(array.shape[1], np.nan)
    std = np.full(array.shape[1], np.nan)
    mean[seen] = np.nanmean(array[:, seen], 0)
    std[seen] = np.nanstd(array[:, seen], 0)
    return {"mean": [None if np.isnan(v) else float(v) for v in mean],
            "std": [None if np.isnan(v) else float(v) for v in std]}


def aggregate(spec: LifelongSpec, records: dict[str, list[dict]], *, wall_s: float,
              tuning: dict | None = None) -> dict[str, Any]:
    """The results of every model's finished lifetimes (models without any are left out)."""
    tasks = spec.tasks.order
    results: dict[str, Any] = {"final": {}, "final_std": {}, "curves": {}, "net_accuracy": {},
                               "programs": {}, "verified": {}, "shown": {}, "lifetimes": {}, "lr": {},
                               "tuning": tuning, "wall_s": wall_s, "protocol": spec.protocol(),
                               "paper": {m: dict(zip(PAPER_TASK_ORDER, v)) for m, v in PAPER_FIG7.items()}}
    for model, runs in records.items():
        if not runs:
            continue
        results["lifetimes"][model] = len(runs)
        results["lr"][model] = runs[0]["lr"]
        final = {task: [r["final"][task] for r in runs] for task in tasks}
        results["final"][model] = {t: _mean(v) for t, v in final.items()}
        results["final_std"][model] = {t: _std(v) for t, v in final.items()}
        examples = runs[0]["examples"]
        curves: dict[str, Any] = {"examples": examples,
                                  "accuracy": {t: _stats([r["accuracy"][t] for r in runs]) for t in tasks}}
        if model == "ntpt":
            curves["relaxed"] = {t: _stats([r["relaxed"][t] for r in runs]) for t in tasks}
            curves["verified"] = {t: np.mean([r["verified"][t] for r in runs], 0).tolist() for t in tasks}
            curves["nets"] = {n: _stats([r["nets"][n] for r in runs]) for n in runs[0]["nets"]}
            results["net_accuracy"] = {n: {"mean": _mean([r["final_nets"][n] for r in runs]),
                                           "std": _std([r["final_nets"][n] for r in runs])}
                                       for n in runs[0]["final_nets"]}
            results["programs"] = runs[0]["programs"]
            results["verified"] = {t: [sum(r["final_verified"][t] for r in runs), len(runs)] for t in tasks}
            results["final_relaxed"] = {t: _mean([r["final_relaxed"][t] for r in runs]) for t in tasks}
        results["curves"][model] = curves
        results["shown"] = results["shown"] or runs[0]["shown"]
    return results


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _std(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.std(present)) if present else None


def markdown_table(results: dict[str, Any]) -> str:
    """Fig. 7 as a markdown table: measured mean +- std (n lifetimes) beside the paper's number."""
    models = [m for m in PAPER_FIG7 if m in results["final"]]
    header = "| task | " + " | ".join(f"{m} (n={results['lifetimes'][m]})" for m in models) + " |"
    lines = [header, "|---|" + "---|" * len(models)]
    for task in results["protocol"]["tasks"]["order"]:
        cells = []
        for m in models:
            mean, std = results["final"][m].get(task), results["final_std"][m].get(task)
            paper = results["paper"][m].get(task)
            measured = "-" if mean is None else f"{100 * mean:.1f} ± {100 * std:.1f}"
            cells.append(f"{measured} ({paper})" if paper is not None else measured)
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Measured test accuracy (%), mean ± std over lifetimes; the paper's Fig. 7 in brackets.")
    return "\n".join(lines)
