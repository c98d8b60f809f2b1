"""Problems: a task's data bound to the NTPT model that solves it, with its train/test lengths."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from .data.tasks import TASKS, TaskBatch, make_batch
from .lang.model import CompiledModel, Model


def model_path(name: str) -> Path:
    """Path of a model source shipped with the package (``math``, ``grid2x2``)."""
    path = Path(str(resources.files("ntpt_ray.models") / "sources" / f"{name}.py"))
    if not path.exists():
        raise ValueError(f"no shipped model '{name}'; shipped: {shipped_models()}")
    return path


def shipped_models() -> list[str]:
    folder = Path(str(resources.files("ntpt_ray.models") / "sources"))
    return sorted(p.stem for p in folder.glob("*.py"))


@lru_cache(maxsize=None)
def load_model(name_or_path: str) -> Model:
    """A shipped model by name, or a model source file by path (cached)."""
    is_file = Path(name_or_path).suffix == ".py"
    return Model.from_file(name_or_path if is_file else model_path(name_or_path))


@dataclass(frozen=True)
class Problem:
    """What to learn: a task, the model, and the input lengths used at each stage.

    ``length`` is the number of digits of a MATH expression; grid tasks have one length.
    """

    task: str
    model: str
    hypers: dict[str, int] = field(default_factory=dict)
    length_hyper: str | None = None
    train_lengths: tuple[int, ...] = (1,)
    val_lengths: tuple[int, ...] = (1,)
    test_lengths: tuple[int, ...] = (1,)
    perceptual: bool = False

    def compile(self, length: int) -> CompiledModel:
        hypers = dict(self.hypers)
        if self.length_hyper:
            hypers[self.length_hyper] = length
        return load_model(self.model).compile(**hypers)

    def batch(self, n: int, *, length: int, split: str, seed, perceptual: bool | None = None,
              data_dir=None) -> TaskBatch:
        return make_batch(self.task, n, split=split, digits=length, seed=seed, data_dir=data_dir,
                          perceptual=self.perceptual if perceptual is None else perceptual)


def problem(task: str, *, perceptual: bool = False, model: str | None = None,
            hypers: dict[str, int] | None = None) -> Problem:
    """The paper's setting for ``task`` (one of :data:`TASKS`), optionally with another model."""
    if task not in TASKS:
        raise ValueError(f"unknown task '{task}'; known: {', '.join(TASKS)}")
    extra = dict(hypers or {})
    if task == "math":
        return Problem(task, model or "math", extra, "N_DIGITS", (2,), (2, 3),
                       tuple(range(2, 17)), perceptual)
    family = task.split(":")[0]
    # The very first task (ADD2X2) may call only net_0: one untrained net at a time (Sec. 4.1).
    defaults = {"N_AUX": 0, "N_NETS": 1} if family == "add2x2" else {"N_AUX": 3, "N_NETS": 2}
    return Problem(task, model or "grid2x2", {**defaults, **extra}, perceptual=perceptual)
