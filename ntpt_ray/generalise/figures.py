"""The paper's Fig. 8 from ``results.json``: accuracy against expression length (digits).

(a) one-hot symbols: the LSTM and the Neural GPU (trained on up to 5 digits) and NTPT's
program, each legend entry with its parameter count; (b) images: NTPT (2 digits), the LSTM
trained on 2 and on up to 5 digits, with the reference p^n and the exact expectation of the
verified program given its nets' confusion matrices. Solid dots mark the training lengths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STYLE = {"ntpt": "tab:red", "ntpt-onehot": "tab:red", "lstm-5": "tab:blue", "lstm-2": "tab:cyan",
         "lstm-onehot": "tab:blue", "ngpu-onehot": "tab:green"}
LABEL = {"ntpt": "NTPT (2 digits)", "ntpt-onehot": "NTPT (2 digits)", "lstm-5": "LSTM (<=5 digits)",
         "lstm-2": "LSTM (2 digits)", "lstm-onehot": "LSTM (<=5 digits)",
         "ngpu-onehot": "Neural GPU (<=5 digits)"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _panel(results: dict[str, Any], models: tuple[str, ...], title: str, path: Path,
           references: bool) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for model in models:
        if model not in results["accuracy"]:
            continue
        acc = results["accuracy"][model]
        x = sorted(int(n) for n in acc)
        y = [acc[str(n)] for n in x]
        label = f"{LABEL[model]} ({results['params'].get(model, 0):,} params)"
        ax.plot(x, y, "-o", color=STYLE[model], markerfacecolor="white", markersize=4, label=label)
        trained = [n for n in results["train_lengths"].get(model, []) if str(n) in acc]
        ax.plot(trained, [acc[str(n)] for n in trained], "o", color=STYLE[model], markersize=6)
    if references and results["expected"]:
        for key, style in (("exact", "--"), ("p^n", ":")):
            ref = results["expected"][key]
            x = sorted(int(n) for n in ref)
            name = "exact expectation of the program" if key == "exact" else "p^n, p = net_0 accuracy"
            ax.plot(x, [ref[str(n)] for n in x], style, color="black", label=name)
    ax.set_xlabel("digits in the expression")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def draw_all(results: dict[str, Any], out: Path) -> None:
    """Write ``fig8a.png`` and ``fig8b.png`` into ``out``."""
    n = results["examples"]
    _panel(results, ("ntpt-onehot", "lstm-onehot", "ngpu-onehot"),
           f"(a) one-hot symbols ({n:,} test expressions per length)", out / "fig8a.png", False)
    _panel(results, ("ntpt", "lstm-2", "lstm-5"),
           f"(b) handwritten symbols ({n:,} test expressions per length)", out / "fig8b.png", True)
