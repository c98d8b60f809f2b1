"""The relaxed (differentiable) back-end: every integer is a marginal over its range.

Values have shape ``[R or 1, B or 1, size]``: R independent restarts (each with its own
Params and neural library) and B examples, broadcast where a value does not depend on one of
them. ``z.set_to(f(x, y))`` contracts the marginals with the indicator tensor of ``f``; an
``if`` mixes its arms by the condition's marginal (mean-field over the program's variables).
Each Output element comes back as ``[R, B, size]``: a distribution for an Output set with
``set_to``; for a model that halts, the mass that halted with each value (summing to the
probability of halting).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from .interpret import Interpreter
from .ir import LearnFn, RuntimeFn, Slot
from .model import CompiledModel


@lru_cache(maxsize=256)
def _indicator(fn: RuntimeFn) -> torch.Tensor:
    """``I[a1, ..., ak, out] = 1[out == fn(a1..ak)]`` as a float tensor."""
    return F.one_hot(torch.from_numpy(fn.table), fn.size).float()


@lru_cache(maxsize=4096)
def _mask(mask: tuple[bool, ...]) -> torch.Tensor:
    return torch.tensor(mask, dtype=torch.float32)


@lru_cache(maxsize=4096)
def _one_hot(value: int, size: int) -> torch.Tensor:
    return F.one_hot(torch.tensor(value), size).float().view(1, 1, size)


class RelaxedInterpreter(Interpreter):
    """Runs a compiled model on marginals: ``params[name]`` has shape ``[R, *array_shape,
    size]`` and ``library.probs(fn, args)`` gives a net's output distribution."""

    def __init__(self, model: CompiledModel, params: Mapping[str, torch.Tensor], library,
                 inputs: Mapping[str, torch.Tensor]):
        super().__init__(model, params, library, inputs)
        self.batch = _batch_size(inputs)
        self.restarts = max((v.shape[0] for v in params.values()), default=1)
        self.alive = torch.ones(())
        self.pending = torch.zeros(())
        self.out: dict[Slot, torch.Tensor] = {}

    def const(self, value: int, size: int) -> torch.Tensor:
        return _one_hot(value, size)

    def param(self, slot: Slot) -> torch.Tensor:
        name, index = slot
        return self.params[name][(slice(None), *index)].unsqueeze(1)

    def input(self, slot: Slot) -> torch.Tensor:
        name, index = slot
        values = self.inputs[name][(slice(None), *index)]
        return F.one_hot(values.long(), self.model.decls[name].size).float().unsqueeze(0)

    def fit(self, value: torch.Tensor, size: int) -> torch.Tensor:
        missing = size - value.shape[-1]
        return F.pad(value, (0, missing)) if missing > 0 else value

    def soft_read(self, index, index_sizes, options, size):
        out = 0
        for combo, option in zip(np.ndindex(*index_sizes), options):
            weight = 1
            for i, v in zip(index, combo):
                weight = weight * i[..., v:v + 1]
            out = out + weight * self.fit(option, size)
        return out

    def call(self, fn: RuntimeFn, args: list[torch.Tensor]) -> torch.Tensor:
        table = _indicator(fn)
        if len(args) == 1:
            return args[0] @ table
        outer = args[0]
        for a in args[1:-1]:
            outer = (outer.unsqueeze(-1) * a.unsqueeze(-2)).flatten(-2)
        last = fn.arg_sizes[-1]
        head = table.reshape(-1, last * fn.size)
        mixed = (outer @ head).unflatten(-1, (last, fn.size))
        return (args[-1].unsqueeze(-2) @ mixed).squeeze(-2)

    def apply_net(self, fn: LearnFn, args: list[torch.Tensor]) -> torch.Tensor:
        return self.library.probs(fn, args)

    def test(self, value: torch.Tensor, mask) -> torch.Tensor:
        return value @ _mask(mask)

    def same(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        n = min(a.shape[-1], b.shape[-1])
        return (a[..., :n] * b[..., :n]).sum(-1)

    def always(self) -> torch.Tensor:
        return torch.ones(())

    def both(self, a, b):
        return a * b

    def negate(self, w):
        return 1 - w

    def possible(self, w) -> bool:
        return bool((w != 0).any())

    def merge(self, weights, values):
        out = 0
        for w, v in zip(weights, values):
            out = out + w.unsqueeze(-1) * v
        return out

    def emit(self, slot: Slot, value: torch.Tensor, path: torch.Tensor) -> None:
        mass = self.alive * path
        self.out[slot] = self.out.get(slot, 0) + mass.unsqueeze(-1) * value
        self.pending = self.pending + path

    def end_of_statement(self) -> None:
        self.alive = self.alive * (1 - self.pending).clamp(min=0)
        self.pending = torch.zeros(())

    def output(self, slot: Slot, env) -> torch.Tensor:
        if self.model.halts:
            value = self.out.get(slot, torch.zeros(1, 1, self.model.decls[slot[0]].size))
        else:
            value = env[slot]
        return value.expand(self.restarts if value.shape[0] == 1 else -1, self.batch, -1)


def _batch_size(inputs: Mapping[str, torch.Tensor]) -> int:
    sizes = {v.shape[0] for v in inputs.values()}
    if len(sizes) != 1:
        raise ValueError(f"inputs disagree on the batch size: {sorted(sizes)}")
    return sizes.pop()


def run_relaxed(model: CompiledModel, param_probs: Mapping[str, torch.Tensor], library,
                inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Output marginals ``{output: [R, B, size]}``; in a model that halts they sum to the
    probability of halting, else to 1."""
    return RelaxedInterpreter(model, param_probs, library, inputs).run()
