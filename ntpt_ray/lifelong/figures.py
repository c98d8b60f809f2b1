"""The paper's Fig. 6 and Fig. 7 from ``results.json``, and the table beside them.

Fig. 6: (a) the schedule over the 8 tasks, and ADD2X2:top for NTPT (solid) and MTNN-2
(dashed) with the times its examples were shown and ``net_0``'s digit accuracy; (b) the other
ADD2X2 tasks; (c) every model on ADD2X2:left and APPLY2X2:left. Lines join the evaluations on
the fixed test subset; a dot marks each curve's final value on the whole test pool. Fig. 7:
final accuracies, a bar per model and task, the paper's numbers as black ticks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .results import markdown_table
from .schedule import Schedule

COLOURS = {"ntpt": "tab:red", "indep": "tab:gray", "pnn": "tab:green", "mtnn-1": "tab:purple",
           "mtnn-2": "tab:blue"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _curve(results, model, task, key="accuracy"):
    c = results["curves"][model]
    mean = np.array([np.nan if v is None else v for v in c[key][task]["mean"]])
    return np.array(c["examples"]), mean


def _plot(ax, x, y, style: str, color, label: str) -> None:
    """A curve: a line through the evaluations on the fixed test subset, and its last point (on
    the whole test pool, a different measure) as a marker of its own rather than a step."""
    ax.plot(x[:-1], y[:-1], style, color=color, label=label)
    ax.plot(x[-1:], y[-1:], "o", color=color, markersize=3)


def fig6(results: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    protocol = results["protocol"]
    tasks = protocol["tasks"]["order"]
    schedule = Schedule(tuple(tasks), protocol["schedule"]["per_task"], protocol["schedule"]["width"])
    fig, axes = plt.subplots(4, 1, figsize=(8, 11), gridspec_kw={"height_ratios": [1, 2, 2, 2]})
    t = np.linspace(0, schedule.total, 400)
    w = schedule.weights(t)
    axes[0].stackplot(t, w.T, labels=tasks, alpha=0.8)
    axes[0].set_ylabel("P(task)")
    axes[0].set_title("(a) schedule")
    axes[0].legend(fontsize=6, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    axes[0].set_xlim(0, schedule.total)
    first = tasks[0]
    ax = axes[1]
    for model, style in (("ntpt", "-"), ("mtnn-2", "--")):
        if model in results["curves"]:
            x, y = _curve(results, model, first)
            _plot(ax, x, y, style, COLOURS[model], f"{model} {first}")
    if "ntpt" in results["curves"] and "net_0" in results["curves"]["ntpt"].get("nets", {}):
        nets = results["curves"]["ntpt"]
        _plot(ax, np.array(nets["examples"]), np.array(nets["nets"]["net_0"]["mean"]), ":", "black",
              "net_0 digit accuracy")
    shown = results["shown"].get(first, [])
    ax.vlines(shown, 0, 0.04, color="tab:red", linewidth=0.3, label=f"{first} examples shown")
    ax.set_title(f"(a) {first}: reverse transfer")
    ax = axes[2]
    for k, task in enumerate(tasks[1:4]):
        for model, style in (("ntpt", "-"), ("mtnn-2", "--")):
            if model in results["curves"]:
                x, y = _curve(results, model, task)
                _plot(ax, x, y, style, f"C{k + 1}", f"{model} {task}")
    ax.set_title("(b) the other ADD2X2 tasks: NTPT (solid), MTNN-2 (dashed)")
    ax = axes[3]
    for task, style in (("add2x2:left", "-"), ("apply2x2:left", "--")):
        if task not in tasks:
            continue
        for model in results["curves"]:
            x, y = _curve(results, model, task)
            _plot(ax, x, y, style, COLOURS.get(model), f"{model} {task}")
    ax.set_title("(c) every model on the :left tasks")
    axes[1].plot([], [], "o", color="black", markersize=3, label="at the end: the whole test pool")
    for ax in axes[1:]:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, ncol=2, loc="lower right")
        ax.set_ylim(0, 1.02)
        ax.set_xlim(0, schedule.total * 1.02)  # room for the final dots
        ax.set_ylabel("test accuracy")
    axes[-1].set_xlabel("training examples")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fig7(results: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    tasks = results["protocol"]["tasks"]["order"]
    models = [m for m in COLOURS if m in results["final"]]
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / max(len(models), 1)
    for j, model in enumerate(models):
        x = np.arange(len(tasks)) + (j - (len(models) - 1) / 2) * width
        mean = [results["final"][model][t] or 0 for t in tasks]
        std = [results["final_std"][model][t] or 0 for t in tasks]
        ax.bar(x, mean, width, yerr=std, color=COLOURS[model],
               label=f"{model} (n={results['lifetimes'][model]})")
        paper = [results["paper"].get(model, {}).get(t) for t in tasks]
        ax.scatter(x, [np.nan if p is None else p / 100 for p in paper], marker="_", color="black", s=60,
                   zorder=3, label="paper" if j == 0 else None)
    ax.set_xticks(np.arange(len(tasks)), tasks, rotation=20, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("final test accuracy")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def draw_all(results: dict[str, Any], out: Path) -> None:
    """``out/fig6.png``, ``out/fig7.png`` and ``out/table.md``."""
    fig6(results, out / "fig6.png")
    fig7(results, out / "fig7.png")
    (out / "table.md").write_text(markdown_table(results) + "\n")
