"""Writing a study's best parameters back into a sweep spec file, comments kept."""

from __future__ import annotations

from pathlib import Path

import tomlkit
from optuna.trial import FrozenTrial

from ..atomic import atomic_write
from ..sweep.spec import INTEGER_PARAMETERS, TUNABLE, parse_spec


def write_best_spec(spec_file: Path, trial: FrozenTrial, out: Path, *, study: str) -> Path:
    """Copy ``spec_file`` to ``out`` with ``trial``'s parameters set in their sections and the
    name suffixed ``-tuned``; the copy is validated before it is written."""
    document = tomlkit.parse(spec_file.read_text())
    document["name"] = f"{document['name']}-tuned"
    for param, value in trial.params.items():
        section = document.setdefault(TUNABLE[param], tomlkit.table())
        section[param] = int(value) if param in INTEGER_PARAMETERS else value
    verified, restarts = trial.user_attrs.get("verified"), trial.user_attrs.get("restarts")
    header = (f"Tuned by `ntpt tune`: study '{study}', trial {trial.number}, "
              f"{verified}/{restarts} restart{'' if restarts == 1 else 's'} verified ({trial.value:.1%}); "
              f"from {spec_file}")
    text = f"# {header}\n" + tomlkit.dumps(document)
    parse_spec(tomlkit.parse(text).unwrap(), source=str(out))
    atomic_write(out, lambda f: f.write(text))
    return out
