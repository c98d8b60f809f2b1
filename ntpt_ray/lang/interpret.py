"""The walk over the IR that both back-ends share; they differ only in their values.

The relaxed back-end's values are marginals (probability vectors over each integer's range)
and its branch weights are probabilities; the discrete back-end's values are integers and its
branch weights are booleans. Both are vectorised: the relaxed one over restarts and examples,
the discrete one over candidate programs and examples.

Semantics of a branch: every arm runs on its own layer of the environment (so an arm reads
its own assignments), then each slot every arm assigns is merged by the arm weights: a mixture
(relaxed) or a selection (discrete); what only some arms assign stays in their layers.

Outputs: in a model that sets them (``out.set_to(v)``), they live in the environment like Vars
and the run returns their final values. In a model that halts (``out.halt_with(v)``), writing
an Output ends the program: the discrete back-end keeps the first write; the relaxed one emits
``alive x path weight x value`` and removes that mass from ``alive`` once the enclosing
top-level statement has run. A Param element fixed by ``set_to_constant`` reads as its
constant, whatever the caller passes for it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import ChainMap
from collections.abc import Mapping
from typing import Any

from .ir import (
    Assign,
    Block,
    Branch,
    Call,
    Cond,
    Const,
    Emit,
    Expr,
    LearnFn,
    NetCall,
    Not,
    Read,
    Same,
    Slot,
    SoftRead,
    TensorRef,
    Test,
    slot_name,
)
from .model import CompiledModel

Value = Any
Weight = Any


class Interpreter(ABC):
    """Walks a compiled model; subclasses give the values their meaning.

    ``params[name]`` holds the Params (marginals or values) with a leading lane dimension;
    ``inputs[name]`` the batch (``[B, *array_shape]`` integers, or ``[B, *array_shape,
    *tensor_shape]`` tensors); ``library`` evaluates the ``@Learn`` functions.
    """

    def __init__(self, model: CompiledModel, params: Mapping[str, Any], library,
                 inputs: Mapping[str, Any]):
        self.model = model
        self.params = params
        self.library = library
        self.inputs = inputs
        self.net_cache: dict[NetCall, Value] = {}

    def run(self) -> dict[str, Value]:
        """Execute the whole program and return each Output element's value."""
        env: ChainMap = ChainMap()
        for stmt in self.model.body:
            self.statement(stmt, env, self.always())
            if getattr(stmt, "emits", False) or isinstance(stmt, Emit):
                self.end_of_statement()
        return {slot_name(slot): self.output(slot, env)
                for decl in self.model.outputs.values() for slot in decl.slots()}

    def block(self, block: Block, env: ChainMap, path: Weight) -> None:
        for stmt in block:
            self.statement(stmt, env, path)

    def statement(self, stmt, env: ChainMap, path: Weight) -> None:
        if isinstance(stmt, Assign):
            env[stmt.slot] = self.fit(self.eval(stmt.expr, env), stmt.size)
        elif isinstance(stmt, Emit):
            self.emit(stmt.slot, self.fit(self.eval(stmt.expr, env), stmt.size), path)
        else:
            self.branch(stmt, env, path)

    def branch(self, br: Branch, env: ChainMap, path: Weight) -> None:
        """Run the arms that some lane can take; merge what they assign by their weights.

        An arm no lane takes (all-false mask, all-zero weight) contributes nothing, so
        skipping it is exact; it is what keeps ``with pos as p`` over long tapes cheap."""
        live, layers = [], []
        for (_, body), weight in zip(br.arms, self.arm_weights(br, env)):
            if not self.possible(weight):
                continue
            layer = env.new_child()
            self.block(body, layer, self.both(path, weight))
            live.append(weight)
            layers.append(layer.maps[0])
        for slot, _ in br.assigns:
            env[slot] = self.merge(live, [layer[slot] for layer in layers])

    def arm_weights(self, br: Branch, env: ChainMap) -> list[Weight]:
        if br.subject is not None:
            value = self.eval(br.subject, env)
            return [self.test(value, mask) for mask in br.masks]
        weights, remaining = [], self.always()
        for cond, _ in br.arms:
            if cond is None:
                weights.append(remaining)
                continue
            holds = self.cond(cond, env)
            weights.append(self.both(remaining, holds))
            remaining = self.both(remaining, self.negate(holds))
        return weights

    # ------------------------------------------------------------------ expressions

    def eval(self, e: Expr, env: ChainMap) -> Value:
        if isinstance(e, Const):
            return self.const(e.value, e.size)
        if isinstance(e, Read):
            return self.slot(e.slot, e.kind, env)
        if isinstance(e, SoftRead):
            index = [self.eval(i, env) for i in e.indices]
            options = [self.slot(slot, e.kind, env) for _, slot in e.options]
            return self.soft_read(index, [i.size for i in e.indices], options, e.size)
        if isinstance(e, Call):
            args = [self.fit(self.eval(a, env), n) for a, n in zip(e.args, e.fn.arg_sizes)]
            return self.call(e.fn, args)
        if isinstance(e, NetCall):
            return self.net(e, env)
        raise TypeError(f"not an expression: {e!r}")

    def slot(self, slot: Slot, kind: str, env: ChainMap) -> Value:
        if kind == "Var":
            return env[slot]
        if kind == "Param":
            fixed = self.model.fixed.get(slot)
            return self.param(slot) if fixed is None else self.const(fixed, self.model.decls[slot[0]].size)
        return self.input(slot)

    def tensor(self, slot: Slot) -> Value:
        name, index = slot
        return self.inputs[name][(slice(None), *index)]

    def net(self, e: NetCall, env: ChainMap) -> Value:
        """A net call; calls on input tensors alone are computed once per run."""
        pure = all(isinstance(a, TensorRef) for a in e.args)
        if pure and e in self.net_cache:
            return self.net_cache[e]
        args = [self.tensor(a.slot) if isinstance(a, TensorRef) else
                self.fit(self.eval(a, env), dim) for a, dim in zip(e.args, e.fn.arg_dims)]
        value = self.apply_net(e.fn, args)
        if pure:
            self.net_cache[e] = value
        return value

    def cond(self, c: Cond, env: ChainMap) -> Weight:
        if isinstance(c, Test):
            return self.test(self.eval(c.expr, env), c.mask)
        if isinstance(c, Same):
            holds = self.same(self.eval(c.a, env), self.eval(c.b, env))
            return self.negate(holds) if c.negate else holds
        if isinstance(c, Not):
            return self.negate(self.cond(c.cond, env))
        weights = [self.cond(sub, env) for sub in c.conds]
        if c.op == "and":
            out = weights[0]
            for w in weights[1:]:
                out = self.both(out, w)
            return out
        out = self.negate(weights[0])
        for w in weights[1:]:
            out = self.both(out, self.negate(w))
        return self.negate(out)

    # ------------------------------------------------------------------ the value domain

    @abstractmethod
    def const(self, value: int, size: int) -> Value: ...

    @abstractmethod
    def param(self, slot: Slot) -> Value: ...

    @abstractmethod
    def input(self, slot: Slot) -> Value: ...

    @abstractmethod
    def fit(self, value: Value, size: int) -> Value:
        """Widen a value to a range of ``size``."""

    @abstractmethod
    def soft_read(self, index: list[Value], index_sizes: list[int], options: list[Value],
                  size: int) -> Value: ...

    @abstractmethod
    def call(self, fn, args: list[Value]) -> Value: ...

    @abstractmethod
    def apply_net(self, fn: LearnFn, args: list[Value]) -> Value: ...

    @abstractmethod
    def test(self, value: Value, mask) -> Weight: ...

    @abstractmethod
    def same(self, a: Value, b: Value) -> Weight: ...

    @abstractmethod
    def always(self) -> Weight: ...

    @abstractmethod
    def both(self, a: Weight, b: Weight) -> Weight: ...

    @abstractmethod
    def negate(self, w: Weight) -> Weight: ...

    @abstractmethod
    def possible(self, w: Weight) -> bool:
        """Whether some lane may take a branch of weight ``w``."""

    @abstractmethod
    def merge(self, weights: list[Weight], values: list[Value]) -> Value: ...

    @abstractmethod
    def emit(self, slot: Slot, value: Value, path: Weight) -> None: ...

    def end_of_statement(self) -> None:
        """Called after each top-level statement that may halt."""

    @abstractmethod
    def output(self, slot: Slot, env: ChainMap) -> Value:
        """An Output element's value at the end: from ``env``, or what halting emitted."""
