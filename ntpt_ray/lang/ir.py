"""The unrolled intermediate representation shared by the relaxed and the discrete back-ends.

After the front end has evaluated hyper-parameters, unrolled every ``for`` loop, expanded
aliases and ``@Inline`` calls and resolved every compile-time index, a model is a tree of the few
node types below. Each integer expression knows its ``size``: it ranges over ``0 .. size - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import numpy as np

Slot = tuple[str, tuple[int, ...]]
"""One element of a declared array: its name and its (constant) index."""


def slot_name(slot: Slot) -> str:
    name, index = slot
    return f"{name}[{', '.join(map(str, index))}]" if index else name


# ----------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Decl:
    """A declared name of kind ``Param``, ``Var``, ``Input`` or ``Output``."""

    name: str
    kind: str
    size: int  # integer range 0..size-1; 0 for a tensor input
    shape: tuple[int, ...]  # array shape; () for a scalar
    line: int
    tensor_shape: tuple[int, ...] | None = None

    @property
    def is_tensor(self) -> bool:
        return self.tensor_shape is not None

    def slots(self) -> list[Slot]:
        return [(self.name, tuple(int(i) for i in ix)) for ix in np.ndindex(*self.shape)]


@dataclass(frozen=True)
class RuntimeFn:
    """An ``@Runtime`` integer function, tabulated over its argument ranges."""

    name: str
    arg_sizes: tuple[int, ...]
    size: int
    table: np.ndarray = field(compare=False, repr=False)  # int64, shape arg_sizes
    line: int = 0


@dataclass(frozen=True)
class LearnFn:
    """An ``@Learn`` neural function: one MLP shared by every call site."""

    name: str
    arg_dims: tuple[tuple[int, ...] | int, ...]  # a tensor shape, or an integer range
    size: int
    hidden: tuple[int, ...]
    line: int = 0

    @property
    def in_features(self) -> int:
        return sum(int(np.prod(d)) if isinstance(d, tuple) else d for d in self.arg_dims)


# ----------------------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Const:
    value: int
    size: int


@dataclass(frozen=True)
class Read:
    """Read one element of a Var, Param or Input."""

    slot: Slot
    size: int
    kind: str


@dataclass(frozen=True)
class SoftRead:
    """Read an array element whose index is random: a mixture over ``options``.

    ``options`` pairs each combination of the random indices' values with the slot it selects.
    """

    name: str
    indices: tuple["Expr", ...]
    options: tuple[tuple[tuple[int, ...], Slot], ...]
    size: int
    kind: str


@dataclass(frozen=True)
class Call:
    fn: RuntimeFn
    args: tuple["Expr", ...]

    @property
    def size(self) -> int:
        return self.fn.size


@dataclass(frozen=True)
class TensorRef:
    """A constant-indexed element of a Tensor input (valid only as an argument of a net)."""

    slot: Slot
    shape: tuple[int, ...]


@dataclass(frozen=True)
class NetCall:
    fn: LearnFn
    args: tuple[Union["Expr", TensorRef], ...]

    @property
    def size(self) -> int:
        return self.fn.size


Expr = Union[Const, Read, SoftRead, Call, NetCall]


# ----------------------------------------------------------------------------- conditions


@dataclass(frozen=True)
class Test:
    """True when ``expr``'s value ``v`` has ``mask[v]`` (``x == 3``, ``x < K``, ...)."""

    expr: Expr
    mask: tuple[bool, ...]


@dataclass(frozen=True)
class Same:
    """``a == b`` (or ``a != b`` when ``negate``) for two random values."""

    a: Expr
    b: Expr
    negate: bool = False


@dataclass(frozen=True)
class Not:
    cond: "Cond"


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    conds: tuple["Cond", ...]


Cond = Union[Test, Same, Not, BoolOp]


# ----------------------------------------------------------------------------- statements


@dataclass
class Assign:
    slot: Slot
    size: int
    expr: Expr
    line: int


@dataclass
class Emit:
    """``out.halt_with(v)``: write an Output and end the program (the first on a path wins).

    An Output set with ``out.set_to(v)`` is an :class:`Assign` like a Var's."""

    slot: Slot
    size: int
    expr: Expr
    line: int


@dataclass
class Branch:
    """A complete if/elif/else chain (a ``with`` block becomes one too).

    When every arm tests the same ``subject``, ``masks[k]`` is the set of the subject's values
    for which arm k runs (arms are then exclusive events). Otherwise arm k runs when its
    condition holds and no earlier one did; the last arm may have ``None`` (else).
    ``assigns`` lists the slots (and sizes) that every arm assigns, merged after the chain.
    """

    arms: list[tuple[Cond | None, "Block"]]
    line: int
    subject: Expr | None = None
    masks: list[tuple[bool, ...]] | None = None
    assigns: list[tuple[Slot, int]] = field(default_factory=list)
    emits: bool = False


Stmt = Union[Assign, Emit, Branch]
Block = list[Stmt]


def expr_nodes(e: Expr):
    """Yield ``e`` and its sub-expressions."""
    yield e
    if isinstance(e, SoftRead):
        for i in e.indices:
            yield from expr_nodes(i)
    elif isinstance(e, (Call, NetCall)):
        for a in e.args:
            if not isinstance(a, TensorRef):
                yield from expr_nodes(a)


def cond_nodes(c: Cond):
    """Yield the expressions a condition reads."""
    if isinstance(c, Test):
        yield from expr_nodes(c.expr)
    elif isinstance(c, Same):
        yield from expr_nodes(c.a)
        yield from expr_nodes(c.b)
    elif isinstance(c, Not):
        yield from cond_nodes(c.cond)
    else:
        for sub in c.conds:
            yield from cond_nodes(sub)


def block_nodes(block: Block):
    """Yield every expression a block reads, conditions included."""
    for stmt in block:
        if isinstance(stmt, (Assign, Emit)):
            yield from expr_nodes(stmt.expr)
        else:
            if stmt.subject is not None:
                yield from expr_nodes(stmt.subject)
            for cond, body in stmt.arms:
                if cond is not None:
                    yield from cond_nodes(cond)
                yield from block_nodes(body)
