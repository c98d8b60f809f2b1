"""The relaxed (differentiable) back-end: every integer is a marginal over its range.

Values have shape ``[R or 1, B or 1, size]``: R independent restarts (each with its own
Params and neural library) and B examples, broadcast where a value does not depend on one of
them. ``z.set_to(f(x, y))`` contracts the marginals with the indicator tensor of ``f``; an
``if`` mixes its arms by the condition's marginal (mean-field over the program's variables).
Each Output element comes back as ``[R, B, size]``: a distribution for an Output set with
``set_to``; for a model that halts, the mass that halted with each value (summing to the
probability of halting).

Two implementations compute the same values (to float rounding): :class:`RelaxedInterpreter`,
the reference (one dense contraction per ``@Runtime`` call, one host sync per branch arm), and
:class:`FastRelaxedInterpreter` (the default, see ``PATHS``), which decides arm liveness once per
compiled model, contracts ``@Runtime`` tables through their entries (:mod:`.tables`), merges
each branch in one product and computes the arms that differ only in what they read together
(:mod:`.stacking`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from .interpret import Interpreter
from .ir import Block, Branch, LearnFn, Read, RuntimeFn, Slot
from .model import CompiledModel
from .stacking import Stacked, stack_arms
from .tables import TableBags, contract


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
        tensors = [*params.values(), *inputs.values()]
        self.device = tensors[0].device if tensors else torch.device("cpu")
        self.alive = torch.ones((), device=self.device)
        self.pending = torch.zeros((), device=self.device)
        self.out: dict[Slot, torch.Tensor] = {}

    def const(self, value: int, size: int) -> torch.Tensor:
        return _one_hot(value, size).to(self.device)

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
        table = _indicator(fn).to(self.device)
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
        return value @ _mask(mask).to(self.device)

    def same(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        n = min(a.shape[-1], b.shape[-1])
        return (a[..., :n] * b[..., :n]).sum(-1)

    def always(self) -> torch.Tensor:
        return torch.ones((), device=self.device)

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
        self.pending = torch.zeros((), device=self.device)

    def output(self, slot: Slot, env) -> torch.Tensor:
        if self.model.halts:
            value = self.out.get(slot, torch.zeros(1, 1, self.model.decls[slot[0]].size,
                                                   device=self.device))
        else:
            value = env[slot]
        return value.expand(self.restarts if value.shape[0] == 1 else -1, self.batch, -1)


def _batch_size(inputs: Mapping[str, torch.Tensor]) -> int:
    sizes = {v.shape[0] for v in inputs.values()}
    if len(sizes) != 1:
        raise ValueError(f"inputs disagree on the batch size: {sorted(sizes)}")
    return sizes.pop()


def run_relaxed(model: CompiledModel, param_probs: Mapping[str, torch.Tensor], library,
                inputs: Mapping[str, torch.Tensor], path: str = "fast") -> dict[str, torch.Tensor]:
    """Output marginals ``{output: [R, B, size]}``; in a model that halts they sum to the
    probability of halting, else to 1. ``path``: a key of ``PATHS``."""
    return relaxed_class(path)(model, param_probs, library, inputs).run()


# ----------------------------------------------------------------------------- the fast path


class _Support(Interpreter):
    """Static analysis for :class:`FastRelaxedInterpreter`: which values each expression can
    take with non-zero probability (a bool mask over its range), whatever the Params and inputs.

    A weight is ``(may be non-zero, may be below one)``; an arm whose weight is never non-zero
    is dead on every batch, exactly (its relaxed weight is a sum of products with zeros).
    ``live[id(branch)]`` records each visited branch's live arms; a branch inside a dead arm is
    never visited (nor run).
    """

    def __init__(self, model: CompiledModel):
        super().__init__(model, {}, None, {})
        self.live: dict[int, tuple[bool, ...]] = {}

    def const(self, value, size):
        mask = np.zeros(size, dtype=bool)
        mask[value] = True
        return mask

    def param(self, slot):
        return np.ones(self.model.decls[slot[0]].size, dtype=bool)

    input = param

    def tensor(self, slot):
        return None

    def fit(self, value, size):
        return np.pad(value, (0, size - len(value))) if len(value) < size else value

    def soft_read(self, index, index_sizes, options, size):
        out = np.zeros(size, dtype=bool)
        for combo, option in zip(np.ndindex(*index_sizes), options):
            if all(i[v] for i, v in zip(index, combo)):
                out = _union(out, option)
        return out

    def call(self, fn, args):
        values = fn.table[np.ix_(*(np.flatnonzero(a[:n]) for a, n in zip(args, fn.arg_sizes)))]
        out = np.zeros(fn.size, dtype=bool)
        out[values.ravel()] = True
        return out

    def apply_net(self, fn, args):
        return np.ones(fn.size, dtype=bool)

    def test(self, value, mask):
        mask = np.asarray(mask)
        value = value[:len(mask)]
        return bool((value & mask).any()), bool((value & ~mask).any())

    def same(self, a, b):
        n = min(len(a), len(b))
        overlap = bool((a[:n] & b[:n]).any())
        return overlap, not (overlap and a.sum() == 1 and b.sum() == 1)

    def always(self):
        return True, False

    def both(self, a, b):
        return a[0] and b[0], a[1] or b[1]

    def negate(self, w):
        return w[1], w[0]

    def possible(self, w) -> bool:
        return w[0]

    def merge(self, weights, values):
        out = values[0]
        for v in values[1:]:
            out = _union(out, v)
        return out

    def branch(self, br, env, path):
        weights = self.arm_weights(br, env)
        self.live[id(br)] = tuple(self.possible(w) for w in weights)
        super().branch(br, env, path)

    def emit(self, slot, value, path):
        pass

    def output(self, slot, env):
        return None


def _union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    n = max(len(a), len(b))
    return np.pad(a, (0, n - len(a))) | np.pad(b, (0, n - len(b)))


class Plan:
    """What the fast path derives once per compiled model: ``live[id(branch)]``, the live arms
    of each branch (:class:`_Support`), and its constant tensors, made once per device."""

    def __init__(self, model: CompiledModel):
        support = _Support(model)
        support.run()
        self.live = support.live
        self.templates: dict[int, Block] = {}  # id(branch) -> its live arms stacked (stacking.py)
        self._stack(model.body)
        self.tensors: dict[tuple, torch.Tensor] = {}
        self._bags: dict[tuple[str, torch.device], TableBags] = {}

    def _stack(self, block: Block) -> None:
        """Find the subject branches whose live arms stack into one template."""
        for stmt in block:
            if not isinstance(stmt, Branch):
                continue
            live = self.live.get(id(stmt), [])
            arms = [body for (_, body), alive in zip(stmt.arms, live) if alive]
            stacked = stack_arms(arms, self.live) if stmt.subject is not None and len(arms) > 1 else None
            if stacked is not None:
                self.templates[id(stmt)], template_live = stacked
                self.live.update(template_live)
                continue
            for _, body in stmt.arms:
                self._stack(body)

    def tensor(self, key: tuple, device: torch.device, make) -> torch.Tensor:
        """The constant ``make()`` for ``key`` (unique within the model) on ``device``."""
        full = (*key, device)
        tensor = self.tensors.get(full)
        if tensor is None:
            tensor = self.tensors[full] = make().to(device)
        return tensor

    def bags(self, fn: RuntimeFn, device: torch.device) -> TableBags:
        """The bag indices of ``fn``'s table on ``device`` (:mod:`.tables`)."""
        key = (fn.name, device)
        if key not in self._bags:
            self._bags[key] = TableBags(fn, device)
        return self._bags[key]


_PLANS: dict[int, tuple[CompiledModel, Plan]] = {}


def plan(model: CompiledModel) -> Plan:
    """The :class:`Plan` of a compiled model, made on first use (kept while it is cached)."""
    hit = _PLANS.get(id(model))
    if hit is None or hit[0] is not model:
        if len(_PLANS) >= 256:
            _PLANS.clear()
        hit = _PLANS[id(model)] = (model, Plan(model))
    return hit[1]


class FastRelaxedInterpreter(RelaxedInterpreter):
    """The relaxed back-end with the reference's values and fewer, cheaper tensor operations.

    * Arm liveness comes from the model's :class:`Plan` (no host sync per arm); the path weight is
      carried only into arms that may halt.
    * Each Param and Input element is read (indexed, one-hot encoded) once per run, and
      constants and tables are made once per model and device.
    * A subject branch gets every arm weight from one product (once per run where the subject is
      a value read once, such as a Param's element); each branch merges all it assigns
      in one batched product, and a random-index read is one batched matrix product over its
      options.
    * A ``@Runtime`` call of several arguments sums over its table's entries (:mod:`.tables`).
    * The live arms of a subject branch that differ only in their leaves (``with pc[t] as b``
      over blocks reading ``instr[b]``...) run once, as the :class:`Plan`'s template, on values
      with the arms in front (``[arms, R or 1, B or 1, size]``): one pass, not one per arm.
    """

    def __init__(self, model: CompiledModel, params: Mapping[str, torch.Tensor], library,
                 inputs: Mapping[str, torch.Tensor]):
        super().__init__(model, params, library, inputs)
        self.plan = plan(model)
        self.live = self.plan.live
        self.reads: dict[Slot, torch.Tensor] = {}  # Param and Input elements, read once per run
        self.weights: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}  # (id(subject), masks) ->
        # (subject, its arm weights): a subject read once per run weighs its arms once

    def param(self, slot: Slot) -> torch.Tensor:
        if slot not in self.reads:
            self.reads[slot] = super().param(slot)
        return self.reads[slot]

    def input(self, slot: Slot) -> torch.Tensor:
        if slot not in self.reads:
            self.reads[slot] = super().input(slot)
        return self.reads[slot]

    def const(self, value: int, size: int) -> torch.Tensor:
        return self.plan.tensor(("one_hot", value, size), self.device, lambda: _one_hot(value, size))

    def always(self) -> torch.Tensor:
        return self.plan.tensor(("one",), self.device, lambda: torch.ones(()))

    def call(self, fn: RuntimeFn, args: list[torch.Tensor]) -> torch.Tensor:
        if len(args) == 1:
            table = self.plan.tensor(("indicator", fn.name), self.device,
                                     lambda: F.one_hot(torch.from_numpy(fn.table), fn.size).float())
            return args[0] @ table
        return contract(self.plan.bags(fn, self.device), args, _lead(a.shape[:-1] for a in args))

    def test(self, value: torch.Tensor, mask) -> torch.Tensor:
        return value @ self.plan.tensor(("mask", mask), self.device, lambda: _mask(mask))

    def soft_read(self, index, index_sizes, options, size):
        weight = index[0]
        for i in index[1:]:
            weight = (weight.unsqueeze(-1) * i.unsqueeze(-2)).flatten(-2)
        options = [self.fit(o, size) for o in options]
        if len({o.shape for o in options}) == 1:
            return _mix(weight, options)
        lead = _lead([weight.shape[:-1], *(o.shape[:-1] for o in options)])
        stacked = torch.stack([o.expand(*lead, o.shape[-1]) for o in options])
        return (stacked * _front(weight.movedim(-1, 0), len(lead))).sum(0)

    def eval(self, e, env):
        if isinstance(e, Stacked):
            return self.stacked(e, env)
        return super().eval(e, env)

    def stacked(self, e: Stacked, env) -> torch.Tensor:
        """Each arm's leaf, stacked in front: ``[arms, R or 1, B or 1, size]`` (leaves that are
        no Var's are read once per run)."""
        key = e if not any(isinstance(leaf, Read) and leaf.kind == "Var" for leaf in e.leaves) else None
        if key is not None and key in self.reads:
            return self.reads[key]
        values = [self.fit(self.eval(leaf, env), e.size) for leaf in e.leaves]
        lead = _lead(v.shape[:-1] for v in values)
        out = torch.stack([v.expand(*lead, e.size) for v in values])
        if key is not None:
            self.reads[key] = out
        return out

    def branch(self, br, env, path) -> None:
        live = self.live[id(br)]
        arms = [k for k, alive in enumerate(live) if alive]
        if br.subject is not None:
            value = self.eval(br.subject, env)
            masks = tuple(br.masks[k] for k in arms)
            key = (id(value), masks)  # a Param's read is one tensor all run: its weights too
            if key in self.weights:
                weights = self.weights[key][1]
            else:
                table = self.plan.tensor(("masks", masks), self.device,
                                         lambda: torch.tensor(masks, dtype=torch.float32).T.contiguous())
                weights = (value @ table).movedim(-1, 0)  # [arms, ...]
                self.weights[key] = (value, weights)  # value kept: its id is not reused
        else:
            every = self.arm_weights(br, env)
            lead = _lead(every[k].shape for k in arms)
            weights = torch.stack([every[k].expand(lead) for k in arms])
        template = self.plan.templates.get(id(br))
        if template is not None:  # the live arms at once: each value [arms, ...] or shared
            layer = env.new_child()
            self.block(template, layer, None)
            weights = weights.unsqueeze(-1)  # [arms, *lanes, 1]
            for slot, _ in br.assigns:
                env[slot] = (layer.maps[0][slot] * weights).sum(0)
            return
        layers = []
        for n, k in enumerate(arms):
            layer = env.new_child()
            self.block(br.arms[k][1], layer, self.both(path, weights[n]) if br.emits else None)
            layers.append(layer.maps[0])
        for slot, _ in br.assigns:
            values = [layer[slot] for layer in layers]
            lead = _lead([weights.shape[1:], *(v.shape[:-1] for v in values)])
            if len(values) == 1:
                env[slot] = _front(weights, len(lead))[0] * values[0]
                continue
            stacked = torch.stack([v.expand(*lead, v.shape[-1]) for v in values])
            env[slot] = (stacked * _front(weights, len(lead))).sum(0)

    def output(self, slot: Slot, env) -> torch.Tensor:
        if self.model.halts and slot not in self.out:
            size = self.model.decls[slot[0]].size
            return torch.zeros(self.restarts, self.batch, size, device=self.device)
        return super().output(slot, env)


def _mix(weight: torch.Tensor, options: list[torch.Tensor]) -> torch.Tensor:
    """``sum_k weight[..., k] * options[k]`` for options of one shape, as one batched matrix
    product: the lanes that both vary over are its batch, those only the weight varies over its
    rows, the others (and the value) its columns."""
    *w_lanes, n = weight.shape
    *o_lanes, size = options[0].shape
    rank = max(len(w_lanes), len(o_lanes))
    w_lanes = [1] * (rank - len(w_lanes)) + w_lanes
    o_lanes = [1] * (rank - len(o_lanes)) + o_lanes
    batch = [d for d in range(rank) if w_lanes[d] > 1 and o_lanes[d] > 1]
    rows = [d for d in range(rank) if w_lanes[d] > 1 and o_lanes[d] == 1]
    cols = [d for d in range(rank) if w_lanes[d] == 1]
    order = batch + rows + cols
    w = weight.reshape(*w_lanes, n).permute(*order, rank)
    x = torch.stack([o.reshape(*o_lanes, size).permute(*order, rank) for o in options], len(batch))
    sizes = [w_lanes[d] for d in batch], [w_lanes[d] for d in rows], [o_lanes[d] for d in cols]
    product = torch.bmm(w.reshape(math.prod(sizes[0]), math.prod(sizes[1]), n),
                        x.reshape(math.prod(sizes[0]), n, math.prod(sizes[2]) * size))
    return product.view(*sizes[0], *sizes[1], *sizes[2], size).permute(
        *(order.index(d) for d in range(rank)), rank)


def _front(weights: torch.Tensor, lanes: int) -> torch.Tensor:
    """``[n, *w]`` weights as ``[n, 1.., *w, 1]`` with ``lanes`` lane dimensions, to multiply
    values ``[n, *lanes, size]`` (lanes are aligned from the right)."""
    n, *rest = weights.shape
    return weights.reshape(n, *(1,) * (lanes - len(rest)), *rest, 1)


def _lead(shapes) -> tuple[int, ...]:
    """The broadcast of shapes (of lanes: each dimension 1 or one common size)."""
    shapes = list(shapes)
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    return tuple(max(d) for d in zip(*padded))


PATHS: dict[str, type[RelaxedInterpreter]] = {"reference": RelaxedInterpreter,
                                              "fast": FastRelaxedInterpreter}
"""The relaxed back-ends by name: ``reference`` is the oracle the fast one is tested against."""


def relaxed_class(path: str) -> type[RelaxedInterpreter]:
    """The interpreter of relaxed path ``path`` (``reference`` or ``fast``)."""
    try:
        return PATHS[path]
    except KeyError:
        raise ValueError(f"unknown relaxed path {path!r}; known: {', '.join(PATHS)}") from None
