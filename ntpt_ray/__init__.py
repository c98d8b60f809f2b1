"""Neural TerpreT (Gaunt et al., ICML 2017): differentiable programs with neural libraries.

On one machine:

>>> from ntpt_ray import TrainConfig, problem, train_restarts
>>> summary = train_restarts(problem("math"), restarts=64, vectorise=32, config=TrainConfig())
>>> print(summary.winner.listing())

As a sweep on Ray (an embedded local Ray unless ``address`` is given), programs kept in a store:

>>> from ntpt_ray import ProgramStore, load_spec, run_sweep
>>> result = run_sweep(load_spec("search/math_onehot.toml"), store="runs/store")
>>> print(ProgramStore("runs/store").get(result.programs[0]).program.listing())

Your own task, a model and examples in TerpreT's data format (``[problem] data`` in a spec):

>>> from ntpt_ray import file_problem
>>> prob = file_problem("reverse.py", "reverse_data.json", "reverse_hypers.json")
>>> summary = train_restarts(prob, restarts=8, vectorise=8, config=TrainConfig())

Tuning a spec's ``[tune]`` parameters with Optuna, each trial a small sweep:

>>> from ntpt_ray import run_study
>>> print(run_study(load_spec("search/math_onehot.toml"), trials=20).best.params)
"""

from __future__ import annotations

import importlib
from typing import Any

# Each public name and the module that defines it, imported on first use: `import ntpt_ray`
# (and so the `ntpt` command line) loads no torch, optuna or ray until something needs them.
_EXPORTS = {
    ".lang.errors": ["NTPTError"],
    ".lang.model": ["CompiledModel", "Model"],
    ".library": ["NeuralLibrary", "OracleLibrary"],
    ".problems": ["Problem", "file_problem", "problem"],
    ".program": ["LearnedProgram"],
    ".store": ["ProgramRecord", "ProgramStore", "StoredProgram"],
    ".sweep": ["SpecError", "SweepError", "SweepResult", "SweepSpec", "load_spec", "run_sweep"],
    ".tasks": ["Examples", "FileTask", "Task", "TaskDataError", "get_task"],
    ".train.beam": ["top_programs"],
    ".train.config": ["TrainConfig"],
    ".train.restarts": ["RestartBatch"],
    ".train.run": ["RunSummary", "load_program", "save_run", "train_restarts"],
    ".train.verify": ["Verification", "Verifier"],
    ".tune": ["TuneError", "run_study"],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = [name for names in _EXPORTS.values() for name in names]


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use."""
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
