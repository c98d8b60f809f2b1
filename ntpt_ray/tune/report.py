"""A study's trials as table rows and as PNG plots (no browser needed)."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState


def trial_row(trial: FrozenTrial, params: list[str]) -> list[str]:
    """``trial`` as strings: number, state, verified/restarts, success, first verified, time,
    and its parameters (those of ``params``, in that order) as one ``name=value, ...`` cell."""
    attrs = trial.user_attrs
    verified, restarts = attrs.get("verified"), attrs.get("restarts")
    first = attrs.get("first_verified_seconds")
    success = f"{trial.value:.1%}" if trial.state == TrialState.COMPLETE else "-"
    seconds = trial.duration.total_seconds() if trial.duration else None
    tag = " (spec)" if attrs.get("baseline") else ""
    if "retry_of" in attrs:
        tag = f" (retry of {attrs['retry_of']})"
    return [f"{trial.number}{tag}", trial.state.name.lower(),
            "-" if verified is None else f"{verified}/{restarts}", success,
            "-" if first is None else f"{first:.1f}", "-" if seconds is None else f"{seconds:.0f}",
            format_params({p: trial.params[p] for p in params if p in trial.params})]


TRIAL_COLUMNS = ["trial", "state", "verified", "success", "first (s)", "time (s)", "parameters"]


def format_params(params: dict) -> str:
    """``lr=0.1234, batch_size=16``: floats to 4 significant digits."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def save_plots(study: optuna.Study, folder: Path) -> dict[str, Path | str]:
    """Write ``history.png``, ``importance.png`` and ``intermediate.png`` into ``folder``;
    return each plot's path, or why it could not be drawn."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.exceptions import ExperimentalWarning
    from optuna.visualization import matplotlib as plots

    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path | str] = {}
    for name, draw in [("history", plots.plot_optimization_history),
                       ("importance", plots.plot_param_importances),
                       ("intermediate", plots.plot_intermediate_values)]:
        try:
            with warnings.catch_warnings():  # Optuna marks its matplotlib plots experimental
                warnings.simplefilter("ignore", ExperimentalWarning)
                axes = draw(study)
        except (ValueError, RuntimeError) as exc:  # e.g. importance needs 2+ completed trials
            out[name] = str(exc).splitlines()[0]
            continue
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        path = folder / f"{name}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        out[name] = path
    return out
