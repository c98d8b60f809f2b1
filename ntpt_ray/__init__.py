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

from .lang.errors import NTPTError
from .lang.model import CompiledModel, Model
from .library import NeuralLibrary, OracleLibrary
from .problems import Problem, file_problem, problem
from .program import LearnedProgram
from .store import ProgramRecord, ProgramStore, StoredProgram
from .sweep import SpecError, SweepError, SweepResult, SweepSpec, load_spec, run_sweep
from .tasks import Examples, FileTask, Task, TaskDataError, get_task
from .train.beam import top_programs
from .train.restarts import RestartBatch, TrainConfig
from .train.run import RunSummary, load_program, save_run, train_restarts
from .train.verify import Verification, Verifier
from .tune import TuneError, run_study

__all__ = [
    "CompiledModel", "Examples", "FileTask", "LearnedProgram", "Model", "NTPTError",
    "NeuralLibrary", "OracleLibrary", "Problem", "ProgramRecord", "ProgramStore", "RestartBatch",
    "RunSummary", "SpecError", "StoredProgram", "SweepError", "SweepResult", "SweepSpec", "Task",
    "TaskDataError", "TrainConfig", "TuneError", "Verification", "Verifier", "file_problem",
    "get_task", "load_program", "load_spec", "problem", "run_study", "run_sweep", "save_run",
    "top_programs", "train_restarts",
]
