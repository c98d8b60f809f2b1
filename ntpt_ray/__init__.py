"""Neural TerpreT (Gaunt et al., ICML 2017): differentiable programs with neural libraries.

>>> from ntpt_ray import TrainConfig, problem, train_restarts
>>> summary = train_restarts(problem("math"), restarts=64, vectorise=32, config=TrainConfig())
>>> print(summary.winner.listing())
"""

from .lang.errors import NTPTError
from .lang.model import CompiledModel, Model
from .library import NeuralLibrary, OracleLibrary
from .problems import Problem, problem
from .program import LearnedProgram
from .train.beam import top_programs
from .train.restarts import RestartBatch, TrainConfig
from .train.run import RunSummary, load_program, save_run, train_restarts
from .train.verify import Verification, Verifier

__all__ = [
    "CompiledModel", "LearnedProgram", "Model", "NTPTError", "NeuralLibrary", "OracleLibrary",
    "Problem", "RestartBatch", "RunSummary", "TrainConfig", "Verification", "Verifier",
    "load_program", "problem", "save_run", "top_programs", "train_restarts",
]
