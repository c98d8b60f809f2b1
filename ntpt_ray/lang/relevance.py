"""Which Params a discrete program actually reads, given the values of its other Params.

A Param element read only inside ``if instr[b] == APPLY:`` is irrelevant to programs whose
block b is a MOVE: programs that differ only there behave identically. Each read is recorded
with its *guard*, the Param tests on the path to it; tests on Vars are taken as satisfiable,
so relevance is over-approximated (never a relevant element called irrelevant). An element
fixed by ``set_to_constant`` is never relevant: a test on it is decided at compile time.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .ir import Block, Branch, Read, Slot, SoftRead, Test, cond_nodes, expr_nodes
from .model import CompiledModel

Guard = tuple[tuple[Slot, tuple[bool, ...]], ...]
"""Param element -> allowed values, all of which must hold."""


def _param_tests(subject, masks, arms) -> list[tuple[Slot, tuple[bool, ...]] | None]:
    """Per arm, the Param test it implies (None when it tests something else)."""
    if isinstance(subject, Read) and subject.kind == "Param":
        return [(subject.slot, tuple(m)) for m in masks]
    out = []
    for cond, _ in arms:
        if isinstance(cond, Test) and isinstance(cond.expr, Read) and cond.expr.kind == "Param":
            out.append((cond.expr.slot, cond.mask))
        else:
            out.append(None)
    return out


def _param_slots(exprs, fixed: Mapping[Slot, int]) -> set[Slot]:
    slots = set()
    for e in exprs:
        if isinstance(e, Read) and e.kind == "Param":
            slots.add(e.slot)
        elif isinstance(e, SoftRead) and e.kind == "Param":
            slots.update(slot for _, slot in e.options)
    return slots - fixed.keys()


def param_guards(model: CompiledModel) -> dict[Slot, set[Guard]]:
    """For each Param element, the guards under which the program reads it."""
    guards: dict[Slot, set[Guard]] = {}
    fixed = model.fixed

    def record(exprs, guard: Guard) -> None:
        for slot in _param_slots(exprs, fixed):
            guards.setdefault(slot, set()).add(guard)

    def walk(block: Block, guard: Guard) -> None:
        for stmt in block:
            if not isinstance(stmt, Branch):
                record(expr_nodes(stmt.expr), guard)
                continue
            if stmt.subject is not None:
                record(expr_nodes(stmt.subject), guard)
            tests = _param_tests(stmt.subject, stmt.masks, stmt.arms)
            for (cond, body), test in zip(stmt.arms, tests):
                if cond is not None:
                    record(cond_nodes(cond), guard)
                if test is None:
                    walk(body, guard)
                elif test[0] not in fixed:
                    walk(body, guard + (test,))
                elif test[1][fixed[test[0]]]:
                    walk(body, guard)  # a test on a fixed element holds: no guard; else dead arm

    walk(model.body, ())
    return guards


def relevant_mask(guards: Mapping[Slot, set[Guard]], programs: Mapping[str, np.ndarray]
                  ) -> dict[str, np.ndarray]:
    """``{name: bool [K, *shape]}``: whether each of K programs reads each Param element."""
    count = len(next(iter(programs.values())))
    out = {name: np.zeros(v.shape, dtype=bool) for name, v in programs.items()}
    for (name, index), slot_guards in guards.items():
        if name not in programs:
            continue
        read = np.zeros(count, dtype=bool)
        for guard in slot_guards:
            holds = np.ones(count, dtype=bool)
            for (q_name, q_index), allowed in guard:
                holds &= np.asarray(allowed)[programs[q_name][(slice(None), *q_index)]]
            read |= holds
        out[name][(slice(None), *index)] = read
    return out

