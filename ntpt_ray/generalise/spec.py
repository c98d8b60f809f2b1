"""Generalisation specs (``search/math_generalisation.toml``), validated into typed objects.

``[library]`` says where ``net_0``/``net_1`` come from: a ``library.pt`` (a LibrarySnapshot)
or a lifelong run directory (its NTPT lifetime with the best final ``net_0``); with no
``start``, the fallback runs the shipped ``add2x2`` and ``apply2x2`` sweeps into
``DIR/store`` and takes APPLY2X2's library. ``[ntpt]`` is the MATH sweep (a sweep spec,
with its restart count and stop policy here); ``[continued]`` the training of the verified
restart's nets with its program fixed; ``[lstm]`` and ``[ngpu]`` the baselines' sizes;
``[baselines]`` their training budget and device; ``[evaluate]`` the test lengths and sizes.
Shipped defaults are a small configuration for a 2-core CPU; the paper's sizes are noted
beside each field (and in the spec file). A bad spec raises
:class:`~ntpt_ray.sweep.spec.SpecError` naming the file and the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..sweep.spec import SpecError, apply_overrides, describe_error, read_toml

BASELINES = ("lstm-5", "lstm-2", "lstm-onehot", "ngpu-onehot")
"""LSTM on images trained on 1..5 and on 2 digits; LSTM and Neural GPU on one-hot symbols, 1..5."""
Positive = Annotated[int, Field(ge=1, le=10**7)]
Rate = Annotated[float, Field(gt=0, le=10)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class LibrarySection(_Section):
    start: str | None = None  # a library.pt or a lifelong run directory; None: the add2x2/apply2x2 fallback


class NTPTSection(_Section):
    sweep: str = "math"  # the MATH sweep spec (a file or a shipped name); its [library] start is replaced
    restarts: Annotated[int, Field(ge=1, le=100_000)] = 32  # the paper: 100
    stop: Literal["first", "all"] = "all"  # "all" counts verified restarts out of `restarts`


class ContinuedSection(_Section):
    lr: Rate = 0.001  # Adam on net_0/net_1, the program fixed
    batch_size: Positive = 32  # 2-digit training expressions per step
    eval_every: Positive = 100  # steps between net_0 validations (MNIST validation split)
    patience: Positive = 4  # validations without improvement before stopping
    max_steps: Positive = 1500


class LSTMSection(_Section):
    hidden: Positive = 128  # the paper: 1024
    layers: Annotated[int, Field(ge=1, le=8)] = 2  # the paper: 3
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1  # between layers


class NGPUSection(_Section):
    filters: Positive = 24  # the paper: 512
    height: Annotated[int, Field(ge=1, le=16)] = 4  # Kaiser & Sutskever: 4
    layers: Annotated[int, Field(ge=1, le=4)] = 2  # CGRUs per step (their default: 2)


class BaselinesSection(_Section):
    models: list[str] = Field(default_factory=lambda: list(BASELINES))
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: cuda where the worker has a GPU
    lr: Rate = 0.001  # Adam; the library nets of a perceptual LSTM at embed_lr
    embed_lr: Rate = 0.00001  # the paper: 100x slower than the LSTM
    batch_size: Positive = 64
    max_steps: Positive = 1500  # the budget; training stops earlier on a validation plateau
    eval_every: Positive = 150
    patience: Positive = 4  # validations without improvement before stopping
    val_size: Positive = 500  # validation expressions per training length
    long: Annotated[int, Field(ge=1, le=64)] = 5  # "up to 5 digits"
    short: Annotated[int, Field(ge=1, le=64)] = 2  # lstm-2: this many digits only

    @field_validator("models")
    @classmethod
    def _known(cls, models: list[str]) -> list[str]:
        unknown = sorted(set(models) - set(BASELINES))
        if unknown or len(set(models)) != len(models):
            raise ValueError(f"distinct models out of {', '.join(BASELINES)} (got {models})")
        return models


class EvaluateSection(_Section):
    max_length: Annotated[int, Field(ge=1, le=64)] = 16  # lengths 1..max_length digits
    examples: Annotated[int, Field(ge=1, le=100_000)] = 1000  # per length; the paper: 10,000
    seed: Annotated[int, Field(ge=0)] = 0


class GeneraliseSpec(_Section):
    name: str = "math-generalisation"
    description: str = ""
    library: LibrarySection = LibrarySection()
    ntpt: NTPTSection = NTPTSection()
    continued: ContinuedSection = ContinuedSection()
    lstm: LSTMSection = LSTMSection()
    ngpu: NGPUSection = NGPUSection()
    baselines: BaselinesSection = BaselinesSection()
    evaluate: EvaluateSection = EvaluateSection()

    @property
    def lengths(self) -> list[int]:
        return list(range(1, self.evaluate.max_length + 1))

    def train_lengths(self, model: str) -> list[int]:
        """The expression lengths (digits) ``model`` is trained on."""
        if model in ("ntpt", "ntpt-onehot"):
            return [2]
        if model == "lstm-2":
            return [self.baselines.short]
        return list(range(1, self.baselines.long + 1))

    def protocol(self) -> dict[str, Any]:
        """The settings a run used, as written into results.json."""
        return self.model_dump(mode="json")


def load_generalise_spec(path: str | Path, overrides: Sequence[str] = ()) -> GeneraliseSpec:
    """Read and validate a generalisation spec, with ``SECTION.FIELD=VALUE`` overrides (VALUE in
    TOML, e.g. ``lstm.hidden=1024``); raise :class:`SpecError` on the first problem."""
    path = Path(path)
    data = apply_overrides(read_toml(path, "generalisation spec"), overrides, "lstm.hidden=1024")
    return parse_generalise_spec(data, str(path))


def parse_generalise_spec(data: dict[str, Any], source: str = "<spec>") -> GeneraliseSpec:
    try:
        return GeneraliseSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"{source}: {describe_error(exc.errors()[0], GeneraliseSpec)}") from None
