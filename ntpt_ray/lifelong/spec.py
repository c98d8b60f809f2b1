"""Lifelong experiment specs (``search/lifelong.toml``), validated into typed objects.

``[tasks]`` gives the lifetime's task order; ``[data]`` the fixed pools; ``[schedule]`` the
time-evolving task distribution, batch size and evaluation period; ``[lifetimes]`` how many
independent lifetimes each model gets and how many are vectorised into one Ray task;
``[ntpt]`` and ``[baselines]`` the learners' optimisers and learning rates; ``[tune]`` the
learning-rate grid ``--tune`` searches on the validation pools with a shorter schedule.
A bad spec raises :class:`~ntpt_ray.sweep.spec.SpecError` naming the file and the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..data.tasks import TASKS
from ..sweep.spec import SpecError, apply_overrides, describe_error, read_toml
from .baselines import BASELINES
from .schedule import Schedule

MODELS = ("ntpt", *BASELINES)
PAPER_TASKS = TASKS[:8]  # ADD2X2 top, left, bottom, right, then APPLY2X2 in the same order
Positive = Annotated[int, Field(ge=1, le=10**8)]
Rate = Annotated[float, Field(gt=0, le=10)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class TasksSection(_Section):
    order: list[str] = Field(default_factory=lambda: list(PAPER_TASKS))

    @field_validator("order")
    @classmethod
    def _paper_tasks(cls, order: list[str]) -> list[str]:
        unknown = [t for t in order if t not in PAPER_TASKS]
        if unknown or not order or len(set(order)) != len(order):
            raise ValueError(f"distinct tasks out of {', '.join(PAPER_TASKS)}")
        return order


class DataSection(_Section):
    train_size: Positive = 1000  # distinct training grids per task, fixed for the lifetime
    val_size: Positive = 1000  # validation grids per task (held-out training images)
    test_size: Positive = 10_000  # test grids per task (test images)
    eval_size: Positive = 1000  # the fixed subset of each test set evaluated during training
    seed: Annotated[int, Field(ge=0)] = 0


class ScheduleSection(_Section):
    per_task: Positive = 64_000  # P: examples per task; a lifetime is K x P
    width: Annotated[float, Field(gt=0, le=100)] = 1.0  # a task's triangle, in units of P
    batch_size: Positive = 50
    eval_every: Positive = 8000  # examples between evaluations


class LifetimesSection(_Section):
    count: Positive = 10  # lifetimes per model
    per_task: Positive = 5  # lifetimes vectorised into one Ray task (they share the data stream)
    seed: Annotated[int, Field(ge=0)] = 0  # lifetime i of a model has seed seed * 1000 + i


class NTPTSection(_Section):
    optimizer: Literal["rmsprop", "adam"] = "rmsprop"
    lr: Rate = 0.1  # program Params
    library_lr: Rate = 0.001  # net_0 / net_1 (the paper: 100x smaller)
    # The optimiser's epsilon for the library: below this gradient size (per weight) updates are
    # no longer normalised, so a net the programs do not call stays (nearly) unchanged.
    library_eps: Annotated[float, Field(gt=0, le=1)] = 1e-8
    init_scale: Rate = 1.0
    entropy: float = 0.0  # weight of the Params' entropy in the loss (0: off, as the paper)
    # A program verified at an evaluation becomes that lifetime's fixed program for its task, so
    # the library then learns through the discrete program alone (the paper decodes only at the end).
    commit_verified: bool = False
    # "committed": once a lifetime's committed programs call a net, only they train it (a task
    # still searching cannot corrupt it); "all": every task's loss trains every net it reaches.
    library_teachers: Literal["all", "committed"] = "all"
    # Examples of a task after which a lifetime's still uncommitted program for it is drawn
    # afresh (checked at evaluations; 0: never). Needs commit_verified.
    restart_after: Annotated[int, Field(ge=0, le=10**8)] = 0
    # Programs per task trained side by side in each lifetime (sharing its nets); the first
    # verified one is the lifetime's program.
    candidates: Annotated[int, Field(ge=1, le=64)] = 1
    beam: Positive = 256  # programs decoded per task at each evaluation
    final_beam: Positive = 4096  # at the end


class BaselinesSection(_Section):
    optimizer: Literal["rmsprop", "adam"] = "rmsprop"
    lr: dict[str, Rate] = Field(default_factory=lambda: {m: 0.001 for m in BASELINES})

    @field_validator("lr")
    @classmethod
    def _every_baseline(cls, lr: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(lr) - set(BASELINES))
        if unknown:
            raise ValueError(f"unknown baselines {unknown}; allowed: {', '.join(BASELINES)}")
        return {m: lr.get(m, 0.001) for m in BASELINES}


class TuneSection(_Section):
    per_task: Positive = 8000  # the shorter schedule of a tuning run
    lifetimes: Positive = 1
    ntpt_lr: list[Rate] = Field(default_factory=lambda: [0.03, 0.1, 0.3])  # library_lr stays lr / 100
    baseline_lr: list[Rate] = Field(default_factory=lambda: [0.0003, 0.001, 0.003, 0.01])


class LifelongSpec(_Section):
    name: str = "lifelong"
    description: str = ""
    tasks: TasksSection = TasksSection()
    data: DataSection = DataSection()
    schedule: ScheduleSection = ScheduleSection()
    lifetimes: LifetimesSection = LifetimesSection()
    ntpt: NTPTSection = NTPTSection()
    baselines: BaselinesSection = BaselinesSection()
    tune: TuneSection = TuneSection()

    def make_schedule(self, per_task: int | None = None) -> Schedule:
        return Schedule(tuple(self.tasks.order), per_task or self.schedule.per_task, self.schedule.width)

    def lr_of(self, model: str) -> float:
        return self.ntpt.lr if model == "ntpt" else self.baselines.lr[model]

    def protocol(self) -> dict[str, Any]:
        """The settings a run used, as written into results.json."""
        return self.model_dump(mode="json")


def load_lifelong_spec(path: str | Path, overrides: Sequence[str] = ()) -> LifelongSpec:
    """Read and validate a lifelong spec, with ``SECTION.FIELD=VALUE`` overrides (VALUE in TOML,
    e.g. ``ntpt.library_lr=1e-4``); raise :class:`SpecError` on the first problem."""
    path = Path(path)
    data = apply_overrides(read_toml(path, "lifelong spec"), overrides, "ntpt.library_lr=1e-4")
    return parse_lifelong_spec(data, str(path))


def parse_lifelong_spec(data: dict[str, Any], source: str = "<spec>") -> LifelongSpec:
    try:
        spec = LifelongSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"{source}: {describe_error(exc.errors()[0], LifelongSpec)}") from None
    if spec.ntpt.restart_after and not spec.ntpt.commit_verified:
        raise SpecError(f"{source}: [ntpt] restart_after: needs commit_verified = true")
    if spec.ntpt.library_teachers == "committed" and not spec.ntpt.commit_verified:
        raise SpecError(f"{source}: [ntpt] library_teachers: \"committed\" needs commit_verified = true")
    if spec.data.eval_size > spec.data.test_size:
        raise SpecError(f"{source}: [data] eval_size: at most test_size ({spec.data.test_size})")
    return spec
