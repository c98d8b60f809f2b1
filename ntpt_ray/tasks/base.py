"""The task abstraction: what a model learns from, independent of the model and the trainer.

A task names its Inputs and Outputs, gives the hyper-parameters and the examples of each of
its example sets, and splits them three ways: *training* examples, *validation* sets (the
trainer's signal and the first screen of decoded programs, perceived with the learned nets)
and *check* sets (held out; a program is verified only if it is right on every observed value
of every check set, with exact perception of perceptual inputs). Built-in tasks generate fresh
examples (:mod:`.builtin`); a user's task reads them from files (:mod:`.files`). Any number of
tasks may share one neural library: a task owns no learnable state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

from .examples import Examples, stack_examples


class Task(ABC):
    """A source of examples for one program.

    Tasks are picklable: they travel to Ray actors with a sweep. ``model`` and
    ``model_hypers`` name the shipped model that solves a task, for tasks that have one.
    """

    name: str
    model: str | None = None
    model_hypers: dict[str, int] = {}

    @property
    @abstractmethod
    def input_names(self) -> tuple[str, ...]:
        """The model Inputs the examples give."""

    @property
    @abstractmethod
    def output_names(self) -> tuple[str, ...]:
        """The model Outputs the examples observe (array Outputs by their declared name)."""

    @property
    @abstractmethod
    def train_hypers(self) -> dict[str, int]:
        """Hyper-parameters of the training examples (the model the Params are built from)."""

    @abstractmethod
    def relevance_hypers(self) -> list[dict[str, int]]:
        """Hyper-parameters whose models together read every Param element any example set's
        model reads (which Params a program reads decides which candidates are distinct)."""

    @abstractmethod
    def train_examples(self, n: int, rng: np.random.Generator, *, perceptual: bool,
                       data_dir=None) -> Examples:
        """``n`` training examples (fewer when the task has fewer)."""

    def stacked_train_examples(self, n: int, rngs: list[np.random.Generator], *, perceptual: bool,
                               data_dir=None) -> list[tuple[list[int], Examples]]:
        """:meth:`train_examples` of each of ``rngs``, stacked: ``(rows, examples)`` for each kind
        of batch drawn (its hypers and size), ``examples``' inputs and outputs ``[len(rows), B,
        ...]`` for the generators ``rngs[i]``, ``i`` in ``rows``. Tasks may draw them faster."""
        drawn = [self.train_examples(n, rng, perceptual=perceptual, data_dir=data_dir) for rng in rngs]
        kinds: dict[tuple, list[int]] = {}
        for i, examples in enumerate(drawn):
            kinds.setdefault((tuple(sorted(examples.hypers.items())), len(examples)), []).append(i)
        return [(rows, stack_examples([drawn[i] for i in rows])) for rows in kinds.values()]

    @abstractmethod
    def validation_sets(self, n: int, *, seed: int, perceptual: bool, data_dir=None) -> list[Examples]:
        """Sets that score training progress and screen decoded programs (up to ``n`` each)."""

    @abstractmethod
    def check_sets(self, n: int, *, seed: int, perceptual: bool, data_dir=None) -> list[Examples]:
        """Held-out sets a verified program must get right (up to ``n`` examples each);
        perceptual inputs come with their symbols, for exact perception (:meth:`Examples.symbolic`)."""

    @property
    def held_out(self) -> bool:
        """Whether any check set holds examples not trained on."""
        return True

    @property
    def perceptual_only(self) -> bool:
        """Whether the task exists only with images (no symbolic mode)."""
        return False

    def describe(self) -> str:
        return self.name


_REGISTRY: dict[str, Callable[[], Task]] = {}


def register_task(name: str, factory: Callable[[], Task]) -> None:
    """Make ``get_task(name)`` return ``factory()``."""
    if name in _REGISTRY:
        raise ValueError(f"task '{name}' is registered already")
    _REGISTRY[name] = factory


def registered_tasks() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get_task(name: str) -> Task:
    """A registered task by name."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown task '{name}'; known: {', '.join(_REGISTRY)} (or give a model "
                         "and a data file: --model MODEL --data DATA.json)")
    return _REGISTRY[name]()


class DetachedTask(Task):
    """A task known only by its name and training hyper-parameters: the task of a program
    loaded from a store or run directory without its examples. It runs and lists programs;
    asking it for examples is an error."""

    def __init__(self, name: str, train_hypers: dict[str, int], outputs: tuple[str, ...] = (),
                 inputs: tuple[str, ...] = ()):
        self.name = name
        self._hypers = dict(train_hypers)
        self._outputs, self._inputs = tuple(outputs), tuple(inputs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DetachedTask) and (self.name, self._hypers) == (other.name, other._hypers)

    def __hash__(self) -> int:
        return hash(self.name)

    @property
    def input_names(self) -> tuple[str, ...]:
        return self._inputs

    @property
    def output_names(self) -> tuple[str, ...]:
        return self._outputs

    @property
    def train_hypers(self) -> dict[str, int]:
        return dict(self._hypers)

    def relevance_hypers(self) -> list[dict[str, int]]:
        return [self.train_hypers]

    def _no_examples(self, *_, **__):
        raise ValueError(f"task '{self.name}': its examples were not stored with the program; train "
                         "or check it from its data file (--data)")

    train_examples = validation_sets = check_sets = _no_examples
