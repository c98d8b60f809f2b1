"""Arms computed together: one block for the live arms of a branch that differ only in leaves.

``with pc[t] as b:`` unrolls to one arm per block ``b``, each the same code reading its own
Params (``instr[b]``, ``goto[b]``, ...). The relaxed back-end's cost is per tensor operation, not
per element, so :func:`stack_arms` zips such arms into one *template*: the shared structure, with
a :class:`Stacked` leaf wherever the arms read different elements or constants. The fast
relaxed path evaluates the template once, every value carrying the arms in a leading
dimension, and mixes them by the arm weights as it would mix the arms themselves.

Arms that halt, or call a net on an integer argument, are not stacked (their weights would be
needed inside), nor arms of different shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

from .ir import (Assign, Block, BoolOp, Branch, Call, Cond, Const, Emit, Expr, NetCall, Not, Read, Same,
                 SoftRead, Stmt, TensorRef, Test, block_nodes)


@dataclass(frozen=True)
class Stacked:
    """Arm ``k``'s own leaf (a :class:`Read` or :class:`Const`) in ``leaves[k]``."""

    leaves: tuple[Expr, ...]
    size: int


class _Mismatch(Exception):
    """Two arms differ in more than their leaves."""


def stack_arms(blocks: list[Block], live: dict[int, tuple[bool, ...]]
               ) -> tuple[Block, dict[int, tuple[bool, ...]]] | None:
    """The template of arm bodies ``blocks`` and the live arms of each branch in it (the union
    over the arms of ``live``, keyed by ``id`` of the branches in the template); ``None`` when
    the arms cannot be stacked."""
    if any(isinstance(e, NetCall) and not all(isinstance(a, TensorRef) for a in e.args)
           for block in blocks for e in block_nodes(block)):
        return None
    template_live: dict[int, tuple[bool, ...]] = {}
    try:
        return _block(blocks, live, template_live), template_live
    except _Mismatch:
        return None


def _block(blocks: list[Block], live, template_live) -> Block:
    if len({len(b) for b in blocks}) != 1:
        raise _Mismatch
    return [_stmt([b[i] for b in blocks], live, template_live) for i in range(len(blocks[0]))]


def _stmt(stmts: list[Stmt], live, template_live) -> Stmt:
    first = stmts[0]
    if isinstance(first, Emit) or any(type(s) is not type(first) for s in stmts):
        raise _Mismatch
    if isinstance(first, Assign):
        if any(s.slot != first.slot for s in stmts):
            raise _Mismatch
        return Assign(first.slot, first.size, _expr([s.expr for s in stmts]), first.line)
    if any(s.emits or len(s.arms) != len(first.arms) or s.masks != first.masks
           or s.assigns != first.assigns or (s.subject is None) != (first.subject is None)
           for s in stmts):
        raise _Mismatch
    subject = None if first.subject is None else _expr([s.subject for s in stmts])
    arms = []
    for k, (cond, _) in enumerate(first.arms):
        conds = [s.arms[k][0] for s in stmts]
        if (cond is None) != all(c is None for c in conds):
            raise _Mismatch
        arms.append((None if cond is None else _cond(conds),
                     _block([s.arms[k][1] for s in stmts], live, template_live)))
    branch = Branch(arms=arms, line=first.line, subject=subject, masks=first.masks,
                    assigns=first.assigns, emits=False)
    template_live[id(branch)] = tuple(any(live.get(id(s), (False,) * len(arms))[k] for s in stmts)
                                      for k in range(len(arms)))
    return branch


def _expr(es: list[Expr]) -> Expr:
    first = es[0]
    if all(e == first for e in es[1:]):
        return first
    if all(isinstance(e, (Read, Const)) for e in es):
        return Stacked(tuple(es), max(e.size for e in es))
    if any(type(e) is not type(first) for e in es):
        raise _Mismatch
    if isinstance(first, SoftRead):
        if any((e.name, e.options, e.size, e.kind) != (first.name, first.options, first.size, first.kind)
               for e in es):
            raise _Mismatch
        indices = tuple(_expr([e.indices[i] for e in es]) for i in range(len(first.indices)))
        return SoftRead(first.name, indices, first.options, first.size, first.kind)
    if isinstance(first, Call):
        if any(e.fn != first.fn for e in es):
            raise _Mismatch
        return Call(first.fn, tuple(_expr([e.args[i] for e in es]) for i in range(len(first.args))))
    raise _Mismatch  # nets on different tensors among them


def _cond(cs: list[Cond]) -> Cond:
    first = cs[0]
    if any(type(c) is not type(first) for c in cs):
        raise _Mismatch
    if isinstance(first, Test):
        if any(c.mask != first.mask for c in cs):
            raise _Mismatch
        return Test(_expr([c.expr for c in cs]), first.mask)
    if isinstance(first, Same):
        if any(c.negate != first.negate for c in cs):
            raise _Mismatch
        return Same(_expr([c.a for c in cs]), _expr([c.b for c in cs]), first.negate)
    if isinstance(first, Not):
        return Not(_cond([c.cond for c in cs]))
    if any(c.op != first.op or len(c.conds) != len(first.conds) for c in cs):
        raise _Mismatch
    return BoolOp(first.op, tuple(_cond([c.conds[i] for c in cs]) for i in range(len(first.conds))))
