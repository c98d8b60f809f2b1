"""Module level of an NTPT source: hyper-parameters, declarations and functions.

An NTPT model is written in Python syntax (like TerpreT) but never run as Python: it is
parsed with :mod:`ast`. At module level it holds

* hyper-parameters: ``M = 18``, ``NOOP, MOVE = range(2)`` (compile-time integers), and
  ``N = Hyper()``, whose value must be given when compiling (TerpreT's hypers files);
* declarations: ``Param(n)``, ``Var(n)``, ``Input(n)``, ``Output(n)``, optionally arrays
  ``Var(n)[T]`` / ``Var(n)[R, T]``, and tensor inputs ``InputTensor(28, 28)[4]``
  (``Input(Tensor(28, 28))`` is accepted too);
* ``@Runtime([sizes], size)`` integer functions, ``@Learn([dims], size, hid_sizes=[..])``
  neural functions and ``@Inline`` functions (macros expanded at their call sites, see
  :mod:`.unroll`);
* ``if``s whose test is a compile-time constant: their chosen arm is read as module level;
* the program: everything else (``.set_to`` statements, ``for``/``if``/``with`` blocks,
  ``name = element`` aliases), in order (see :mod:`.unroll`).

``from dummy import ...`` (TerpreT's imports) and docstrings are skipped.
"""

from __future__ import annotations

import ast
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .consteval import NotConstant, const_eval
from .errors import NTPTError
from .ir import Decl, LearnFn, RuntimeFn
from .limits import over
from .runtime_eval import runtime_function

DECL_KINDS = ("Param", "Var", "Input", "Output")


@dataclass
class ModuleLevel:
    """What the module level of a source defines, for one setting of the hyper-parameters."""

    filename: str
    hypers: dict[str, int]
    decls: dict[str, Decl] = field(default_factory=dict)
    runtime_fns: dict[str, RuntimeFn] = field(default_factory=dict)
    learn_fns: dict[str, LearnFn] = field(default_factory=dict)
    inline_fns: dict[str, ast.FunctionDef] = field(default_factory=dict)
    body: list[ast.stmt] = field(default_factory=list)


class Frontend:
    """Reads the module level of ``tree`` with the given hyper-parameter overrides."""

    def __init__(self, tree: ast.Module, filename: str, overrides: dict[str, int]):
        self.filename = filename
        self.overrides = dict(overrides)
        self.out = ModuleLevel(filename=filename, hypers={})
        self.tree = tree
        self.python_fns: dict[str, Any] = {}  # @Runtime bodies, callable from later ones
        self.elements = 0  # values declared so far (see limits.MAX_ELEMENTS)

    def error(self, message: str, node: ast.AST | None) -> NTPTError:
        return NTPTError(message, filename=self.filename, line=getattr(node, "lineno", None))

    def const(self, node: ast.AST, what: str) -> Any:
        try:
            return const_eval(node, self.out.hypers)
        except NotConstant:
            raise self.error(f"{what} must be a compile-time constant", node) from None
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise self.error(f"cannot evaluate {what}: {exc}", node) from None

    def size(self, node: ast.AST, what: str, minimum: int = 1, bound: str | None = None) -> int:
        """A constant integer >= ``minimum`` (and within the limit ``bound``, when given)."""
        value = self.const(node, what)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(f"{what} must be an integer >= {minimum}, got {value!r}", node)
        return self.within(bound, value, what, node) if bound else value

    def within(self, bound: str, value: int, what: str, node: ast.AST | None) -> int:
        """``value``, or a one-line error when it exceeds the limit ``bound`` (limits.py)."""
        if (message := over(bound, value)) is not None:
            raise self.error(f"{what} is {message}", node)
        return value

    # ------------------------------------------------------------------ statements

    def run(self) -> ModuleLevel:
        self.statements(self.tree.body)
        known = set(self.out.hypers) | set(declared_hypers(self.tree))
        unknown = set(self.overrides) - known
        if unknown:
            raise self.error(f"unknown hyper-parameter(s) {sorted(unknown)}; the model defines "
                             f"{sorted(known)}", None)
        return self.out

    def statements(self, stmts: list[ast.stmt]) -> None:
        for stmt in stmts:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) \
                    and isinstance(stmt.value.value, str):
                continue  # a docstring
            if isinstance(stmt, ast.Assign):
                self.assignment(stmt)
            elif isinstance(stmt, ast.FunctionDef):
                self.function(stmt)
            elif isinstance(stmt, ast.If):
                self.module_if(stmt)
            elif isinstance(stmt, ast.While):
                raise self.error("unbounded loop: 'while' is not allowed; use "
                                 "'for i in range(N)' with a constant N", stmt)
            elif isinstance(stmt, (ast.Expr, ast.For, ast.With, ast.Pass)):
                self.out.body.append(stmt)
            else:
                raise self.error(f"unsupported statement '{type(stmt).__name__}'", stmt)

    def module_if(self, stmt: ast.If) -> None:
        """An ``if`` on hyper-parameters selects module-level code; any other is program."""
        try:
            chosen = const_eval(stmt.test, self.out.hypers)
        except NotConstant:
            self.out.body.append(stmt)
            return
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise self.error(f"cannot evaluate condition: {exc}", stmt) from None
        self.statements(stmt.body if chosen else stmt.orelse)

    def assignment(self, stmt: ast.Assign) -> None:
        if len(stmt.targets) != 1:
            raise self.error("chained assignment is not supported", stmt)
        target = stmt.targets[0]
        if _declaration_call(stmt.value) is not None:
            if not isinstance(target, ast.Name):
                raise self.error("a declaration must be assigned to a single name", stmt)
            self.declare(target.id, stmt.value)
            return
        if _is_call(stmt.value, "Hyper"):
            self.hyper(target, stmt)
            return
        names = _target_names(target)
        if names is None:
            raise self.error("only names can be assigned at module level", stmt)
        if isinstance(target, ast.Name) and _is_alias(stmt.value) and target.id not in self.overrides \
                and not self.is_constant(stmt.value):
            self.out.body.append(stmt)  # an alias of a program element: see Unroller.binding
            return
        if len(names) == 1 and names[0] in self.overrides:
            values = (self.overrides[names[0]],)
        else:
            value = self.const(stmt.value, f"the value of {', '.join(names)}")
            values = (value,) if isinstance(target, ast.Name) else tuple(value)
            if len(values) != len(names):
                raise self.error(f"cannot unpack {len(values)} values into {len(names)} names", stmt)
        for name, value in zip(names, values):
            self.set_hyper(name, value, stmt)

    def hyper(self, target: ast.expr, stmt: ast.Assign) -> None:
        """``name = Hyper()``: a hyper-parameter whose value is given at compile time."""
        if not isinstance(target, ast.Name) or stmt.value.args or stmt.value.keywords:
            raise self.error("declare a hyper-parameter as 'name = Hyper()'", stmt)
        name = target.id
        if name not in self.overrides:
            raise self.error(f"hyper-parameter '{name}' = Hyper() has no value; give it (a hypers "
                             f"file set or -H {name}=N)", stmt)
        self.set_hyper(name, self.overrides[name], stmt)

    def set_hyper(self, name: str, value: Any, stmt: ast.stmt) -> None:
        self.check_fresh(name, stmt)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"hyper-parameter {name} must be an integer, got {value!r}", stmt)
        self.out.hypers[name] = value

    def is_constant(self, node: ast.expr) -> bool:
        try:
            const_eval(node, self.out.hypers)
        except NotConstant:
            return False
        except (ArithmeticError, TypeError, ValueError):
            return True  # reported when evaluated
        return True

    def check_fresh(self, name: str, node: ast.AST) -> None:
        o = self.out
        if name in o.hypers or name in o.decls or name in o.runtime_fns or name in o.learn_fns \
                or name in o.inline_fns:
            raise self.error(f"'{name}' is defined twice", node)

    def declare(self, name: str, node: ast.expr) -> None:
        self.check_fresh(name, node)
        dims: list[ast.expr] = []
        while isinstance(node, ast.Subscript):
            index = node.slice
            dims[:0] = index.elts if isinstance(index, ast.Tuple) else [index]
            node = node.value
        call = node
        kind = call.func.id
        shape = tuple(self.size(d, f"array dimension of '{name}'", minimum=0) for d in dims)
        tensor_shape = None
        if kind == "InputTensor":
            kind, tensor_shape = "Input", self.tensor_dims(call.args, name, call)
            size = 0
        else:
            if len(call.args) != 1 or call.keywords:
                raise self.error(f"{kind}(...) takes one argument, the size of the range", call)
            arg = call.args[0]
            if _is_call(arg, "Tensor"):
                if kind != "Input":
                    raise self.error(f"only Inputs can hold Tensors, not {kind} '{name}'", call)
                tensor_shape, size = self.tensor_dims(arg.args, name, arg), 0
            else:
                size = self.size(arg, f"the range of {kind} '{name}'", bound="MAX_RANGE")
        self.elements += math.prod(shape) * (size or math.prod(tensor_shape))
        self.within("MAX_ELEMENTS", self.elements, f"the number of values declared up to '{name}' "
                    "(array elements x range, or x tensor size)", call)
        self.out.decls[name] = Decl(name, kind, size, shape, call.lineno, tensor_shape)

    def tensor_dims(self, args: list[ast.expr], name: str, node: ast.AST) -> tuple[int, ...]:
        if not args:
            raise self.error(f"Tensor '{name}' needs its dimensions, e.g. Tensor(28, 28)", node)
        return tuple(self.size(a, f"tensor dimension of '{name}'") for a in args)

    # ------------------------------------------------------------------ functions

    def function(self, fn: ast.FunctionDef) -> None:
        if len(fn.decorator_list) == 1 and _is_inline(fn.decorator_list[0]):
            self.inline(fn)
            return
        if len(fn.decorator_list) != 1 or not isinstance(fn.decorator_list[0], ast.Call) \
                or _call_name(fn.decorator_list[0]) not in ("Runtime", "Learn"):
            raise self.error(f"function '{fn.name}' needs one decorator, @Runtime([...], n), "
                             "@Learn([...], n, hid_sizes=[...]) or @Inline", fn)
        self.check_fresh(fn.name, fn)
        deco = fn.decorator_list[0]
        if _call_name(deco) == "Runtime":
            self.out.runtime_fns[fn.name] = self.runtime(fn, deco)
        else:
            self.out.learn_fns[fn.name] = self.learn(fn, deco)

    def inline(self, fn: ast.FunctionDef) -> None:
        self.check_fresh(fn.name, fn)
        a = fn.args
        if a.vararg or a.kwarg or a.kwonlyargs or a.defaults or a.posonlyargs:
            raise self.error(f"@Inline function '{fn.name}' takes plain positional arguments only", fn)
        self.out.inline_fns[fn.name] = fn

    def runtime(self, fn: ast.FunctionDef, deco: ast.Call) -> RuntimeFn:
        if len(deco.args) != 2 or deco.keywords:
            raise self.error("@Runtime takes two arguments: [argument ranges], result range", deco)
        arg_sizes = self.const(deco.args[0], f"the argument ranges of '{fn.name}'")
        if not isinstance(arg_sizes, tuple) or not all(isinstance(a, int) and a >= 1 for a in arg_sizes):
            raise self.error(f"@Runtime of '{fn.name}': the argument ranges must be a list of "
                             "positive integers", deco)
        size = self.size(deco.args[1], f"the result range of '{fn.name}'", bound="MAX_RANGE")
        if len(fn.args.args) != len(arg_sizes):
            raise self.error(f"'{fn.name}' takes {len(fn.args.args)} arguments but @Runtime "
                             f"declares {len(arg_sizes)} ranges", fn)
        self.within("MAX_TABLE", math.prod(arg_sizes), f"the table of '{fn.name}' (the product of "
                    "its argument ranges)", fn)
        python = self.python_fns[fn.name] = self.python_function(fn)
        table = np.empty(arg_sizes, dtype=np.int64)
        for args in itertools.product(*(range(n) for n in arg_sizes)):
            call = f"{fn.name}({', '.join(map(str, args))})"
            try:
                value = python(*args)
            except Exception as exc:  # the user's function failed: say where and on what
                raise self.error(f"{call} raised {type(exc).__name__}: {exc}", fn) from None
            if isinstance(value, bool):
                value = int(value)
            if not isinstance(value, (int, np.integer)) or not 0 <= value < size:
                raise self.error(f"{call} returned {value!r}, outside its declared range "
                                 f"0..{size - 1}", fn)
            table[args] = value
        return RuntimeFn(fn.name, tuple(arg_sizes), size, table, fn.lineno)

    def python_function(self, fn: ast.FunctionDef):
        return runtime_function(fn, constants=self.out.hypers, functions=self.python_fns,
                                filename=self.filename)

    def learn(self, fn: ast.FunctionDef, deco: ast.Call) -> LearnFn:
        if len(deco.args) != 2:
            raise self.error("@Learn takes [argument dims], result range, hid_sizes=[...]", deco)
        if not isinstance(deco.args[0], (ast.List, ast.Tuple)):
            raise self.error(f"@Learn of '{fn.name}': the first argument must be a list", deco)
        dims: list[tuple[int, ...] | int] = []
        for d in deco.args[0].elts:
            if _is_call(d, "Tensor"):
                dims.append(self.tensor_dims(d.args, fn.name, d))
            else:
                dims.append(self.size(d, f"an argument range of '{fn.name}'", bound="MAX_RANGE"))
        if _is_call(deco.args[1], "Tensor"):
            raise self.error(f"'{fn.name}': @Learn functions returning Tensors are not supported; "
                             "return an integer range", deco)
        size = self.size(deco.args[1], f"the result range of '{fn.name}'", bound="MAX_RANGE")
        hidden: tuple[int, ...] = ()
        for kw in deco.keywords:
            if kw.arg != "hid_sizes":
                raise self.error(f"@Learn has no option '{kw.arg}' (only hid_sizes)", deco)
            hidden = self.const(kw.value, "hid_sizes")
            if not isinstance(hidden, tuple) or not all(isinstance(h, int) and h > 0 for h in hidden):
                raise self.error("hid_sizes must be a list of positive integers", kw.value)
        if len(fn.args.args) != len(dims):
            raise self.error(f"'{fn.name}' takes {len(fn.args.args)} arguments but @Learn "
                             f"declares {len(dims)}", fn)
        learn = LearnFn(fn.name, tuple(dims), size, tuple(hidden), fn.lineno)
        widths = (learn.in_features, *hidden, size)
        self.within("MAX_ELEMENTS", sum(a * b for a, b in itertools.pairwise(widths)),
                    f"the number of weights of net '{fn.name}'", deco)
        return learn


def _call_name(node: ast.AST) -> str | None:
    return node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else None


def _is_call(node: ast.AST, name: str) -> bool:
    return _call_name(node) == name


def _is_inline(deco: ast.expr) -> bool:
    """``@Inline`` or ``@Inline()``."""
    return (isinstance(deco, ast.Name) and deco.id == "Inline") or \
        (_is_call(deco, "Inline") and not deco.args and not deco.keywords)


def _is_alias(node: ast.expr) -> bool:
    """Whether ``name = node`` may bind ``name`` to a program element or expression."""
    return isinstance(node, (ast.Name, ast.Subscript, ast.Call)) and _declaration_call(node) is None


def declared_hypers(tree: ast.Module) -> list[str]:
    """The names declared ``name = Hyper()`` at module level (in module-level ifs too), in order."""
    found = []

    def scan(stmts: list[ast.stmt]) -> None:
        for stmt in stmts:
            if isinstance(stmt, ast.Assign) and _is_call(stmt.value, "Hyper") \
                    and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                found.append(stmt.targets[0].id)
            elif isinstance(stmt, ast.If):
                scan(stmt.body)
                scan(stmt.orelse)

    scan(tree.body)
    return found


def _declaration_call(node: ast.AST) -> ast.Call | None:
    while isinstance(node, ast.Subscript):
        node = node.value
    return node if _call_name(node) in (*DECL_KINDS, "InputTensor") else None


def _target_names(target: ast.expr) -> list[str] | None:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple) and all(isinstance(e, ast.Name) for e in target.elts):
        return [e.id for e in target.elts]
    return None
