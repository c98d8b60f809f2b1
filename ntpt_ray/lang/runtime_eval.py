"""Restricted evaluation of ``@Runtime`` function bodies: parsed, checked and walked, never run as Python.

:func:`runtime_function` checks every node of a body when the function is defined (so a forbidden
construct is reported even on a branch never taken) and turns each node into a small closure; calling
the result evaluates those closures. Allowed, and nothing else:

* parameters: plain positional ones (no defaults, ``/``, ``*args``, keyword-only, ``**kwargs`` or
  annotations);
* statements: ``if``/``elif``/``else``, ``return <value>``, assignments to local names (``x = ...``,
  ``x = y = ...``, ``x += ...``, tuple unpacking ``row, col = divmod(cell, 2)``), ``pass`` and a
  docstring;
* expressions: int and bool constants; names of the parameters, locals and the model's
  hyper-parameters; ``+ - * / // % **``, ``& | ^ << >> ~``, unary ``- + not``, comparisons
  ``== != < <= > >=`` (chained too), ``and``/``or``, ``a if c else b``, tuples; calls, with
  positional arguments, of ``int``, ``bool``, ``min``, ``max``, ``abs``, ``divmod`` and of the
  @Runtime functions defined before.

Values and operators are Python's, so results are exactly what Python computes, and falling off the
end returns None. So that a model cannot hang the compiler, ``**`` needs an integer exponent 0..64
and a base of magnitude at most 2**64, ``<<`` shifts by at most 64, arithmetic takes numbers only
and no integer result may exceed 4096 bits.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

from .errors import NTPTError

Env = dict[str, Any]  # the locals of one call
Expr = Callable[[Env], Any]
Stmt = Callable[[Env], Any]  # returns the value returned, or _NEXT to go on with the next statement
Store = Callable[[Env, Any], None]

BUILTINS: dict[str, Callable[..., Any]] = {
    "int": int, "bool": bool, "min": min, "max": max, "abs": abs, "divmod": divmod,
}
ALLOWED_CALLS = "allowed: int, bool, min, max, abs, divmod and other @Runtime functions"
MAX_EXPONENT = 64
MAX_BASE = 2**64
MAX_SHIFT = 64
MAX_BITS = 4096

_NEXT = object()
_NUMBERS = {int, bool, float}


def _power(base: Any, exponent: Any) -> Any:
    if isinstance(exponent, float) or not 0 <= exponent <= MAX_EXPONENT:
        raise ValueError(f"'**' needs an integer exponent 0..{MAX_EXPONENT}, got {exponent!r}")
    if abs(base) > MAX_BASE:
        raise ValueError(f"'**' needs a base of magnitude at most 2**64, got {base!r}")
    return base**exponent


def _lshift(value: Any, shift: Any) -> Any:
    if shift > MAX_SHIFT:
        raise ValueError(f"'<<' shifts by at most {MAX_SHIFT}, got {shift!r}")
    return value << shift


def _guarded(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """``op`` on numbers only (no tuple repetition), with integer results of at most MAX_BITS bits."""

    def apply(a: Any, b: Any) -> Any:
        if type(a) not in _NUMBERS or type(b) not in _NUMBERS:
            raise TypeError(f"arithmetic on {type(a).__name__} and {type(b).__name__} is not supported")
        result = op(a, b)
        if isinstance(result, int) and result.bit_length() > MAX_BITS:
            raise OverflowError(f"an integer result of more than {MAX_BITS} bits")
        return result

    return apply


# only these four can grow a value by more than a bit, or concatenate and repeat tuples
_BINOPS = {ast.Add: _guarded(operator.add), ast.Mult: _guarded(operator.mul), ast.Pow: _guarded(_power),
           ast.LShift: _guarded(_lshift), ast.Sub: operator.sub, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.BitAnd: operator.and_,
           ast.BitOr: operator.or_, ast.BitXor: operator.xor, ast.RShift: operator.rshift}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert, ast.Not: operator.not_}
_COMPARE = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}
_SYMBOLS = {ast.MatMult: "@", ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}
_FORBIDDEN = {  # what the error message calls a construct, with its verb
    ast.For: "loops ('for') are", ast.AsyncFor: "loops ('async for') are", ast.While: "loops ('while') are",
    ast.Break: "'break' is", ast.Continue: "'continue' is", ast.Import: "'import' is",
    ast.ImportFrom: "'import' is", ast.Lambda: "'lambda' is", ast.ListComp: "comprehensions are",
    ast.SetComp: "comprehensions are", ast.DictComp: "comprehensions are",
    ast.GeneratorExp: "generator expressions are", ast.With: "'with' is", ast.AsyncWith: "'with' is",
    ast.Try: "'try' is", ast.TryStar: "'try' is", ast.Raise: "'raise' is", ast.Assert: "'assert' is",
    ast.Global: "'global' is", ast.Nonlocal: "'nonlocal' is", ast.Delete: "'del' is",
    ast.FunctionDef: "nested functions are", ast.AsyncFunctionDef: "nested functions are",
    ast.ClassDef: "classes are", ast.Match: "'match' is", ast.AnnAssign: "annotated assignments are",
    ast.JoinedStr: "f-strings are", ast.NamedExpr: "the walrus operator (':=') is",
    ast.Starred: "starred expressions ('*x') are", ast.List: "lists are", ast.Dict: "dicts are",
    ast.Set: "sets are", ast.Await: "'await' is", ast.Yield: "'yield' is", ast.YieldFrom: "'yield' is",
    ast.Expr: "expression statements are",
}


def runtime_function(fn: ast.FunctionDef, constants: Mapping[str, int],
                     functions: Mapping[str, Callable[..., Any]], filename: str) -> Callable[..., Any]:
    """The @Runtime function ``fn`` as a callable ``f(*args)``; raises NTPTError if ``fn`` is not allowed.

    ``constants`` (the hyper-parameters) and ``functions`` (the @Runtime functions ``fn`` may call)
    are those defined before ``fn``; later additions to the mappings are not seen.
    """
    compiler = _Compiler(fn, constants, functions, filename)
    body, params, name = compiler.function_body(), compiler.params, fn.name

    def call(*args: Any) -> Any:
        if len(args) != len(params):
            raise TypeError(f"{name}() takes {len(params)} arguments but {len(args)} were given")
        result = body(dict(zip(params, args)))
        return None if result is _NEXT else result

    call.__name__ = call.__qualname__ = name
    return call


def _source(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 40 else text[:37] + "..."


def _assigned_names(body: list[ast.stmt]) -> set[str]:
    return {n.id for stmt in body for n in ast.walk(stmt) if isinstance(n, ast.Name)
            and isinstance(n.ctx, ast.Store)}


def _read_local(name: str) -> Expr:
    def read(env: Env) -> Any:
        try:
            return env[name]
        except KeyError:
            raise UnboundLocalError(f"local '{name}' is read before it is assigned") from None

    return read


class _Compiler:
    """Checks the nodes of one @Runtime function and turns each into a closure."""

    def __init__(self, fn: ast.FunctionDef, constants: Mapping[str, int],
                 functions: Mapping[str, Callable[..., Any]], filename: str):
        self.fn = fn
        self.filename = filename
        self.constants = dict(constants)
        self.functions = dict(functions)
        self.params = [a.arg for a in fn.args.args]
        self.assigned = _assigned_names(fn.body)
        self.locals = set(self.params) | self.assigned
        self.statements = {ast.Return: self.return_, ast.If: self.if_, ast.Assign: self.assign,
                           ast.AugAssign: self.aug_assign, ast.Pass: self.pass_, ast.Expr: self.expression}
        self.expressions = {ast.Constant: self.constant, ast.Name: self.name, ast.BinOp: self.binop,
                            ast.UnaryOp: self.unaryop, ast.Compare: self.compare, ast.BoolOp: self.boolop,
                            ast.IfExp: self.ifexp, ast.Tuple: self.tuple, ast.Call: self.call}

    def error(self, message: str, node: ast.AST) -> NTPTError:
        return NTPTError(f"@Runtime '{self.fn.name}': {message}", filename=self.filename,
                         line=getattr(node, "lineno", self.fn.lineno))

    def forbidden(self, node: ast.AST) -> NTPTError:
        if isinstance(node, ast.Attribute):
            what = f"attribute access ('{_source(node)}') is"
        elif isinstance(node, ast.Subscript):
            what = f"subscripts ('{_source(node)}') are"
        else:
            what = _FORBIDDEN.get(type(node), f"'{type(node).__name__}' is")
        return self.error(f"{what} not allowed", node)

    def function_body(self) -> Stmt:
        args = self.fn.args
        if args.posonlyargs or args.vararg or args.kwonlyargs or args.kwarg or args.defaults:
            raise self.error("only plain parameters are allowed (no defaults, '/', *args, keyword-only "
                             "parameters or **kwargs)", self.fn)
        for annotation in [a.annotation for a in args.args] + [self.fn.returns]:
            if annotation is not None:
                raise self.error("annotations are not allowed", annotation)
        body = self.fn.body
        return self.block(body[1:] if ast.get_docstring(self.fn, clean=False) is not None else body)

    # ------------------------------------------------------------------ statements

    def block(self, body: list[ast.stmt]) -> Stmt:
        statements = [self.statement(s) for s in body]
        if len(statements) == 1:
            return statements[0]

        def run(env: Env) -> Any:
            for statement in statements:
                result = statement(env)
                if result is not _NEXT:
                    return result
            return _NEXT

        return run

    def statement(self, node: ast.stmt) -> Stmt:
        compile_statement = self.statements.get(type(node))
        if compile_statement is None:
            raise self.forbidden(node)
        return compile_statement(node)

    def return_(self, node: ast.Return) -> Stmt:
        if node.value is None:
            raise self.error("'return' needs a value", node)
        return self.expr(node.value)  # the value is never _NEXT, so the block returns it

    def if_(self, node: ast.If) -> Stmt:
        test, body, orelse = self.expr(node.test), self.block(node.body), self.block(node.orelse)
        return lambda env: body(env) if test(env) else orelse(env)

    def assign(self, node: ast.Assign) -> Stmt:
        targets, value = [self.target(t) for t in node.targets], self.expr(node.value)

        def run(env: Env) -> Any:
            result = value(env)
            for target in targets:
                target(env, result)
            return _NEXT

        return run

    def aug_assign(self, node: ast.AugAssign) -> Stmt:
        if not isinstance(node.target, ast.Name):
            raise self.forbidden(node.target)
        name, op = node.target.id, self.binary_operator(node.op, node)
        current, value = _read_local(name), self.expr(node.value)

        def run(env: Env) -> Any:
            env[name] = op(current(env), value(env))
            return _NEXT

        return run

    def pass_(self, node: ast.Pass) -> Stmt:
        return lambda env: _NEXT

    def expression(self, node: ast.Expr) -> Stmt:
        self.expr(node.value)  # to name a forbidden construct inside, like os.system(...), first
        raise self.forbidden(node)

    def target(self, node: ast.expr) -> Store:
        if isinstance(node, ast.Name):
            name = node.id

            def store(env: Env, value: Any) -> None:
                env[name] = value

            return store
        if isinstance(node, ast.Tuple):
            parts = [self.target(e) for e in node.elts]

            def unpack(env: Env, value: Any) -> None:
                if not isinstance(value, tuple):
                    raise TypeError(f"cannot unpack a non-tuple {type(value).__name__}")
                if len(value) != len(parts):
                    raise ValueError(f"expected {len(parts)} values to unpack, got {len(value)}")
                for part, item in zip(parts, value):
                    part(env, item)

            return unpack
        raise self.forbidden(node)

    # ------------------------------------------------------------------ expressions

    def expr(self, node: ast.expr) -> Expr:
        compile_expr = self.expressions.get(type(node))
        if compile_expr is None:
            raise self.forbidden(node)
        return compile_expr(node)

    def constant(self, node: ast.Constant) -> Expr:
        value = node.value
        if isinstance(value, str):
            raise self.error("string constants are not allowed", node)
        if type(value) not in (int, bool):
            raise self.error(f"the constant {value!r} is not allowed (only int and bool constants)", node)
        return lambda env: value

    def name(self, node: ast.Name) -> Expr:
        name = node.id
        if name in self.params and name not in self.assigned:
            return operator.itemgetter(name)  # always bound: faster than _read_local
        if name in self.locals:
            return _read_local(name)
        if name in self.constants:
            value = self.constants[name]
            return lambda env: value
        if name in self.functions or name in BUILTINS:
            raise self.error(f"'{name}' can only be called", node)
        raise self.error(f"name '{name}' is not defined (names are parameters, locals and "
                         "hyper-parameters)", node)

    def binary_operator(self, op: ast.operator, node: ast.AST) -> Callable[[Any, Any], Any]:
        if type(op) not in _BINOPS:
            raise self.error(f"the operator '{_SYMBOLS[type(op)]}' is not allowed", node)
        return _BINOPS[type(op)]

    def binop(self, node: ast.BinOp) -> Expr:
        op = self.binary_operator(node.op, node)
        left, right = self.expr(node.left), self.expr(node.right)
        return lambda env: op(left(env), right(env))

    def unaryop(self, node: ast.UnaryOp) -> Expr:
        op, operand = _UNARY[type(node.op)], self.expr(node.operand)
        return lambda env: op(operand(env))

    def compare(self, node: ast.Compare) -> Expr:
        for op in node.ops:
            if type(op) not in _COMPARE:
                raise self.error(f"the comparison '{_SYMBOLS[type(op)]}' is not allowed", node)
        ops = [_COMPARE[type(op)] for op in node.ops]
        first, rest = self.expr(node.left), [self.expr(c) for c in node.comparators]
        if len(ops) == 1:
            op, second = ops[0], rest[0]
            return lambda env: op(first(env), second(env))

        def run(env: Env) -> Any:
            left = first(env)
            for op, comparator in zip(ops, rest):
                right = comparator(env)
                result = op(left, right)
                if not result:
                    return result
                left = right
            return result

        return run

    def boolop(self, node: ast.BoolOp) -> Expr:
        first, *rest = [self.expr(v) for v in node.values]
        stop = operator.not_ if isinstance(node.op, ast.And) else operator.truth

        def run(env: Env) -> Any:
            value = first(env)
            for operand in rest:
                if stop(value):
                    return value
                value = operand(env)
            return value

        return run

    def ifexp(self, node: ast.IfExp) -> Expr:
        test, body, orelse = self.expr(node.test), self.expr(node.body), self.expr(node.orelse)
        return lambda env: body(env) if test(env) else orelse(env)

    def tuple(self, node: ast.Tuple) -> Expr:
        items = [self.expr(e) for e in node.elts]
        return lambda env: tuple(item(env) for item in items)

    def call(self, node: ast.Call) -> Expr:
        if not isinstance(node.func, ast.Name):
            self.expr(node.func)  # names an attribute access, a lambda, ... first
            raise self.error(f"calls of '{_source(node.func)}' are not allowed ({ALLOWED_CALLS})", node)
        callee = self.callee(node.func.id, node)
        if node.keywords:
            raise self.error("keyword arguments are not allowed", node)
        args = [self.expr(a) for a in node.args]
        return lambda env: callee(*[a(env) for a in args])

    def callee(self, name: str, node: ast.Call) -> Callable[..., Any]:
        if name not in self.locals:  # as in Python, a local or hyper-parameter hides a builtin
            if name in self.functions:
                return self.functions[name]
            if name in BUILTINS and name not in self.constants:
                return BUILTINS[name]
        raise self.error(f"calls of '{name}' are not allowed ({ALLOWED_CALLS})", node)
