"""A learned discrete program: fixed Param values for a model, runnable on new inputs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .lang.discrete import run_discrete
from .problems import Problem


@dataclass
class LearnedProgram:
    """Param values (and the probability each had when decoded) for ``problem``'s model."""

    problem: Problem
    values: dict[str, np.ndarray]
    confidence: dict[str, np.ndarray] = field(default_factory=dict)

    def run(self, inputs: Mapping[str, torch.Tensor], *, length: int, library) -> torch.Tensor:
        """The program's output on a batch (``-1`` where it never wrote one)."""
        return run_programs(self.problem, {k: v[None] for k, v in self.values.items()}, inputs,
                            length=length, library=library)[0]

    def listing(self) -> str:
        """The program as readable NTPT-style source (see :mod:`ntpt_ray.listing`)."""
        from .listing import render

        return render(self)

    def to_dict(self) -> dict[str, Any]:
        p = self.problem
        return {
            "task": p.task, "model": p.model, "hypers": p.hypers, "perceptual": p.perceptual,
            "values": {k: np.asarray(v).tolist() for k, v in self.values.items()},
            "confidence": {k: np.round(np.asarray(v), 4).tolist() for k, v in self.confidence.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LearnedProgram":
        from .problems import problem

        p = problem(data["task"], perceptual=data["perceptual"], model=data["model"],
                    hypers=data["hypers"])
        return cls(p, {k: np.asarray(v, dtype=np.int64) for k, v in data["values"].items()},
                   {k: np.asarray(v) for k, v in data.get("confidence", {}).items()})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def run_programs(problem: Problem, values: Mapping[str, np.ndarray], inputs: Mapping[str, torch.Tensor],
                 *, length: int, library) -> torch.Tensor:
    """Outputs ``[P, B]`` of P programs (``values[name]``: ``[P, *shape]``) on one batch."""
    model = problem.compile(length)
    params = {k: torch.as_tensor(np.asarray(v)) for k, v in values.items() if k in model.params}
    return single_output(run_discrete(model, params, library, inputs))


def single_output(outputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The value of a model's one Output element (training and verification compare it)."""
    if len(outputs) != 1:
        raise ValueError(f"a trainable model has exactly one Output element, got {sorted(outputs)}")
    return next(iter(outputs.values()))
