"""One program, many examples: a compiled model specialised to one program's Param values.

The discrete back-end runs the unrolled model with every arm of every branch on a Param: for
one candidate it still walks each ``with pc[t] as b`` over every block, and each arm costs a
test. With the Params known, :func:`specialise` partially evaluates the IR: each Param read is
a constant, so are the Vars assigned constants outside branches on random values (MATH's head
and program counter depend on the Params alone), and a branch on a constant keeps only the arm
it takes. What is left is the data-dependent part of the program, which
:func:`.discrete.run_discrete` runs on the whole batch with the same results as the full
model (checked by the tests). Verifying a decoded program on long test tapes is where it pays.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping

import numpy as np

from .ir import (Assign, Block, BoolOp, Branch, Call, Cond, Const, Emit, Expr, NetCall, Not, Read, Same,
                 Slot, SoftRead, Test, TensorRef)
from .model import CompiledModel

_UNKNOWN = object()  # a Var whose value is not one constant (shadows an outer known value)


def specialise(model: CompiledModel, params: Mapping[str, np.ndarray]) -> CompiledModel:
    """``model`` for the one program ``params[name]`` (each Param's values, its array shape):
    no Param left to read, one arm wherever the program alone decides a branch."""
    values = {k: np.asarray(v) for k, v in params.items()}
    missing = sorted(set(model.params) - set(values))
    if missing:
        raise ValueError(f"the program gives no value for Param {', '.join(map(repr, missing))}")
    body = _Specialiser(model, values).block(model.body, ChainMap())
    return CompiledModel(name=model.name, filename=model.filename, hypers=model.hypers,
                         decls=model.decls, runtime_fns=model.runtime_fns, learn_fns=model.learn_fns,
                         body=body, fixed=model.fixed, halts=model.halts)


class _Specialiser:
    def __init__(self, model: CompiledModel, params: dict[str, np.ndarray]):
        self.fixed = model.fixed
        self.params = params

    # ---- statements; ``known`` maps Vars to their constant value on every lane of this path

    def block(self, block: Block, known: ChainMap) -> Block:
        out: Block = []
        for stmt in block:
            if isinstance(stmt, Branch):
                self.branch(stmt, known, out)
                continue
            expr = self.expr(stmt.expr, known)
            if isinstance(stmt, Assign):
                known[stmt.slot] = expr.value if isinstance(expr, Const) else _UNKNOWN
                out.append(Assign(stmt.slot, stmt.size, expr, stmt.line))
            else:
                out.append(Emit(stmt.slot, stmt.size, expr, stmt.line))
        return out

    def branch(self, br: Branch, known: ChainMap, out: Block) -> None:
        arms = self.live_arms(br, known)
        if arms is not None and len(arms) == 1 and arms[0][0] is None:
            self.taken(br, arms[0][1], known, out)
            return
        if arms is None:  # no arm folds away: the subject is random
            arms = list(br.arms)
        subject = None if br.subject is None else self.expr(br.subject, known)
        masks = br.masks if subject is not None else None
        compiled = [(cond, self.block(body, known.new_child())) for cond, body in arms]
        for slot, _ in br.assigns:
            known[slot] = _UNKNOWN
        out.append(Branch(arms=compiled, line=br.line, subject=subject, masks=masks,
                          assigns=br.assigns, emits=_emits(compiled)))

    def live_arms(self, br: Branch, known: ChainMap) -> list[tuple[Cond | None, Block]] | None:
        """The arms that can still run, a sure one as the last with no condition; ``None`` for
        a branch on a random subject."""
        if br.subject is not None:
            subject = self.expr(br.subject, known)
            if not isinstance(subject, Const):
                return None
            value = subject.value  # the masks are exclusive: the first arm that holds is the one
            taken = next((body for mask, (_, body) in zip(br.masks, br.arms) if mask[value]), None)
            return None if taken is None else [(None, taken)]
        arms: list[tuple[Cond | None, Block]] = []
        for cond, body in br.arms:
            holds = True if cond is None else self.cond(cond, known)
            if holds is False:
                continue
            if holds is True:
                arms.append((None, body))
                return arms
            arms.append((holds, body))
        return arms

    def taken(self, br: Branch, body: Block, known: ChainMap, out: Block) -> None:
        """The one arm ``br`` takes: inlined when all it assigns is merged after the branch
        anyway, else kept in a one-arm branch (what it alone assigns stays local to it)."""
        merged = {slot for slot, _ in br.assigns}
        if _assigned(body) <= merged:
            out.extend(self.block(body, known))
            return
        inner = self.block(body, known.new_child())
        for slot in merged:
            known[slot] = _UNKNOWN
        out.append(Branch(arms=[(None, inner)], line=br.line, assigns=br.assigns,
                          emits=_emits([(None, inner)])))

    # ---- expressions and conditions

    def expr(self, e: Expr, known: ChainMap) -> Expr:
        if isinstance(e, Read):
            return self.read(e, known)
        if isinstance(e, SoftRead):
            indices = tuple(self.expr(i, known) for i in e.indices)
            if all(isinstance(i, Const) for i in indices):
                chosen = tuple(i.value for i in indices)
                slot = next(slot for values, slot in e.options if values == chosen)
                return self.read(Read(slot, e.size, e.kind), known)
            return SoftRead(e.name, indices, e.options, e.size, e.kind)
        if isinstance(e, Call):
            args = tuple(self.expr(a, known) for a in e.args)
            if all(isinstance(a, Const) for a in args):
                return Const(int(e.fn.table[tuple(a.value for a in args)]), e.fn.size)
            return Call(e.fn, args)
        if isinstance(e, NetCall):
            return NetCall(e.fn, tuple(a if isinstance(a, TensorRef) else self.expr(a, known)
                                       for a in e.args))
        return e  # Const

    def read(self, e: Read, known: ChainMap) -> Expr:
        if e.kind == "Param":
            name, index = e.slot
            value = self.fixed[e.slot] if e.slot in self.fixed else int(self.params[name][index])
            return Const(value, e.size)
        if e.kind == "Var":
            value = known.get(e.slot, _UNKNOWN)
            if value is not _UNKNOWN:
                return Const(value, e.size)
        return e

    def cond(self, c: Cond, known: ChainMap) -> Cond | bool:
        if isinstance(c, Test):
            expr = self.expr(c.expr, known)
            return c.mask[expr.value] if isinstance(expr, Const) else Test(expr, c.mask)
        if isinstance(c, Same):
            a, b = self.expr(c.a, known), self.expr(c.b, known)
            if isinstance(a, Const) and isinstance(b, Const):
                return (a.value == b.value) != c.negate
            return Same(a, b, c.negate)
        if isinstance(c, Not):
            inner = self.cond(c.cond, known)
            return (not inner) if isinstance(inner, bool) else Not(inner)
        conds = [self.cond(sub, known) for sub in c.conds]
        decisive = c.op == "or"  # True decides an or, False an and
        if decisive in conds:
            return decisive
        rest = tuple(sub for sub in conds if not isinstance(sub, bool))
        if not rest:
            return not decisive
        return rest[0] if len(rest) == 1 else BoolOp(c.op, rest)


def _assigned(block: Block) -> set[Slot]:
    """The slots a block leaves assigned in its scope (a nested branch: what it merges)."""
    slots: set[Slot] = set()
    for stmt in block:
        if isinstance(stmt, Assign):
            slots.add(stmt.slot)
        elif isinstance(stmt, Branch):
            slots.update(slot for slot, _ in stmt.assigns)
    return slots


def _emits(arms) -> bool:
    return any(isinstance(n, Emit) or (isinstance(n, Branch) and n.emits) for _, b in arms for n in b)
