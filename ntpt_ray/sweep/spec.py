"""Sweep specifications: the TOML files in ``search/``, validated into typed objects.

A spec says what to learn (``[problem]``), how many restarts and how they are packed into
actors (``[restarts]``), each restart's budget and learning rates (``[train]``), when a restart
counts as converged (``[convergence]``), how candidates are verified (``[verify]``), when the
sweep stops (``[stop]``), which neural library it starts from and shares (``[library]``), and
where verified programs go (``[output]``); ``[tune]`` declares what ``ntpt tune`` may change
and how its Optuna study runs. ``[problem]`` names a registered task, or a user's task: a
``model`` source and ``data`` file (TerpreT's format) with an optional ``hypers`` file, paths
relative to the spec; their contents are read once, travel to the actors with the spec and are
hashed into the sweep id. Other relative paths are taken from the current directory.
A bad spec raises :class:`SpecError` naming the file, the field and what is allowed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from dataclasses import replace
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from ..lang.errors import NTPTError
from ..problems import Problem, file_problem, problem
from ..tasks import FileTask, registered_tasks
from ..train.restarts import TrainConfig

Positive = Annotated[int, Field(ge=1)]
PositiveFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class SpecError(ValueError):
    """A sweep spec that cannot be used; the message names the file and the field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProblemSection(_Section):
    model: str | None = None  # a shipped model name or an NTPT source file; default: the task's
    data: str | None = None  # a user's task: examples in TerpreT's data format (needs model)
    task: str | None = None  # a registered task; with data, the task's name (default: the file's)
    perceptual: bool | None = None  # default: False, or True for a data file with Tensor inputs
    hypers: dict[str, int] | str = Field(default_factory=dict)  # overrides, or a hypers file
    train_batches: list[str] | None = None  # data file batches trained on (default: "train")
    check_batches: list[str] | None = None  # batches a program must get right (default: the others)

    @field_validator("task")
    @classmethod
    def _known_task(cls, task: str | None, info) -> str | None:
        if task is not None and info.data.get("data") is None and task not in registered_tasks():
            raise ValueError(f"unknown task '{task}'; allowed: {', '.join(registered_tasks())}, or "
                             "give model and data (a user's task)")
        return task

    @model_validator(mode="after")
    def _what_to_learn(self) -> ProblemSection:
        if self.data is None and self.task is None:
            raise ValueError("needs a task, or a model and its data")
        if self.data is not None and (self.model is None or not self.model.endswith(".py")):
            raise ValueError("data needs model = the NTPT source (.py) its examples are for")
        if self.data is None and (isinstance(self.hypers, str) or self.train_batches or self.check_batches):
            raise ValueError("a hypers file, train_batches and check_batches go with data")
        return self

    def resolved(self, base: Path) -> dict[str, Any]:
        """This section's fields with file paths taken relative to ``base`` (the spec's folder)."""
        data = self.model_dump(exclude_none=True)
        for key in ("model", "data", "hypers"):
            value = data.get(key)
            if isinstance(value, str) and (key != "model" or value.endswith(".py")):
                data[key] = os.path.normpath(base / value)
        return data


class RestartsSection(_Section):
    total: Positive = 64  # restarts in the sweep
    per_actor: Positive = 16  # restarts vectorised into one tensor computation per actor
    actors: Literal["auto"] | Positive = "auto"  # "auto": one per CPU of the cluster
    seed: Annotated[int, Field(ge=0)] = 0  # restart i gets seed (seed * 100003 + i)


class TrainSection(_Section):
    steps: Positive = TrainConfig.steps  # budget per restart, in steps of batch_size examples
    batch_size: Positive = TrainConfig.batch_size
    lr: PositiveFloat = TrainConfig.lr
    library_lr: PositiveFloat | None = None  # default lr / 100
    init_scale: PositiveFloat = TrainConfig.init_scale
    entropy_start: float = TrainConfig.entropy_start
    entropy_end: float = TrainConfig.entropy_end


class ConvergenceSection(_Section):
    val_every: Positive = TrainConfig.val_every  # steps between validations
    val_size: Positive = TrainConfig.val_size  # validation examples per length
    jump: Fraction = 0.1  # rise of validation accuracy that signals convergence...
    window: Positive = 4  # ...over this many validations
    min_accuracy: Fraction = 0.3  # and the accuracy it must reach
    at_end: bool = True  # also verify every restart when its budget is spent


class VerifySection(_Section):
    beam: Positive = TrainConfig.beam  # candidate programs decoded per restart
    test_size: Positive = TrainConfig.test_size  # held-out examples per test length
    test_lengths: list[Positive] | None = None  # default: the task's (MATH: 2..16 digits)


class StopSection(_Section):
    policy: Literal["first", "programs", "all"] = "first"
    programs: Positive = 1  # with policy = "programs": stop after this many verified programs


class LibrarySection(_Section):
    start: str | None = None  # a library.pt, a run directory or a stored program's folder
    share: bool = True  # share a better verified library with the actors as a new version
    frozen: list[str] = Field(default_factory=list)  # nets used as they are (e.g. ["net_0"])


class OutputSection(_Section):
    store: str = "runs/store"  # the verified-program store (sweep state lives beside it)


TUNABLE = {"lr": "train", "library_lr": "train", "entropy_start": "train", "entropy_end": "train",
           "init_scale": "train", "batch_size": "train", "steps": "train", "beam": "verify"}
"""Parameters ``ntpt tune`` may search, and the spec section each belongs to."""
INTEGER_PARAMETERS = {"batch_size", "steps", "beam"}


class ParamRange(_Section):
    """One searched parameter: ``low``..``high`` (``log`` scale, optional ``step``), or ``choices``."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    step: PositiveFloat | None = None
    choices: list[float] | None = None

    @model_validator(mode="after")
    def _non_empty(self) -> ParamRange:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either choices or low/high, not both")
            if not self.choices:
                raise ValueError("empty range: choices = []")
            return self
        if self.low is None or self.high is None:
            raise ValueError("needs low and high (or choices)")
        if self.low >= self.high:
            raise ValueError(f"empty range: low {self.low:g} >= high {self.high:g}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0 (got low {self.low:g})")
        if self.log and self.step is not None:
            raise ValueError("a log range cannot have a step")
        return self


class TuneSection(_Section):
    """How ``ntpt tune`` searches: its parameters and the Optuna study around them."""

    params: dict[str, ParamRange]  # name -> range; names from TUNABLE
    trials: Positive = 20  # trials the study should have (default of --trials)
    restarts: Positive = 32  # restarts per trial: each trial is a sweep running all of them
    seed: Annotated[int, Field(ge=0)] = 0  # restart seeds of every trial (and the sampler's)
    sampler: Literal["tpe", "random"] = "tpe"
    startup: Positive = 8  # random trials before TPE models the results
    pruner: Literal["percentile", "median", "none"] = "percentile"
    prune_percentile: Annotated[float, Field(gt=0, lt=100)] = 25.0  # prune below this percentile
    prune_startup: Annotated[int, Field(ge=0)] = 5  # finished trials before any is pruned
    prune_warmup: Fraction = 0.5  # share of a trial's restarts done before it may be pruned
    storage: str = "sqlite:///runs/tune.db"  # default of --storage

    @field_validator("params")
    @classmethod
    def _known_params(cls, params: dict[str, ParamRange]) -> dict[str, ParamRange]:
        if not params:
            raise ValueError("no parameter to tune; declare at least one, e.g. "
                             "lr = { low = 0.01, high = 1.0, log = true }")
        for name, found in params.items():
            if name not in TUNABLE:
                raise ValueError(f"unknown parameter '{name}'; allowed: {', '.join(TUNABLE)}")
            if name in INTEGER_PARAMETERS:
                values = [v for v in (found.low, found.high, found.step) if v is not None]
                if not all(float(v).is_integer() for v in [*values, *(found.choices or [])]):
                    raise ValueError(f"{name} is an integer: its range needs integer bounds")
                if min(found.choices or [found.low]) < 1:
                    raise ValueError(f"{name} must be >= 1")
        return params


class SweepSpec(_Section):
    """A validated sweep specification (see the module docstring for its sections)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)]
    description: str = ""
    problem: ProblemSection
    restarts: RestartsSection = RestartsSection()
    train: TrainSection = TrainSection()
    convergence: ConvergenceSection = ConvergenceSection()
    verify: VerifySection = VerifySection()
    stop: StopSection = StopSection()
    library: LibrarySection = LibrarySection()
    output: OutputSection = OutputSection()
    tune: TuneSection | None = None
    _problem: tuple[str, Problem] | None = PrivateAttr(default=None)

    @property
    def sweep_id(self) -> str:
        """``name-<hash>``: the hash covers everything that changes what a restart finds (the
        model source and the examples' contents, not their file names), so a sweep resumes only
        into results of the same search."""
        identity = self.model_dump(include={"problem", "train", "convergence", "verify", "library"})
        identity["seed"] = self.restarts.seed
        if self.problem.data is not None:
            found = self.build_problem()
            for key in ("model", "data", "hypers"):
                identity["problem"].pop(key, None)
            identity["problem"]["contents"] = [found.source_hash, found.task.fingerprint]
            if not isinstance(self.problem.hypers, str):
                identity["problem"]["overrides"] = self.problem.hypers
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
        return f"{self.name}-{digest[:6]}"

    def train_config(self) -> TrainConfig:
        t, c, v = self.train, self.convergence, self.verify
        return TrainConfig(steps=t.steps, batch_size=t.batch_size, lr=t.lr, library_lr=t.library_lr,
                           init_scale=t.init_scale, entropy_start=t.entropy_start,
                           entropy_end=t.entropy_end, val_every=c.val_every, val_size=c.val_size,
                           test_size=v.test_size, beam=v.beam,
                           frozen_nets=tuple(self.library.frozen))

    def build_problem(self) -> Problem:
        """The :class:`Problem` this sweep searches: built (files read) once, then carried with
        the spec, so an actor on another machine needs none of the user's files."""
        key = json.dumps(self.model_dump(include={"problem", "verify"}), sort_keys=True)
        if self._problem is not None and self._problem[0] == key:
            return self._problem[1]
        p = self.problem
        if p.data is not None:
            hypers_file, overrides = (p.hypers, {}) if isinstance(p.hypers, str) else (None, p.hypers)
            found = file_problem(p.model, p.data, hypers_file, hypers=overrides, perceptual=p.perceptual,
                                 train_batches=p.train_batches, check_batches=p.check_batches, name=p.task)
        else:
            found = problem(p.task, perceptual=bool(p.perceptual), model=p.model, hypers=p.hypers)
            if self.verify.test_lengths is not None:
                found = replace(found, task=replace(found.task, test_lengths=tuple(self.verify.test_lengths)))
        self._problem = (key, found)
        return found


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec; raise :class:`SpecError` on the first problem."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"{path}: no such sweep spec") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    return parse_spec(data, source=str(path), base=path.parent)


def parse_spec(data: dict[str, Any], source: str = "<spec>", base: Path | None = None) -> SweepSpec:
    """Validate a spec given as a dict (as read from TOML); file paths in ``[problem]`` are
    taken relative to ``base`` (default: the current directory)."""
    try:
        spec = SweepSpec.model_validate(data)
        if base is not None:
            spec = SweepSpec.model_validate({**data, "problem": spec.problem.resolved(base)})
    except ValidationError as exc:
        raise SpecError(f"{source}: {_describe(exc.errors()[0])}") from None
    try:
        prob = spec.build_problem()
        nets = prob.compile().nets
    except (NTPTError, ValueError) as exc:
        raise SpecError(f"{source}: [problem]: {exc}") from None
    if isinstance(prob.task, FileTask) and spec.verify.test_lengths is not None:
        raise SpecError(f"{source}: [verify] test_lengths: a data file's task is checked on its "
                        "batches; use [problem] check_batches")
    if spec.tune and "library_lr" in spec.tune.params and not (nets and prob.perceptual):
        raise SpecError(f"{source}: [tune] params.library_lr: this problem trains no neural "
                        "library (perceptual = false)")
    unknown = sorted(set(spec.library.frozen) - set(nets))
    if unknown:
        raise SpecError(f"{source}: [library] frozen: {unknown} are not nets of the model "
                        f"(allowed: {', '.join(nets) or 'none'})")
    return spec


def _describe(error: dict[str, Any]) -> str:
    """One validation error as ``[section] field: what is wrong``."""
    loc = [str(part) for part in error["loc"]]
    if error["type"] == "extra_forbidden":
        *parent, unknown = loc
        allowed = ", ".join(_section_model(parent).model_fields)
        where = f"[{'.'.join(parent)}] " if parent else ""
        return f"{where}unknown field '{unknown}'; allowed: {allowed}"
    if error["type"] == "missing" and len(loc) == 1 and loc[0] in SweepSpec.model_fields:
        field = SweepSpec.model_fields[loc[0]]
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            return f"missing section [{loc[0]}]"
    section, field = (loc[0], ".".join(loc[1:])) if len(loc) > 1 else (None, loc[0] if loc else "")
    where = f"[{section}] {field}" if section else field
    if not section and field in SweepSpec.model_fields and field not in ("name", "description"):
        where = f"[{field}]"  # a check of a whole section
    message = error["msg"].removeprefix("Value error, ")
    if "input" in error and error["type"] not in ("missing", "value_error"):
        message += f" (got {error['input']!r})"
    return f"{where}: {message}"


def _section_model(loc: list[str]) -> type[BaseModel]:
    """The model that the validation location ``loc`` points into (dict keys skipped)."""
    model: Any = SweepSpec
    parts = iter(loc)
    for part in parts:
        model = model.model_fields[part].annotation
        if get_origin(model) in (Union, UnionType):  # X | None
            model = next(a for a in get_args(model) if a is not type(None))
        if get_origin(model) is dict:
            model = get_args(model)[1]
            next(parts, None)  # the key
    return model
