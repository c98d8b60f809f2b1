"""The restricted evaluator of @Runtime bodies: TerpreT's functions tabulate right, nothing else runs."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ntpt_ray.lang.errors import NTPTError
from ntpt_ray.lang.model import Model


def table(source: str, name: str = "f") -> np.ndarray:
    source = textwrap.dedent(source) + "\n_out = Output(2)\n_out.set_to(0)\n"
    return Model(source, filename="t.py").compile().runtime_fns[name].table


def reference(fn, *sizes: int) -> np.ndarray:
    out = np.empty(sizes, dtype=np.int64)
    for args in itertools.product(*(range(n) for n in sizes)):
        out[args] = fn(*args)
    return out


@pytest.mark.parametrize("name", ["math", "grid2x2"])
def test_shipped_models_compile(name):
    from ntpt_ray.problems import load_model

    assert load_model(name).compile().runtime_fns


M = 5
# (body of f(a, b) over [M, M] -> M, the same function in Python); bodies as in /work/shared/terpret/models
BINARY = {
    "inc": ("return (a + 1) % maxInt", lambda a, b: (a + 1) % M),
    "add": ("return (a + b) % maxInt", lambda a, b: (a + b) % M),
    "sub": ("return (a - b) % maxInt", lambda a, b: (a - b) % M),
    "less_than": ("return 1 if a < b else 0", lambda a, b: 1 if a < b else 0),
    "and": ("return int(a and b) % 2", lambda a, b: int(a and b) % 2),
    "or": ("return int(a or b) % 2", lambda a, b: int(a or b) % 2),
    "xor": ("return (a ^ b) % maxInt", lambda a, b: (a ^ b) % M),
    "not": ("return int(not a)", lambda a, b: int(not a)),
    "chain": ("return 0 < a <= b", lambda a, b: 0 < a <= b),
    "floor": ("return ((a - 2 * b) // 3 + (-a % 2 == 1) - (True + 1)) % maxInt",
              lambda a, b: ((a - 2 * b) // 3 + (-a % 2 == 1) - (True + 1)) % M),
    "bits": ("return ((a << 3 | b) >> 1 & ~a ^ -b ** 2) % maxInt",
             lambda a, b: ((a << 3 | b) >> 1 & ~a ^ -b ** 2) % M),
    "divide": ("return int(a / (b + 1)) + max(a, b) - min(a, b) - abs(a - b)",
               lambda a, b: int(a / (b + 1)) + max(a, b) - min(a, b) - abs(a - b)),
    "assign": ("x = y = a\n    x += b\n    return bool(x % 2) + y // 3",
               lambda a, b: bool((a + b) % 2) + a // 3),
}


@pytest.mark.parametrize("name", BINARY)
def test_terpret_function_bodies(name):
    body, fn = BINARY[name]
    source = f"maxInt = {M}\n@Runtime([maxInt, maxInt], maxInt)\ndef f(a, b):\n    {body}\n"
    assert np.array_equal(table(source), reference(fn, M, M))


def test_move_with_elif_and_a_hyper_parameter():
    source = """
        tapeLength = 5
        @Runtime([tapeLength, 3], tapeLength)
        def move(pos, dir):
            "Moves the head."
            if dir == 0:
                return pos
            elif dir == 1:
                return (pos + 1) % tapeLength
            elif dir == 2:
                return (pos - 1) % tapeLength
    """
    expected = reference(lambda p, d: [p, (p + 1) % 5, (p - 1) % 5][d], 5, 3)
    assert np.array_equal(table(source, "move"), expected)


def test_divmod_unpacking_and_calling_an_earlier_function():
    source = """
        NORTH, SOUTH, EAST, WEST = range(4)
        @Runtime([4], 4)
        def Inc(a): return (a + 1) % 4
        @Runtime([4, 4], 4)
        def f(cell, instruction):
            row, col = divmod(cell, 2)
            if instruction == NORTH:
                row = 0
            elif instruction == SOUTH:
                row = 1
            elif instruction == EAST:
                col = Inc(col) % 2
            else:
                pass
            return 2 * row + col
    """

    def move(cell, instruction):
        row, col = divmod(cell, 2)
        row = {0: 0, 1: 1}.get(instruction, row)
        col = (col + 1) % 2 if instruction == 2 else col
        return 2 * row + col

    assert np.array_equal(table(source), reference(move, 4, 4))


FORBIDDEN = {  # statement in a branch never taken -> words the message must contain
    "os.system('touch x')": "attribute access ('os.system')",
    "return open('x')": "calls of 'open'",
    "return __import__('os')": "calls of '__import__'",
    "import os": "'import'",
    "for i in range(3):\n            pass": "loops ('for')",
    "while a:\n            pass": "loops ('while')",
    "return a[0]": "subscripts ('a[0]')",
    "return (lambda: 1)()": "'lambda'",
    "return sum([i for i in range(2)])": "calls of 'sum'",
    "return [i for i in range(2)]": "comprehensions",
    "return len('abc')": "calls of 'len'",
    "return 'abc'": "string constants",
    "return eval('1')": "calls of 'eval'",
    "return getattr(a, 'real')": "calls of 'getattr'",
    "return f'{a}'": "f-strings",
    "return (b := 1)": "walrus",
    "global a": "'global'",
    "del a": "'del'",
    "return a is None": "'is'",
    "return": "'return' needs a value",
    "return 1.5": "the constant 1.5",
    "return undefined": "name 'undefined' is not defined",
    "return int(a, base=2)": "keyword arguments",
}


@pytest.mark.parametrize("statement", FORBIDDEN)
def test_forbidden_constructs_are_reported_at_their_line(statement):
    source = f"@Runtime([2], 2)\ndef f(a):\n    if a > 5:\n        {statement}\n    return 0\n"
    with pytest.raises(NTPTError) as err:
        Model(source, filename="bad.py")
    assert (err.value.filename, err.value.line) == ("bad.py", 4)
    assert FORBIDDEN[statement] in err.value.message


@pytest.mark.parametrize("header", ["def f(a=1):", "def f(a, *b):", "def f(a, *, b):", "def f(a: int):"])
def test_only_plain_parameters(header):
    with pytest.raises(NTPTError, match="plain parameters|annotations"):
        Model(f"@Runtime([2], 2)\n{header}\n    return 0\n", filename="bad.py")


@pytest.mark.parametrize("expr, words", [("2 ** (10 ** 9)", "exponent"), ("(2 ** 64 + 1) ** 2", "base"),
                                         ("a << 100", "shifts by at most"), ("(a,) * 10 ** 9", "tuple")])
def test_runaway_arithmetic_is_refused(expr, words):
    with pytest.raises(NTPTError, match=words) as err:
        Model(f"@Runtime([2], 2)\ndef f(a):\n    return {expr}\n", filename="bad.py")
    assert "f(0) raised" in err.value.message


def test_reading_a_local_before_it_is_assigned():
    source = "@Runtime([2], 2)\ndef f(a):\n    if a:\n        x = 1\n    return x\n"
    with pytest.raises(NTPTError, match=r"f\(0\) raised UnboundLocalError: local 'x' is read before"):
        Model(source, filename="bad.py")


def test_falling_off_the_end_is_outside_the_range():
    with pytest.raises(NTPTError, match=r"f\(1\) returned None"):
        Model("@Runtime([2], 2)\ndef f(a):\n    if a == 0:\n        return 0\n", filename="bad.py")


def test_a_body_calling_os_system_never_runs_it(tmp_path: Path):
    marker = tmp_path / "ran"
    source = f"@Runtime([2], 2)\ndef f(a):\n    __import__('os').system('touch {marker}')\n    return 0\n"
    with pytest.raises(NTPTError, match="attribute access"):
        Model(source, filename="bad.py")
    assert not marker.exists()
