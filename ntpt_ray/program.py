"""A learned discrete program: fixed Param values for a model, runnable on new inputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import torch

from .lang.concrete import run_path
from .lang.discrete import run_discrete
from .lang.ir import slot_name
from .lang.specialise import specialise
from .problems import Problem, read_model_source
from .tasks import FileTask, get_task, registered_tasks
from .tasks.base import DetachedTask
from .tasks.files import instance_value


@dataclass
class LearnedProgram:
    """Param values (and the probability each had when decoded) for ``problem``'s model."""

    problem: Problem
    values: dict[str, np.ndarray]
    confidence: dict[str, np.ndarray] = field(default_factory=dict)

    def run(self, inputs: Mapping[str, torch.Tensor], *, library,
            hypers: dict[str, int] | None = None) -> dict[str, torch.Tensor]:
        """The program's Output elements ``{name: [B]}`` on a batch (``-1`` where it never wrote
        one), with the model compiled for ``hypers`` (default: the training examples')."""
        outputs = run_programs(self.problem, {k: v[None] for k, v in self.values.items()}, inputs,
                               hypers=hypers, library=library)
        return {name: value[0] for name, value in outputs.items()}

    def run_instance(self, instance: Mapping[str, Any], *, library,
                     hypers: dict[str, int] | None = None) -> dict[str, Any]:
        """Run on one instance given as ``{Input name: integer or nested list}`` (TerpreT's
        data format) and return ``{Output name: value}`` (nested lists for Output arrays; -1
        where the program never wrote a value)."""
        module = self.problem.parsed().module(**self.problem.model_hypers(hypers))  # not unrolled
        decls = module.decls.values()
        for decl in decls:
            if decl.kind == "Param" and decl.name in self.values \
                    and np.shape(self.values[decl.name]) != decl.shape:
                raise ValueError(f"with hypers {module.hypers} Param '{decl.name}' has shape {decl.shape}, "
                                 f"but the program's has shape {np.shape(self.values[decl.name])}: it runs "
                                 "only on models of its own Param shapes")
        model_inputs = {d.name: d for d in decls if d.kind == "Input"}
        unknown = sorted(set(instance) - set(model_inputs))
        if unknown:
            raise ValueError(f"'{unknown[0]}' is not an Input of the model "
                             f"(Inputs: {', '.join(model_inputs)})")
        inputs = {}
        for name, decl in model_inputs.items():
            if decl.is_tensor:
                inputs[name] = _tensor_value(instance.get(name), (*decl.shape, *decl.tensor_shape), name)
            else:
                inputs[name] = torch.from_numpy(instance_value(instance.get(name), decl, f"Input '{name}'",
                                                               False)[None])
        outputs = self.run(inputs, library=library, hypers=hypers)
        result = {}
        for decl in (d for d in decls if d.kind == "Output"):
            array = np.zeros(decl.shape, dtype=np.int64)
            for slot in decl.slots():
                array[slot[1]] = int(outputs[slot_name(slot)][0])
            result[decl.name] = array.tolist()
        return result

    def listing(self) -> str:
        """The program as readable NTPT-style source (see :mod:`ntpt_ray.listing`)."""
        from .listing import render

        return render(self)

    def to_dict(self) -> dict[str, Any]:
        p = self.problem
        record = {
            "task": p.task.name, "model": p.model, "hypers": p.hypers, "perceptual": p.perceptual,
            "task_hypers": p.task.train_hypers, "model_hash": p.source_hash,
            "values": {k: np.asarray(v).tolist() for k, v in self.values.items()},
            "confidence": {k: np.round(np.asarray(v), 4).tolist() for k, v in self.confidence.items()},
        }
        if isinstance(p.task, FileTask):
            record["data_fingerprint"] = p.task.fingerprint
        return record

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | None = None) -> LearnedProgram:
        """Inverse of :meth:`to_dict`; ``source`` is the model's text (default: the shipped model
        the record names)."""
        registered = data["task"] in registered_tasks()
        task = get_task(data["task"]) if registered else DetachedTask(
            data["task"], data.get("task_hypers", {}))
        if source is None:
            source, _ = read_model_source(data["model"])
        p = Problem(task, data["model"], source, dict(data["hypers"]), data["perceptual"])
        return cls(p, {k: np.asarray(v, dtype=np.int64) for k, v in data["values"].items()},
                   {k: np.asarray(v) for k, v in data.get("confidence", {}).items()})

    def to_json(self) -> str:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2).decode()


def run_programs(problem: Problem, values: Mapping[str, np.ndarray], inputs: Mapping[str, torch.Tensor],
                 *, library, hypers: dict[str, int] | None = None) -> dict[str, torch.Tensor]:
    """Output elements ``{name: [P, B]}`` of P programs (``values[name]``: ``[P, *shape]``) on
    one batch, the model compiled for ``hypers`` (default: the training examples'). One program
    on one example runs along its path alone (:mod:`.lang.concrete`), in time linear in it; one
    program on a batch runs the model specialised to it (:mod:`.lang.specialise`)."""
    batch = next(iter(inputs.values())).shape[0] if inputs else 1
    one_program = all(np.shape(v)[0] == 1 for v in values.values())
    if one_program and batch == 1:
        module = problem.parsed().module(**problem.model_hypers(hypers))
        outputs = run_path(module, {k: np.asarray(v)[0] for k, v in values.items()}, library, inputs)
        return {name: torch.tensor([[value]]) for name, value in outputs.items()}
    model = problem.compile(hypers)
    if one_program:
        program = {k: np.asarray(v)[0] for k, v in values.items() if k in model.params}
        return run_discrete(specialise(model, program), {}, library, inputs)
    params = {k: torch.as_tensor(np.asarray(v)) for k, v in values.items() if k in model.params}
    return run_discrete(model, params, library, inputs)


def _tensor_value(raw: Any, shape: tuple[int, ...], name: str) -> torch.Tensor:
    """A Tensor input given as nested lists of numbers (images in 0..1), as a batch of one."""
    try:
        array = np.asarray(raw, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"Tensor Input '{name}': expected nested lists of numbers of shape "
                         f"{shape}") from None
    if array.shape != shape:
        raise ValueError(f"Tensor Input '{name}': has shape {array.shape}, the model declares {shape}")
    return torch.from_numpy(array[None])
