"""Evaluation of compile-time constant expressions (hyper-parameters, loop counters, indices)."""

from __future__ import annotations

import ast
import operator
from collections.abc import Mapping
from typing import Any

from .limits import over
from .runtime_eval import MAX_BITS, _power


def _sized(op):
    """``op``, refusing integers of more than MAX_BITS bits and tuples longer than a range may be."""

    def apply(a: Any, b: Any) -> Any:
        if isinstance(a, tuple) or isinstance(b, tuple):
            if type(a) is int or type(b) is int:  # repetition: check the length before building
                length = len(a if isinstance(a, tuple) else b) * (a if type(a) is int else b)
                if (message := over("MAX_UNROLLED", length, "elements")) is not None:
                    raise ValueError(f"a tuple of {message}")
            return op(a, b)
        result = op(a, b)
        if isinstance(result, int) and result.bit_length() > MAX_BITS:
            raise OverflowError(f"an integer of more than {MAX_BITS} bits")
        return result

    return apply


def _range(*args: int) -> range:
    values = range(*args)
    if (message := over("MAX_UNROLLED", len(values), "values")) is not None:
        raise ValueError(f"a range of {message}")
    return values


_BINOPS = {
    ast.Add: _sized(operator.add), ast.Sub: operator.sub, ast.Mult: _sized(operator.mul),
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: _sized(_power),
    ast.Div: operator.truediv,
}
_CMPOPS = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}
_FUNCS = {"range": _range, "min": min, "max": max, "abs": abs, "len": len, "int": int}


class NotConstant(Exception):
    """The expression depends on something only known when the program runs."""


def const_eval(node: ast.AST, scope: Mapping[str, Any]) -> Any:
    """Evaluate ``node`` using only the constants in ``scope``; raise NotConstant otherwise."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, bool)):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in scope:
            return scope[node.id]
        raise NotConstant
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](const_eval(node.left, scope), const_eval(node.right, scope))
    if isinstance(node, ast.UnaryOp):
        value = const_eval(node.operand, scope)
        if isinstance(node.op, ast.USub):
            return -value
        if isinstance(node.op, ast.UAdd):
            return value
        if isinstance(node.op, ast.Not):
            return not value
    if isinstance(node, ast.Compare) and all(type(op) in _CMPOPS for op in node.ops):
        values = [const_eval(node.left, scope)] + [const_eval(c, scope) for c in node.comparators]
        return all(_CMPOPS[type(op)](a, b) for op, a, b in zip(node.ops, values, values[1:]))
    if isinstance(node, ast.BoolOp):
        values = [const_eval(v, scope) for v in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.IfExp):
        return const_eval(node.body if const_eval(node.test, scope) else node.orelse, scope)
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(const_eval(e, scope) for e in node.elts)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in _FUNCS and node.func.id not in scope and not node.keywords):
        return _FUNCS[node.func.id](*(const_eval(a, scope) for a in node.args))
    raise NotConstant

