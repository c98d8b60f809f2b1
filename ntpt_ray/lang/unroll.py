"""From the program statements of an NTPT source to the unrolled IR, checking as it goes.

Loops are unrolled, compile-time names (hyper-parameters, loop counters, ``with`` values,
``name = constant`` bindings) are substituted, and ``if``s on constants are resolved. The
checks enforce the TerpreT discipline: a Var element is assigned exactly once on every path
and never read before, every branch of a chain assigns the same Vars, values fit their
ranges, Tensors only flow into ``@Learn`` functions.
"""

from __future__ import annotations

import ast
import itertools
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from .consteval import NotConstant, const_eval
from .errors import NTPTError
from .frontend import ModuleLevel
from .ir import (
    Assign, Block, BoolOp, Branch, Call, Cond, Const, Decl, Emit, Expr, NetCall, Not, Read, Same,
    Slot, SoftRead, TensorRef, Test, block_nodes, slot_name,
)

_ORDER_OPS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
              ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}
_FLIPPED = {ast.Lt: ast.Gt, ast.LtE: ast.GtE, ast.Gt: ast.Lt, ast.GtE: ast.LtE,
            ast.Eq: ast.Eq, ast.NotEq: ast.NotEq}


class Unroller:
    """Unrolls ``module.body`` into a :data:`Block`."""

    def __init__(self, module: ModuleLevel):
        self.m = module
        self.scope: dict[str, Any] = dict(module.hypers)
        self.assigned: set[Slot] = set()

    def error(self, message: str, node: ast.AST | None) -> NTPTError:
        return NTPTError(message, filename=self.m.filename, line=getattr(node, "lineno", None))

    def run(self) -> Block:
        return self.block(self.m.body)

    # ------------------------------------------------------------------ statements

    def block(self, stmts: list[ast.stmt]) -> Block:
        out: Block = []
        for stmt in stmts:
            self.statement(stmt, out)
        return out

    def statement(self, stmt: ast.stmt, out: Block) -> None:
        if isinstance(stmt, ast.Pass):
            return
        if isinstance(stmt, ast.Expr):
            out.append(self.set_to(stmt))
        elif isinstance(stmt, ast.For):
            self.for_loop(stmt, out)
        elif isinstance(stmt, ast.If):
            self.if_chain(stmt, out)
        elif isinstance(stmt, ast.With):
            self.with_block(stmt, stmt.items, out)
        elif isinstance(stmt, ast.Assign):
            self.binding(stmt)
        elif isinstance(stmt, ast.While):
            raise self.error("unbounded loop: 'while' is not allowed; use 'for i in range(N)' "
                             "with a constant N", stmt)
        else:
            raise self.error(f"unsupported statement '{type(stmt).__name__}' in a program", stmt)

    def bind(self, name: str, value: int, node: ast.AST) -> None:
        if name in self.m.decls or name in self.m.runtime_fns or name in self.m.learn_fns:
            raise self.error(f"'{name}' is already declared and cannot be rebound", node)
        self.scope[name] = value

    def binding(self, stmt: ast.Assign) -> None:
        if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
            raise self.error("only 'name = constant' bindings are allowed in a program; "
                             "assign Vars with .set_to(...)", stmt)
        try:
            value = const_eval(stmt.value, self.scope)
        except NotConstant:
            raise self.error(f"'{stmt.targets[0].id} = ...' must be a compile-time constant; "
                             "to store a random value declare a Var and use .set_to(...)", stmt) from None
        self.bind(stmt.targets[0].id, value, stmt)

    def for_loop(self, stmt: ast.For, out: Block) -> None:
        if not isinstance(stmt.target, ast.Name) or stmt.orelse:
            raise self.error("a for loop needs a single loop variable and no else", stmt)
        if not (isinstance(stmt.iter, ast.Call) and isinstance(stmt.iter.func, ast.Name)
                and stmt.iter.func.id == "range"):
            raise self.error("loops must be bounded: use 'for i in range(N)'", stmt)
        try:
            values = const_eval(stmt.iter, self.scope)
        except NotConstant:
            raise self.error("unbounded loop: the range of a for loop must be a compile-time "
                             "constant (hyper-parameters and loop counters only)", stmt) from None
        saved = self.scope.get(stmt.target.id)
        for value in values:
            self.bind(stmt.target.id, value, stmt)
            for inner in stmt.body:
                self.statement(inner, out)
        if saved is not None:
            self.scope[stmt.target.id] = saved

    def set_to(self, stmt: ast.Expr) -> Assign | Emit:
        call = stmt.value
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and call.func.attr == "set_to"):
            raise self.error("a statement has no effect; did you mean X.set_to(...)?", stmt)
        if len(call.args) != 1 or call.keywords:
            raise self.error("set_to takes exactly one value", stmt)
        decl, slot = self.target(call.func.value)
        value = self.integer(call.args[0], f"the value assigned to {slot_name(slot)}")
        if isinstance(value, Const) and value.value >= decl.size:
            raise self.error(f"value {value.value} is out of range for {slot_name(slot)}, "
                             f"which holds 0..{decl.size - 1}", stmt)
        if value.size > decl.size:
            raise self.error(f"{slot_name(slot)} holds 0..{decl.size - 1} but is assigned a value "
                             f"ranging over 0..{value.size - 1}", stmt)
        if decl.kind == "Output":
            return Emit(slot, decl.size, value, stmt.lineno)
        if slot in self.assigned:
            raise self.error(f"{slot_name(slot)} is assigned twice; a Var element is assigned "
                             "once (use an array indexed by the time step)", stmt)
        self.assigned.add(slot)
        return Assign(slot, decl.size, value, stmt.lineno)

    def target(self, node: ast.expr) -> tuple[Decl, Slot]:
        name, index_nodes = self.split(node)
        decl = self.declared(name, node)
        if decl.kind in ("Param", "Input"):
            raise self.error(f"cannot assign to {decl.kind} '{name}': only Vars and Outputs are "
                             "assigned", node)
        index = []
        for axis, i in enumerate(self.indices(decl, index_nodes, node)):
            if not isinstance(i, int):
                raise self.error(f"the index of an assignment target ({name}, axis {axis}) must be "
                                 "a compile-time constant; use 'with x as i:' to choose", node)
            index.append(i)
        return decl, (name, tuple(index))

    # ------------------------------------------------------------------ branches

    def if_chain(self, stmt: ast.If, out: Block) -> None:
        tests: list[tuple[ast.expr, list[ast.stmt]]] = []
        node = stmt
        while True:
            tests.append((node.test, node.body))
            if len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If):
                node = node.orelse[0]
                continue
            orelse = node.orelse or None
            break
        live: list[tuple[Cond, list[ast.stmt]]] = []
        for test, body in tests:
            cond = self.condition(test)
            if cond is False:
                continue
            if cond is True:
                orelse = body
                break
            live.append((cond, body))
        if not live:
            for inner in orelse or []:
                self.statement(inner, out)
            return
        conds = [c for c, _ in live]
        subject = conds[0].expr if all(isinstance(c, Test) and c.expr == conds[0].expr
                                       for c in conds) else None
        arms: list[tuple[Cond | None, list[ast.stmt] | None]] = list(live)
        masks = None
        if subject is not None:
            masks, covered = [], np.zeros(subject.size, dtype=bool)
            for c in conds:
                masks.append(tuple(map(bool, np.asarray(c.mask) & ~covered)))
                covered |= np.asarray(c.mask)
            if not covered.all():  # arms covering every value leave any else dead
                masks.append(tuple(map(bool, ~covered)))
                arms.append((None, orelse or []))
        else:
            arms.append((None, orelse or []))
        compilers = [(cond, lambda body=body: self.block(body or [])) for cond, body in arms]
        out.append(self.branch(compilers, stmt, subject, masks))

    def with_block(self, stmt: ast.With, items: list[ast.withitem], out: Block) -> None:
        if not items:
            for inner in stmt.body:
                self.statement(inner, out)
            return
        item, rest = items[0], items[1:]
        if not isinstance(item.optional_vars, ast.Name):
            raise self.error("write 'with x as name:' to enumerate the values of x", stmt)
        name = item.optional_vars.id
        subject = self.integer(item.context_expr, "the value of a with statement")
        saved = self.scope.get(name)
        if isinstance(subject, Const):
            self.bind(name, subject.value, stmt)
            self.with_block(stmt, rest, out)
        else:
            def arm(value: int) -> Block:
                self.bind(name, value, stmt)
                block: Block = []
                self.with_block(stmt, rest, block)
                return block

            arms = [(None, lambda value=value: arm(value)) for value in range(subject.size)]
            masks = [tuple(v == value for v in range(subject.size)) for value in range(subject.size)]
            out.append(self.branch(arms, stmt, subject, masks))
        if saved is not None:
            self.scope[name] = saved
        else:
            self.scope.pop(name, None)

    def branch(self, arms: list[tuple[Cond | None, Callable[[], Block]]], stmt: ast.stmt,
               subject: Expr | None, masks) -> Branch:
        """Compile each arm on its own copy of the assigned set, then check they agree."""
        before = self.assigned
        compiled, news = [], []
        for cond, compile_arm in arms:
            self.assigned = set(before)
            compiled.append((cond, compile_arm()))
            news.append(self.assigned - before)
        self.assigned = before
        every = set.intersection(*news)
        for new in news:
            if new != every:
                slot = sorted(new - every)[0]
                raise self.error(f"{slot_name(slot)} is assigned in some branches of this "
                                 f"{'with' if isinstance(stmt, ast.With) else 'if'} but not in all of them "
                                 "(add an else, or assign it in every branch)", stmt)
        self.assigned |= every
        sizes = {s: self.m.decls[s[0]].size for s in every}
        emits = any(isinstance(n, Emit) or (isinstance(n, Branch) and n.emits)
                    for _, b in compiled for n in b)
        return Branch(arms=compiled, line=stmt.lineno, subject=subject, masks=masks,
                      assigns=sorted(sizes.items()), emits=emits)

    # ------------------------------------------------------------------ conditions

    def condition(self, node: ast.expr) -> Cond | bool:
        """A condition, or True/False when it is known at compile time."""
        try:
            return bool(const_eval(node, self.scope))
        except NotConstant:
            pass
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise self.error(f"cannot evaluate condition: {exc}", node) from None
        if isinstance(node, ast.BoolOp):
            is_and = isinstance(node.op, ast.And)
            conds = []
            for value in node.values:
                c = self.condition(value)
                if c is (not is_and):
                    return c  # False in an and, True in an or
                if c is not is_and:
                    conds.append(c)
            if not conds:
                return is_and
            return conds[0] if len(conds) == 1 else BoolOp("and" if is_and else "or", tuple(conds))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            c = self.condition(node.operand)
            return (not c) if isinstance(c, bool) else Not(c)
        if isinstance(node, ast.Compare):
            return self.comparison(node)
        expr = self.integer(node, "a condition")
        return self.test(expr, lambda v: v != 0, node)

    def comparison(self, node: ast.Compare) -> Cond | bool:
        if len(node.ops) != 1:
            raise self.error("chained comparisons of random values are not supported; use 'and'",
                             node)
        op = type(node.ops[0])
        left, right = node.left, node.comparators[0]
        if op in (ast.In, ast.NotIn):
            expr = self.integer(left, "the left side of 'in'")
            try:
                values = set(const_eval(right, self.scope))
            except (NotConstant, TypeError):
                raise self.error("the right side of 'in' must be a constant tuple", node) from None
            inside = op is ast.In
            return self.test(expr, lambda v: (v in values) == inside, node)
        if op not in _ORDER_OPS:
            raise self.error(f"unsupported comparison '{type(node.ops[0]).__name__}'", node)
        const_side = None
        for side, other, flip in ((right, left, False), (left, right, True)):
            try:
                const_side = (const_eval(side, self.scope), other, flip)
                break
            except NotConstant:
                continue
        if const_side is not None:
            k, other, flip = const_side
            expr = self.integer(other, "a compared value")
            cmp = _ORDER_OPS[_FLIPPED[op] if flip else op]
            if op is ast.Eq and not 0 <= k < expr.size:
                raise self.error(f"comparing a value that ranges over 0..{expr.size - 1} with {k} "
                                 "is never true", node)
            return self.test(expr, lambda v: cmp(v, k), node)
        if op not in (ast.Eq, ast.NotEq):
            raise self.error("only == and != compare two random values", node)
        a = self.integer(left, "a compared value")
        b = self.integer(right, "a compared value")
        return Same(a, b, negate=op is ast.NotEq)

    @staticmethod
    def test(expr: Expr, predicate, node: ast.AST) -> Cond | bool:
        mask = tuple(bool(predicate(v)) for v in range(expr.size))
        if all(mask) or not any(mask):
            return all(mask)
        return Test(expr, mask)

    # ------------------------------------------------------------------ expressions

    def integer(self, node: ast.expr, what: str) -> Expr:
        expr = self.expr(node)
        if isinstance(expr, TensorRef):
            raise self.error(f"Tensor {slot_name(expr.slot)} passed where an integer is expected "
                             f"({what}); Tensors can only be passed to @Learn functions", node)
        return expr

    def expr(self, node: ast.expr) -> Expr | TensorRef:
        try:
            value = const_eval(node, self.scope)
        except NotConstant:
            pass
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise self.error(f"cannot evaluate: {exc}", node) from None
        else:
            if isinstance(value, bool):
                value = int(value)
            if not isinstance(value, int) or value < 0:
                raise self.error(f"values are non-negative integers, got {value!r}", node)
            return Const(value, value + 1)
        if isinstance(node, (ast.Name, ast.Subscript)):
            return self.element(node)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return self.call(node)
        if isinstance(node, (ast.BinOp, ast.UnaryOp)):
            raise self.error("arithmetic on random values must go through an @Runtime function",
                             node)
        raise self.error(f"unsupported expression '{ast.unparse(node)}'", node)

    def split(self, node: ast.expr) -> tuple[str, list[ast.expr]]:
        """``x[a][b, c]`` -> ("x", [a, b, c])."""
        index: list[ast.expr] = []
        while isinstance(node, ast.Subscript):
            s = node.slice
            index[:0] = s.elts if isinstance(s, ast.Tuple) else [s]
            node = node.value
        if not isinstance(node, ast.Name):
            raise self.error(f"cannot index '{ast.unparse(node)}'", node)
        return node.id, index

    def declared(self, name: str, node: ast.AST) -> Decl:
        if name in self.m.decls:
            return self.m.decls[name]
        if name in self.m.runtime_fns or name in self.m.learn_fns:
            raise self.error(f"function '{name}' used as a value; call it", node)
        raise self.error(f"unknown name '{name}'", node)

    def indices(self, decl: Decl, nodes: list[ast.expr], node: ast.AST) -> list[int | Expr]:
        if len(nodes) != len(decl.shape):
            raise self.error(f"'{decl.name}' has {len(decl.shape)} dimension(s) "
                             f"{decl.shape} but is indexed with {len(nodes)}", node)
        out: list[int | Expr] = []
        for axis, (i, dim) in enumerate(zip(nodes, decl.shape)):
            e = self.integer(i, f"an index of '{decl.name}'")
            if isinstance(e, Const):
                if e.value >= dim:
                    raise self.error(f"index {e.value} is out of range for '{decl.name}' "
                                     f"(axis {axis} has {dim} entries)", node)
                out.append(e.value)
            else:
                if e.size > dim:
                    raise self.error(f"an index of '{decl.name}' ranges over 0..{e.size - 1} but "
                                     f"axis {axis} has only {dim} entries", node)
                out.append(e)
        return out

    def element(self, node: ast.expr) -> Expr | TensorRef:
        name, index_nodes = self.split(node)
        decl = self.declared(name, node)
        if decl.kind == "Output":
            raise self.error(f"Output '{name}' cannot be read", node)
        index = self.indices(decl, index_nodes, node)
        random = [i for i in index if not isinstance(i, int)]
        if decl.is_tensor:
            if random:
                raise self.error(f"Tensor array '{name}' indexed by a random value: bind the index "
                                 "first with 'with x as i:'", node)
            return TensorRef((name, tuple(index)), decl.tensor_shape)
        if not random:
            slot = (name, tuple(index))
            self.check_assigned(decl, slot, node)
            return Read(slot, decl.size, decl.kind)
        options = []
        for values in itertools.product(*(range(e.size) for e in random)):
            it = iter(values)
            slot = (name, tuple(i if isinstance(i, int) else next(it) for i in index))
            self.check_assigned(decl, slot, node)
            options.append((values, slot))
        return SoftRead(name, tuple(random), tuple(options), decl.size, decl.kind)

    def check_assigned(self, decl: Decl, slot: Slot, node: ast.AST) -> None:
        if decl.kind == "Var" and slot not in self.assigned:
            raise self.error(f"{slot_name(slot)} is read before it is assigned", node)

    def call(self, node: ast.Call) -> Expr:
        name = node.func.id
        if node.keywords:
            raise self.error(f"'{name}' takes no keyword arguments", node)
        if name in self.m.runtime_fns:
            fn = self.m.runtime_fns[name]
            if len(node.args) != len(fn.arg_sizes):
                raise self.error(f"{name} takes {len(fn.arg_sizes)} arguments, got "
                                 f"{len(node.args)}", node)
            args = []
            for k, (a, n) in enumerate(zip(node.args, fn.arg_sizes)):
                e = self.integer(a, f"argument {k + 1} of {name}")
                if e.size > n:
                    raise self.error(f"argument {k + 1} of {name} ranges over 0..{e.size - 1} but "
                                     f"{name} accepts 0..{n - 1}", node)
                args.append(e)
            return Call(fn, tuple(args))
        if name in self.m.learn_fns:
            fn = self.m.learn_fns[name]
            if len(node.args) != len(fn.arg_dims):
                raise self.error(f"{name} takes {len(fn.arg_dims)} arguments, got "
                                 f"{len(node.args)}", node)
            args = []
            for k, (a, dim) in enumerate(zip(node.args, fn.arg_dims)):
                e = self.expr(a)
                if isinstance(dim, tuple):
                    if not isinstance(e, TensorRef) or e.shape != dim:
                        got = f"Tensor{e.shape}" if isinstance(e, TensorRef) else "an integer"
                        raise self.error(f"argument {k + 1} of {name} must be a Tensor{dim}, "
                                         f"got {got}", node)
                else:
                    e = self.integer(a, f"argument {k + 1} of {name}")
                    if e.size > dim:
                        raise self.error(f"argument {k + 1} of {name} ranges over 0..{e.size - 1}"
                                         f" but {name} accepts 0..{dim - 1}", node)
                args.append(e)
            return NetCall(fn, tuple(args))
        if name in self.m.decls:
            raise self.error(f"'{name}' is a {self.m.decls[name].kind}, not a function", node)
        raise self.error(f"unknown function '{name}'", node)


def used_names(block: Block, kind: str) -> set[str]:
    """Names of ``kind`` (e.g. Param) read anywhere in the block."""
    names = set()
    for e in block_nodes(block):
        if isinstance(e, (Read, SoftRead)) and e.kind == kind:
            names.add(e.slot[0] if isinstance(e, Read) else e.name)
    return names


def used_nets(block: Block) -> set[str]:
    return {e.fn.name for e in block_nodes(block) if isinstance(e, NetCall)}
