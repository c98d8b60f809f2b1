"""Problems: a task bound to the NTPT model (source and hyper-parameters) that solves it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from .lang.model import CompiledModel, Model
from .tasks import Examples, FileTask, Task, TaskFiles, get_task


def model_path(name: str) -> Path:
    """Path of a model source shipped with the package (``math``, ``grid2x2``)."""
    path = Path(str(resources.files("ntpt_ray.models") / "sources" / f"{name}.py"))
    if not path.exists():
        raise ValueError(f"no shipped model '{name}'; shipped: {shipped_models()}")
    return path


def shipped_models() -> list[str]:
    folder = Path(str(resources.files("ntpt_ray.models") / "sources"))
    return sorted(p.stem for p in folder.glob("*.py"))


def read_model_source(name_or_path: str) -> tuple[str, str]:
    """``(source, filename)`` of a shipped model by name, or of a model file by path."""
    path = Path(name_or_path) if Path(name_or_path).suffix == ".py" else model_path(name_or_path)
    try:
        return path.read_text(), str(path)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read model: {exc.strerror}") from None


@lru_cache(maxsize=64)
def model_from_source(source: str, filename: str) -> Model:
    """The parsed model of a source text (cached: it compiles once per hypers)."""
    return Model(source, filename=filename)


def load_model(name_or_path: str) -> Model:
    """A shipped model by name, or a model source file by path."""
    return model_from_source(*read_model_source(name_or_path))


@dataclass(frozen=True)
class Problem:
    """What to learn: a task, the model source that solves it and its hyper-parameters.

    The source text travels with the problem (to Ray actors, into the store), so a problem
    never needs the model's file again. ``hypers`` override the model's and each example set's.
    """

    task: Task
    model: str  # a shipped model's name, or the file the source came from
    source: str = field(repr=False)
    hypers: dict[str, int] = field(default_factory=dict)
    perceptual: bool = False

    @property
    def filename(self) -> str:
        return self.model if self.model.endswith(".py") else f"{self.model}.py"

    def parsed(self) -> Model:
        return model_from_source(self.source, self.filename)

    def compile(self, hypers: dict[str, int] | None = None) -> CompiledModel:
        """The model compiled for an example set's hyper-parameters (default: training's)."""
        return self.parsed().compile(**self.model_hypers(hypers))

    def model_hypers(self, hypers: dict[str, int] | None = None) -> dict[str, int]:
        """The model's hyper-parameters for an example set's (default: training's)."""
        return {**(self.task.train_hypers if hypers is None else hypers), **self.hypers}

    def train_examples(self, n: int, rng, data_dir=None) -> Examples:
        return self.task.train_examples(n, rng, perceptual=self.perceptual, data_dir=data_dir)

    def stacked_train_examples(self, n: int, rngs, data_dir=None) -> list[tuple[list[int], Examples]]:
        """:meth:`Task.stacked_train_examples` in this problem's mode."""
        return self.task.stacked_train_examples(n, rngs, perceptual=self.perceptual, data_dir=data_dir)

    @property
    def source_hash(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()[:16]

    def check(self) -> None:
        """Raise ValueError unless the model has the Inputs and Outputs the task's examples use."""
        compiled = self.compile()
        for kind, names, declared in (("Input", self.task.input_names, compiled.inputs),
                                      ("Output", self.task.output_names, compiled.outputs)):
            missing = [n for n in names if n not in declared]
            if missing:
                raise ValueError(f"{self.filename}: the task's examples give {kind} '{missing[0]}', "
                                 f"which the model does not declare (it has {', '.join(declared) or 'none'})")


def problem(task: str | Task, *, perceptual: bool = False, model: str | None = None,
            hypers: dict[str, int] | None = None) -> Problem:
    """A registered task by name (the paper's settings), or a task object, with its model:
    ``model`` (a shipped name or a .py file) or the task's default."""
    found = get_task(task) if isinstance(task, str) else task
    chosen = model or found.model
    if chosen is None:
        raise ValueError(f"task '{found.name}' has no default model: give one")
    source, _ = read_model_source(chosen)
    made = Problem(found, chosen, source, {**found.model_hypers, **(hypers or {})}, perceptual)
    if model is not None:  # a custom model must declare the task's Inputs and Outputs
        made.check()
    return made


def file_problem(model: str | Path, data: str | Path, hypers_file: str | Path | None = None, *,
                 hypers: dict[str, int] | None = None, perceptual: bool | None = None,
                 train_batches=None, check_batches=None, name: str | None = None) -> Problem:
    """A user's task: a model source and its examples in TerpreT's format (see
    :mod:`ntpt_ray.tasks.files`); perceptual by default when the model has Tensor inputs."""
    source, filename = read_model_source(str(model))
    parsed = model_from_source(source, filename)
    task = FileTask.load(TaskFiles.read(data, hypers_file), parsed, overrides=hypers,
                         train_batches=train_batches, check_batches=check_batches, name=name)
    found = Problem(task, filename, source, dict(hypers or {}),
                    task.perceptual_only if perceptual is None else perceptual)
    found.check()
    return found
