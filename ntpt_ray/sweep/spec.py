"""Sweep specifications: the TOML files in ``search/``, validated into typed objects.

A spec says what to learn (``[problem]``), how many restarts and how they are packed into
actors (``[restarts]``), each restart's budget, learning rates and device (``[train]``), when a restart
counts as converged (``[convergence]``), how candidates are verified (``[verify]``), when the
sweep stops (``[stop]``: a policy, optionally a time limit), which neural library it starts
from and shares (``[library]``), and where verified programs go (``[output]``); ``[search]``
picks the search method (gradient descent, or random, exhaustive or SMT search of a symbolic
problem's discrete programs); ``[tune]`` declares what ``ntpt tune`` may change and how its
Optuna study runs. ``[problem]`` names a registered task, or a user's task: a
``model`` source and ``data`` file (TerpreT's format) with an optional ``hypers`` file, paths
relative to the spec; their contents are read once, travel to the actors with the spec and are
hashed into the sweep id. Other relative paths are taken from the current directory.
A bad spec raises :class:`SpecError` naming the file, the field and what is allowed. Types are
strict (``true`` is no integer, ``"no"`` no boolean), numbers finite, and every size a spec sets
has a maximum (the ``MAX_*`` constants below, each raised for a run by the environment variable
``NTPT_MAX_*`` of the same name, e.g. ``NTPT_MAX_BEAM=100000``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from ..lang.errors import NTPTError
from ..methods.base import check_searchable
from ..problems import Problem, file_problem, problem
from ..tasks import FileTask, registered_tasks
from ..train.config import TrainConfig
from ..train.device import Device

MAX_RESTARTS = 100_000  # [restarts] total, [tune] restarts
MAX_PER_ACTOR = 256  # [restarts] per_actor: restarts held in one actor's tensors
MAX_BATCH = 1024  # [train] batch_size: examples per restart and step
MAX_EXAMPLES = 10_000  # [convergence] val_size, [verify] test_size: examples per length
MAX_BEAM = 65_536  # [verify] beam: candidate programs decoded per restart
MAX_LENGTH = 64  # each of [verify] test_lengths (MATH: 64 digits take half a minute to compile)
MAX_HYPER = 100  # each [problem] hypers override (model sizes: digits, registers, steps)
MAX_SCREEN = 65_536  # [search] batch: programs screened per vectorised batch


class SpecError(ValueError):
    """A sweep spec that cannot be used; the message names the file and the field."""


def limit(name: str) -> int:
    """The maximum ``name`` (``"MAX_BEAM"``): ``$NTPT_MAX_BEAM`` when set, else the constant."""
    raw = os.environ.get(f"NTPT_{name}")
    if raw is None:
        return globals()[name]
    if not raw.strip().isdigit():
        raise ValueError(f"NTPT_{name} must be a positive integer, got {raw!r}")
    return int(raw)


def _at_most(name: str, value: int) -> int:
    if value > (bound := limit(name)):
        raise ValueError(f"{value} is above the limit of {bound} (set NTPT_{name} to raise it)")
    return value


def _bounded(name: str) -> Any:
    """The type of a positive integer of at most :func:`limit` ``(name)``."""
    return Annotated[int, Field(ge=1), AfterValidator(partial(_at_most, name))]


Positive = Annotated[int, Field(ge=1)]
RestartCount = _bounded("MAX_RESTARTS")
SlotCount = _bounded("MAX_PER_ACTOR")
BatchSize = _bounded("MAX_BATCH")
ExampleCount = _bounded("MAX_EXAMPLES")
BeamWidth = _bounded("MAX_BEAM")
Length = _bounded("MAX_LENGTH")
BatchScreen = _bounded("MAX_SCREEN")
PositiveFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class ProblemSection(_Section):
    model: str | None = None  # a shipped model name or an NTPT source file; default: the task's
    data: str | None = None  # a user's task: examples in TerpreT's data format (needs model)
    task: str | None = None  # a registered task; with data, the task's name (default: the file's)
    perceptual: bool | None = None  # default: False, or True for a data file with Tensor inputs
    hypers: dict[str, int] | str = Field(default_factory=dict)  # overrides, or a hypers file
    train_batches: Annotated[list[str], Field(min_length=1)] | None = None  # default: ["train"]
    check_batches: list[str] | None = None  # batches a program must get right (default: the others)

    @field_validator("task")
    @classmethod
    def _known_task(cls, task: str | None, info) -> str | None:
        if task is not None and info.data.get("data") is None and task not in registered_tasks():
            raise ValueError(f"unknown task '{task}'; allowed: {', '.join(registered_tasks())}, or "
                             "give model and data (a user's task)")
        return task

    @field_validator("hypers")
    @classmethod
    def _hypers_at_most(cls, hypers: dict[str, int] | str) -> dict[str, int] | str:
        for name, value in ({} if isinstance(hypers, str) else hypers).items():
            try:
                _at_most("MAX_HYPER", value)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return hypers

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
    total: RestartCount = 64  # restarts in the sweep
    per_actor: SlotCount = 16  # restarts vectorised into one tensor computation per actor
    actors: Literal["auto"] | Positive = "auto"  # "auto": one per CPU of the cluster
    seed: Annotated[int, Field(ge=0)] = 0  # restart i gets seed (seed * 100003 + i)


class TrainSection(_Section):
    steps: Positive = TrainConfig.steps  # budget per restart, in steps of batch_size examples
    batch_size: BatchSize = TrainConfig.batch_size
    lr: PositiveFloat = TrainConfig.lr
    library_lr: PositiveFloat | None = None  # default lr / 100
    init_scale: PositiveFloat = TrainConfig.init_scale
    entropy_start: float = TrainConfig.entropy_start
    entropy_end: float = TrainConfig.entropy_end
    device: Device = "auto"  # auto: cuda where the cluster (or this machine) has a GPU


class ConvergenceSection(_Section):
    val_every: Positive = TrainConfig.val_every  # steps between validations
    val_size: ExampleCount = TrainConfig.val_size  # validation examples per length
    jump: Fraction = 0.1  # rise of validation accuracy that signals convergence...
    window: Positive = 4  # ...over this many validations
    min_accuracy: Fraction = 0.3  # and the accuracy it must reach
    at_end: bool = True  # also verify every restart when its budget is spent


class VerifySection(_Section):
    beam: BeamWidth = TrainConfig.beam  # candidate programs decoded per restart
    test_size: ExampleCount = TrainConfig.test_size  # held-out examples per test length
    test_lengths: Annotated[list[Length], Field(min_length=1)] | None = None  # default: MATH 2..16

    @field_validator("test_lengths")
    @classmethod
    def _distinct(cls, lengths: list[int] | None) -> list[int] | None:
        if lengths is not None and len(set(lengths)) < len(lengths):
            raise ValueError(f"each length once, got {lengths}")
        return lengths


class StopSection(_Section):
    policy: Literal["first", "programs", "all"] = "first"
    programs: Positive = 1  # with policy = "programs": stop after this many verified programs
    seconds: PositiveFloat | None = None  # also stop a session this long after its first actor is up


class SearchSection(_Section):
    """How programs are searched: gradient descent on the relaxed model, or a discrete method
    (symbolic problems only; see :mod:`ntpt_ray.methods`)."""

    method: Literal["gradient", "random", "enumerate", "smt"] = "gradient"
    programs: Annotated[int, Field(ge=1, le=10**12)] = 100_000  # random: per restart; enumerate: per shard
    batch: BatchScreen = 4096  # programs screened per vectorised batch (one actor call)
    smt_examples: ExampleCount = 4  # training examples the solver starts from
    smt_rounds: Positive = 64  # solver calls per smt restart (each failure adds an example)
    smt_timeout: PositiveFloat = 120.0  # seconds per solver call

    def settings(self):
        """These settings as the :class:`~ntpt_ray.methods.SearchSettings` of a discrete method."""
        from ..methods import SearchSettings

        return SearchSettings(**self.model_dump())


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
    restarts: RestartCount = 32  # restarts per trial: each trial is a sweep running all of them
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
    search: SearchSection = SearchSection()
    tune: TuneSection | None = None
    _problem: tuple[str, Problem] | None = PrivateAttr(default=None)

    @property
    def sweep_id(self) -> str:
        """``name-<hash>``: the hash covers everything that changes what a restart finds (the
        model source and the examples' contents, not their file names), so a sweep resumes only
        into results of the same search."""
        identity = self.model_dump(include={"problem", "train", "convergence", "verify", "library"},
                                   exclude={"train": {"device"}})  # where it runs: not what it finds
        identity["seed"] = self.restarts.seed
        if self.search.method != "gradient":  # gradient sweeps keep the ids they had
            identity["search"] = self.search.model_dump()
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


def read_toml(path: Path, kind: str = "sweep spec") -> dict[str, Any]:
    """The TOML table in ``path``; :class:`SpecError` naming the file when it is missing or bad."""
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"{path}: no such {kind}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], example: str) -> dict[str, Any]:
    """``data`` with each ``SECTION.FIELD=VALUE`` of ``overrides`` set (VALUE in TOML);
    :class:`SpecError` naming the item when one is malformed (``example`` shows the form)."""
    for item in overrides:
        key, sep, value = item.partition("=")
        section, dot, field = key.strip().partition(".")
        try:
            parsed = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = None
        if not (sep and dot and section and field) or parsed is None:
            raise SpecError(f"--set {item!r}: expected SECTION.FIELD=VALUE with a TOML value, e.g. {example}")
        if not isinstance(data.setdefault(section, {}), dict):
            raise SpecError(f"--set {item!r}: '{section}' is not a section")
        data[section][field] = parsed
    return data


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec; raise :class:`SpecError` on the first problem."""
    path = Path(path)
    return parse_spec(read_toml(path), source=str(path), base=path.parent)


def parse_spec(data: dict[str, Any], source: str = "<spec>", base: Path | None = None) -> SweepSpec:
    """Validate a spec given as a dict (as read from TOML); file paths in ``[problem]`` are
    taken relative to ``base`` (default: the current directory)."""
    try:
        spec = SweepSpec.model_validate(data)
        if base is not None:
            spec = SweepSpec.model_validate({**data, "problem": spec.problem.resolved(base)})
    except ValidationError as exc:
        raise SpecError(f"{source}: {describe_error(exc.errors()[0], SweepSpec)}") from None
    try:
        prob = spec.build_problem()
        nets = prob.compile().nets
    except (NTPTError, ValueError) as exc:
        raise SpecError(f"{source}: [problem]: {exc}") from None
    try:
        check_searchable(spec.search.method, prob.perceptual)
    except ValueError as exc:
        raise SpecError(f"{source}: [search] method: {exc}") from None
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


def describe_error(error: dict[str, Any], root: type[BaseModel]) -> str:
    """One validation error of the spec model ``root`` as ``[section] field: what is wrong``."""
    loc = [str(part) for part in error["loc"]]
    if error["type"] == "extra_forbidden":
        *parent, unknown = loc
        allowed = ", ".join(_section_model(parent, root).model_fields)
        where = f"[{'.'.join(parent)}] " if parent else ""
        return f"{where}unknown field '{unknown}'; allowed: {allowed}"
    if error["type"] == "missing" and len(loc) == 1 and loc[0] in root.model_fields:
        field = root.model_fields[loc[0]]
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            return f"missing section [{loc[0]}]"
    section, field = (loc[0], ".".join(loc[1:])) if len(loc) > 1 else (None, loc[0] if loc else "")
    where = f"[{section}] {field}" if section else field
    if not section and field in root.model_fields and field not in ("name", "description"):
        where = f"[{field}]"  # a check of a whole section
    message = error["msg"].removeprefix("Value error, ")
    if "input" in error and error["type"] not in ("missing", "value_error"):
        message += f" (got {error['input']!r})"
    return f"{where}: {message}"


def _section_model(loc: list[str], root: type[BaseModel]) -> type[BaseModel]:
    """The model that the validation location ``loc`` points into (dict keys skipped)."""
    model: Any = root
    parts = iter(loc)
    for part in parts:
        model = model.model_fields[part].annotation
        if get_origin(model) in (Union, UnionType):  # X | None
            model = next(a for a in get_args(model) if a is not type(None))
        if get_origin(model) is dict:
            model = get_args(model)[1]
            next(parts, None)  # the key
    return model
