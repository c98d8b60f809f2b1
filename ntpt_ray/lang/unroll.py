"""From the program statements of an NTPT source to the unrolled IR, checking as it goes.

Loops are unrolled, compile-time names (hyper-parameters, loop counters, ``with`` values,
``name = constant`` bindings) are substituted, and ``if``s on constants are resolved.

A name bound to anything else (``instr = instructions[ip]``, TerpreT's aliases) stands for that
element or expression wherever it is used later: read, tested, enumerated by ``with``, passed,
assigned with ``.set_to``, or indexed further (``x = arr[i]``, then ``x[j]``). The compile-time
names in it are substituted when it is bound (a loop counter may change later).

``@Inline`` functions are macros, as in TerpreT: each argument is bound to its parameter like a
binding (a constant or an alias) and the body is unrolled at the call site. Called as a value, an
``@Inline`` function's body must be a single ``return <expression>``.

The checks enforce the TerpreT discipline. A Var element is assigned once on a path and never
read before; one assigned in only some arms of a branch is a temporary local to those arms.
Outputs are observed variables: ``out[i].set_to(v)`` writes one exactly once on every path.
Alternatively a model halts: ``out.halt_with(v)`` writes an Output and ends the program (the
first on a path wins); a model uses one style or the other. ``P[i].set_to_constant(v)`` fixes
a Param element. Values fit their ranges and Tensors only flow into ``@Learn`` functions.
"""

from __future__ import annotations

import ast
import copy
import itertools
import operator
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .consteval import NotConstant, const_eval
from .errors import NTPTError
from .frontend import ModuleLevel
from .ir import (
    Assign,
    Block,
    BoolOp,
    Branch,
    Call,
    Cond,
    Const,
    Decl,
    Emit,
    Expr,
    NetCall,
    Not,
    Read,
    Same,
    Slot,
    SoftRead,
    TensorRef,
    Test,
    block_nodes,
    slot_name,
)
from .limits import limit, over

_ORDER_OPS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
              ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}
_FLIPPED = {ast.Lt: ast.Gt, ast.LtE: ast.GtE, ast.Gt: ast.Lt, ast.GtE: ast.LtE,
            ast.Eq: ast.Eq, ast.NotEq: ast.NotEq}
_UNBOUND = object()
_METHODS = ("set_to", "halt_with", "set_to_constant")

Binding = tuple[Any, ast.expr | None]
"""What a name is bound to: a constant (or ``_UNBOUND``) and an alias (or None)."""


class _Substitute(ast.NodeTransformer):
    """Expands aliases and replaces compile-time integer names by their values."""

    def __init__(self, scope: Mapping[str, Any], aliases: Mapping[str, ast.expr]):
        self.scope, self.aliases = scope, aliases

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if node.id in self.aliases:
            return copy.deepcopy(self.aliases[node.id])
        value = self.scope.get(node.id)
        if isinstance(value, int):
            return ast.copy_location(ast.Constant(value), node)
        return node


class Unroller:
    """Unrolls ``module.body`` into a :data:`Block`; then ``fixed`` and ``halts`` describe it."""

    def __init__(self, module: ModuleLevel):
        self.m = module
        self.scope: dict[str, Any] = dict(module.hypers)
        self.aliases: dict[str, ast.expr] = {}
        self.assigned: set[Slot] = set()
        self.partial: dict[Slot, tuple[str, int]] = {}  # assigned in some arms of (kind, line)
        self.fixed: dict[Slot, int] = {}
        self.styles: dict[str, int] = {}  # how Outputs are written (set_to / halt_with): first line
        self.random_depth = 0  # arms of branches on random values around the current statement
        self.inlining: list[str] = []
        self.unrolled = 0  # statements, loop iterations and read options so far
        self.max_unrolled = limit("MAX_UNROLLED")

    def error(self, message: str, node: ast.AST | int | None) -> NTPTError:
        line = node if isinstance(node, int) else getattr(node, "lineno", None)
        return NTPTError(message, filename=self.m.filename, line=line)

    @property
    def halts(self) -> bool:
        """Whether the program ends with ``halt_with`` (rather than setting its Outputs)."""
        return "halt_with" in self.styles

    def run(self) -> Block:
        body = self.block(self.m.body)
        if not self.halts:
            self.check_outputs_written()
        return body

    def check_outputs_written(self) -> None:
        for decl in self.m.decls.values():
            if decl.kind != "Output":
                continue
            for slot in decl.slots():
                if slot not in self.assigned:
                    raise self.error(f"{slot_name(slot)} is never written: an Output is written once "
                                     "on every path, with .set_to(...)", decl.line)

    # ------------------------------------------------------------------ statements

    def grow(self, n: int, node: ast.AST) -> None:
        """Count ``n`` more unrolled items (a statement, loop iterations, read options): a
        one-line error at ``node`` past the limit, before any of them is built."""
        self.unrolled += n
        if self.unrolled > self.max_unrolled:
            message = over("MAX_UNROLLED", self.unrolled, bound=self.max_unrolled)
            raise self.error(f"the unrolled program grows to {message}", node)

    def block(self, stmts: list[ast.stmt]) -> Block:
        out: Block = []
        for stmt in stmts:
            self.statement(stmt, out)
        return out

    def statement(self, stmt: ast.stmt, out: Block) -> None:
        self.grow(1, stmt)
        if isinstance(stmt, ast.Pass) or _is_docstring(stmt):
            return
        if isinstance(stmt, ast.Expr):
            self.expression_statement(stmt, out)
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

    def expression_statement(self, stmt: ast.Expr, out: Block) -> None:
        call = stmt.value
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) \
                and call.func.id in self.m.inline_fns:
            self.inline(call, out)
            return
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and call.func.attr in _METHODS):
            raise self.error("a statement has no effect; did you mean X.set_to(...)?", stmt)
        method = call.func.attr
        if len(call.args) != 1 or call.keywords:
            raise self.error(f"{method} takes exactly one value", stmt)
        if method == "set_to_constant":
            self.set_to_constant(call, stmt)
        else:
            out.append(self.set_to(call, stmt, halt=method == "halt_with"))

    # ------------------------------------------------------------------ names

    def check_bindable(self, name: str, node: ast.AST) -> None:
        m = self.m
        if name in m.decls or name in m.runtime_fns or name in m.learn_fns or name in m.inline_fns:
            raise self.error(f"'{name}' is already declared and cannot be rebound", node)

    def bind(self, name: str, value: Any, node: ast.AST) -> None:
        self.check_bindable(name, node)
        self.aliases.pop(name, None)
        self.scope[name] = value

    def bind_alias(self, name: str, expr: ast.expr, node: ast.AST) -> None:
        """Bind ``name`` to ``expr``, already substituted (see :meth:`substitute`)."""
        self.check_bindable(name, node)
        if not _is_alias_form(expr):
            raise self.error(f"'{name} = ...' must be a compile-time constant or name an element, "
                             "a call or a declared name (arithmetic on random values goes through an "
                             "@Runtime function; to store a value declare a Var and use .set_to)", node)
        for sub in ast.walk(expr):
            if isinstance(sub, ast.Name) and not self.known_name(sub.id):
                raise self.error(f"unknown name '{sub.id}'", node)
        self.scope.pop(name, None)
        self.aliases[name] = expr

    def known_name(self, name: str) -> bool:
        m = self.m
        return any(name in d for d in (m.decls, m.runtime_fns, m.learn_fns, m.inline_fns, self.scope))

    def bind_value(self, name: str, node: ast.expr, where: ast.AST) -> None:
        """Bind ``name`` to a substituted expression: as a constant when it is one, else as an alias."""
        try:
            self.bind(name, const_eval(node, self.scope), where)
        except NotConstant:
            self.bind_alias(name, node, where)
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise self.error(f"cannot evaluate the value of '{name}': {exc}", where) from None

    def substitute(self, node: ast.expr) -> ast.expr:
        """A copy of ``node`` with aliases expanded and compile-time integers substituted."""
        return _Substitute(self.scope, self.aliases).visit(copy.deepcopy(node))

    def lookup(self, name: str) -> Binding:
        return self.scope.get(name, _UNBOUND), self.aliases.get(name)

    def rebind(self, name: str, binding: Binding) -> None:
        value, alias = binding
        self.scope.pop(name, None)
        self.aliases.pop(name, None)
        if value is not _UNBOUND:
            self.scope[name] = value
        elif alias is not None:
            self.aliases[name] = alias

    def binding(self, stmt: ast.Assign) -> None:
        if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
            raise self.error("only 'name = value' bindings are allowed in a program; "
                             "assign Vars with .set_to(...)", stmt)
        value = stmt.value
        while isinstance(value, ast.Subscript):
            value = value.value
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) \
                and value.func.id in ("Param", "Var", "Input", "Output", "InputTensor", "Hyper"):
            raise self.error("declarations belong at module level, not inside for/with or an if on "
                             "random values", stmt)
        self.bind_value(stmt.targets[0].id, self.substitute(stmt.value), stmt)

    # ------------------------------------------------------------------ loops and inlining

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
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise self.error(f"cannot evaluate the range of the loop: {exc}", stmt) from None
        self.grow(len(values), stmt)
        saved = self.lookup(stmt.target.id)
        for value in values:
            self.bind(stmt.target.id, value, stmt)
            for inner in stmt.body:
                self.statement(inner, out)
        if saved != (_UNBOUND, None):
            self.rebind(stmt.target.id, saved)

    def inline(self, call: ast.Call, out: Block | None) -> Expr | TensorRef | None:
        """Expand an ``@Inline`` call: in ``out`` as statements, or (``out`` None) as a value."""
        name = call.func.id
        fn = self.m.inline_fns[name]
        params = [a.arg for a in fn.args.args]
        if call.keywords or len(call.args) != len(params):
            raise self.error(f"{name} takes {len(params)} positional arguments, got "
                             f"{len(call.args)}{' and keywords' if call.keywords else ''}", call)
        if name in self.inlining:
            raise self.error(f"@Inline function '{name}' calls itself; it cannot be inlined", call)
        body = [s for s in fn.body if not _is_docstring(s)]
        if out is None and not (len(body) == 1 and isinstance(body[0], ast.Return)
                                and body[0].value is not None):
            raise self.error(f"@Inline function '{name}' is used as a value, so its body must be a "
                             "single 'return <expression>'", call)
        args = [self.substitute(a) for a in call.args]  # in the caller's scope
        saved = {p: self.lookup(p) for p in params}
        self.inlining.append(name)
        try:
            for param, arg in zip(params, args):
                self.bind_value(param, arg, call)
            if out is None:
                return self.expr(body[0].value)
            for stmt in body:
                if isinstance(stmt, ast.Return):
                    raise self.error(f"'return' in @Inline function '{name}', which is called as a "
                                     "statement", stmt)
                self.statement(stmt, out)
            return None
        finally:
            self.inlining.pop()
            for param, binding in saved.items():
                self.rebind(param, binding)

    # ------------------------------------------------------------------ assignments

    def set_to(self, call: ast.Call, stmt: ast.Expr, halt: bool) -> Assign | Emit:
        decl, slot = self.target(call.func.value)
        value = self.integer(call.args[0], f"the value assigned to {slot_name(slot)}")
        if isinstance(value, Const) and value.value >= decl.size:
            raise self.error(f"value {value.value} is out of range for {slot_name(slot)}, "
                             f"which holds 0..{decl.size - 1}", stmt)
        if value.size > decl.size:
            raise self.error(f"{slot_name(slot)} holds 0..{decl.size - 1} but is assigned a value "
                             f"ranging over 0..{value.size - 1}", stmt)
        if decl.kind == "Output":
            self.output_style("halt_with" if halt else "set_to", stmt)
            if halt:
                return Emit(slot, decl.size, value, stmt.lineno)
        elif halt:
            raise self.error(f"halt_with writes an Output and ends the program; '{decl.name}' is a "
                             f"{decl.kind}: use .set_to(...)", stmt)
        if slot in self.assigned:
            raise self.error(f"{slot_name(slot)} is assigned twice; a {decl.kind} element is "
                             "assigned once on a path (use an array indexed by the time step)", stmt)
        self.assigned.add(slot)
        return Assign(slot, decl.size, value, stmt.lineno)

    def output_style(self, style: str, stmt: ast.stmt) -> None:
        other = "set_to" if style == "halt_with" else "halt_with"
        if other in self.styles:
            raise self.error(f"an Output is written with {style} here but with {other} at line "
                             f"{self.styles[other]}; a model either halts (halt_with) or sets its "
                             "Outputs (set_to), not both", stmt)
        self.styles.setdefault(style, stmt.lineno)

    def set_to_constant(self, call: ast.Call, stmt: ast.Expr) -> None:
        decl, slot = self.target(call.func.value, "set_to_constant")
        try:
            value = const_eval(call.args[0], self.scope)
        except NotConstant:
            raise self.error(f"the value given to {slot_name(slot)}.set_to_constant must be a "
                             "compile-time constant", stmt) from None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < decl.size:
            raise self.error(f"value {value!r} is out of range for {slot_name(slot)}, which holds "
                             f"0..{decl.size - 1}", stmt)
        if self.random_depth:
            raise self.error(f"{slot_name(slot)}.set_to_constant is inside an if/with on a random "
                             "value; a Param is fixed unconditionally", stmt)
        if slot in self.fixed:
            raise self.error(f"{slot_name(slot)} is fixed twice (set_to_constant)", stmt)
        self.fixed[slot] = value

    def target(self, node: ast.expr, method: str = "set_to") -> tuple[Decl, Slot]:
        name, index_nodes = self.split(node)
        decl = self.declared(name, node)
        if method == "set_to_constant" and decl.kind != "Param":
            raise self.error(f"cannot fix {decl.kind} '{name}' with set_to_constant: only Params are "
                             "fixed (assign Vars and Outputs with .set_to)", node)
        if method == "set_to" and decl.kind not in ("Var", "Output"):
            raise self.error(f"cannot assign to {decl.kind} '{name}': only Vars and Outputs are "
                             "assigned (fix a Param element with .set_to_constant)", node)
        index = []
        for axis, i in enumerate(self.indices(decl, index_nodes, node)):
            if not isinstance(i, int):
                raise self.error(f"the index of a {method} target ({name}, axis {axis}) must be a "
                                 "compile-time constant; use 'with x as i:' to choose", node)
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
        saved = self.lookup(name)
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
        self.rebind(name, saved)

    def branch(self, arms: list[tuple[Cond | None, Callable[[], Block]]], stmt: ast.stmt,
               subject: Expr | None, masks) -> Branch:
        """Compile each arm on its own copy of the assigned set; what every arm assigns is
        merged after the chain, what only some assign is local to them (never an Output)."""
        before, partial = self.assigned, dict(self.partial)
        compiled, news = [], []
        self.random_depth += 1
        for cond, compile_arm in arms:
            self.assigned, self.partial = set(before), dict(partial)
            compiled.append((cond, compile_arm()))
            news.append(self.assigned - before)
            partial.update(self.partial)
        self.random_depth -= 1
        every = set.intersection(*news)
        kind = "with" if isinstance(stmt, ast.With) else "if"
        for slot in sorted(set.union(*news) - every):
            if self.m.decls[slot[0]].kind == "Output":
                raise self.error(f"{slot_name(slot)} is written in some branches of this {kind} but "
                                 "not in all of them (an Output is written once on every path: add "
                                 "an else, or write it in every branch)", stmt)
            partial[slot] = (kind, stmt.lineno)
        self.assigned, self.partial = before | every, partial
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
                values = const_eval(right, self.scope)
                values = values if isinstance(values, range) else set(values)
            except (NotConstant, TypeError, ValueError):
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
        if isinstance(expr, Const):
            return bool(predicate(expr.value))
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
        if isinstance(node, ast.Name) and node.id in self.aliases:
            return self.expr(self.aliases[node.id])
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
        """``x[a][b, c]`` -> ("x", [a, b, c]), through aliases (``x = arr[i]``: ``x[j]`` -> arr[i, j])."""
        index: list[ast.expr] = []
        while isinstance(node, ast.Subscript):
            s = node.slice
            index[:0] = s.elts if isinstance(s, ast.Tuple) else [s]
            node = node.value
        if isinstance(node, ast.Name) and node.id in self.aliases:
            name, inner = self.split(self.aliases[node.id])
            return name, inner + index
        if not isinstance(node, ast.Name):
            raise self.error(f"'{ast.unparse(node)}' is not an element of a declared name", node)
        return node.id, index

    def declared(self, name: str, node: ast.AST) -> Decl:
        if name in self.m.decls:
            return self.m.decls[name]
        if name in self.m.runtime_fns or name in self.m.learn_fns or name in self.m.inline_fns:
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
        self.grow(int(np.prod([e.size for e in random], dtype=object)), node)
        options = []
        for values in itertools.product(*(range(e.size) for e in random)):
            it = iter(values)
            slot = (name, tuple(i if isinstance(i, int) else next(it) for i in index))
            self.check_assigned(decl, slot, node)
            options.append((values, slot))
        return SoftRead(name, tuple(random), tuple(options), decl.size, decl.kind)

    def check_assigned(self, decl: Decl, slot: Slot, node: ast.AST) -> None:
        if decl.kind != "Var" or slot in self.assigned:
            return
        if slot in self.partial:
            kind, line = self.partial[slot]
            raise self.error(f"{slot_name(slot)} is read before it is assigned: it is assigned only in "
                             f"some branches of the {kind} at line {line}", node)
        raise self.error(f"{slot_name(slot)} is read before it is assigned", node)

    def call(self, node: ast.Call) -> Expr | TensorRef:
        name = node.func.id
        if name in self.m.inline_fns:
            return self.inline(node, None)
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
            if all(isinstance(a, Const) for a in args):  # zero-argument functions too
                return Const(int(fn.table[tuple(a.value for a in args)]), fn.size)
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


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) \
        and isinstance(stmt.value.value, str)


def _is_alias_form(node: ast.expr) -> bool:
    return isinstance(node, (ast.Name, ast.Subscript)) or \
        (isinstance(node, ast.Call) and isinstance(node.func, ast.Name))


def read_slots(block: Block, kind: str) -> set[Slot]:
    """The elements of ``kind`` (e.g. Param) read anywhere in the block, soft reads included."""
    slots = set()
    for e in block_nodes(block):
        if isinstance(e, Read) and e.kind == kind:
            slots.add(e.slot)
        elif isinstance(e, SoftRead) and e.kind == kind:
            slots.update(slot for _, slot in e.options)
    return slots


def used_nets(block: Block) -> set[str]:
    return {e.fn.name for e in block_nodes(block) if isinstance(e, NetCall)}
