"""One program on one example, in time linear in the path it takes.

The discrete back-end runs the unrolled model, every arm of every branch included: a MATH tape
of n symbols unrolls to O(n) steps of ``with pos as p`` over O(n) positions, O(n^2) in all,
before the first value is computed. With the Params fixed and a single example, each branch
takes one arm: :class:`PathUnroller` unrolls the source along that path only, computing each
value as it is assigned, so a value that the static unroller leaves random is a constant here
and ``with``/``if`` on it compile one arm. The result equals :func:`.discrete.run_discrete`'s
(checked by the tests); what is not checked is only what lies off the path taken.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from .errors import NTPTError
from .frontend import ModuleLevel
from .ir import Assign, BoolOp, Cond, Const, Emit, Expr, NetCall, Not, Read, Same, Slot, TensorRef, slot_name
from .unroll import Unroller

NO_OUTPUT = -1
"""The value of an Output of a halting model where the program did not halt."""


class _Halted(Exception):
    """The path wrote an Output with ``halt_with``: the program has ended."""


class PathUnroller(Unroller):
    """Unrolls and runs ``module`` for one example: ``params[name]`` is a Param's values (array
    shape), ``inputs[name]`` an Input's (``[1, *shape]``), ``library.classify`` reads nets."""

    def __init__(self, module: ModuleLevel, params: Mapping[str, np.ndarray], library,
                 inputs: Mapping[str, torch.Tensor]):
        super().__init__(module)
        self.params = {k: np.asarray(v) for k, v in params.items()}
        self.library = library
        self.inputs = inputs
        self.values: dict[Slot, int] = {}  # Vars and set_to Outputs, as assigned
        self.net_values: dict[NetCall, int] = {}  # nets on input tensors, read once
        code = [*module.body, *module.inline_fns.values()]
        self.halting = any(isinstance(n, ast.Attribute) and n.attr == "halt_with"
                           for stmt in code for n in ast.walk(stmt))  # though this path may not

    def check_outputs_written(self) -> None:
        if not self.halting:  # a halting program that did not halt has no Outputs
            super().check_outputs_written()

    def outputs(self) -> dict[str, int]:
        """Each Output element's value (``NO_OUTPUT`` where a halting program did not halt)."""
        try:
            self.run()
        except _Halted:
            pass
        return {slot_name(slot): self.values.get(slot, NO_OUTPUT)
                for decl in self.m.decls.values() if decl.kind == "Output" for slot in decl.slots()}

    # ------------------------------------------------------------------ values instead of IR

    def expr(self, node: ast.expr) -> Expr | TensorRef:
        e = super().expr(node)
        if isinstance(e, (Const, TensorRef)):
            return e
        return Const(self.value(e, node), e.size)

    def value(self, e: Expr, node: ast.AST) -> int:
        """The value of a Read or a net call (every other expression is constant by now)."""
        if isinstance(e, NetCall):
            return self.net(e)
        if not isinstance(e, Read):
            raise TypeError(f"not a path value: {e!r}")
        name, index = e.slot
        if e.kind == "Var":
            return self.values[e.slot]
        if e.kind == "Param":
            if e.slot in self.fixed:
                return self.fixed[e.slot]
            if name not in self.params:
                raise self.error(f"the program gives no value for Param '{name}'", node)
            return int(self.params[name][index])
        value = int(self.inputs[name][(0, *index)])
        if not 0 <= value < e.size:
            raise self.error(f"Input {slot_name(e.slot)} is {value}, outside its range "
                             f"0..{e.size - 1}", node)
        return value

    def net(self, e: NetCall) -> int:
        pure = all(isinstance(a, TensorRef) for a in e.args)
        if pure and e in self.net_values:
            return self.net_values[e]
        args = [self.inputs[a.slot[0]][(slice(None), *a.slot[1])] if isinstance(a, TensorRef)
                else F.one_hot(torch.tensor([a.value]), dim).float()
                for a, dim in zip(e.args, e.fn.arg_dims)]
        with torch.no_grad():
            value = int(self.library.classify(e.fn, args).reshape(-1)[0])
        if pure:
            self.net_values[e] = value
        return value

    def condition(self, node: ast.expr) -> Cond | bool:
        c = super().condition(node)
        return c if isinstance(c, bool) else _holds(c)

    def set_to(self, call: ast.Call, stmt: ast.Expr, halt: bool) -> Assign | Emit:
        node = super().set_to(call, stmt, halt)
        self.values[node.slot] = node.expr.value
        if isinstance(node, Emit):
            raise _Halted
        return node


def _holds(c: Cond) -> bool:
    """A condition on constants (a Test on one is resolved when built)."""
    if isinstance(c, Same):
        return (c.a.value == c.b.value) != c.negate
    if isinstance(c, Not):
        return not _holds(c.cond)
    if isinstance(c, BoolOp):
        results = (_holds(sub) for sub in c.conds)
        return all(results) if c.op == "and" else any(results)
    raise NTPTError(f"not a condition on constants: {c!r}")


def run_path(module: ModuleLevel, params: Mapping[str, np.ndarray], library,
             inputs: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """One program's Outputs on one example: ``{slot name: value}``, as ``run_discrete`` gives."""
    with torch.no_grad():
        return PathUnroller(module, params, library, inputs).outputs()
