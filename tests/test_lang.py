"""The NTPT compiler: both back-ends agree, and malformed models get one clear error."""

from __future__ import annotations

import itertools
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ntpt_ray.lang.discrete import NO_OUTPUT, run_discrete
from ntpt_ray.lang.errors import NTPTError
from ntpt_ray.lang.model import Model
from ntpt_ray.lang.relaxed import run_relaxed

# A small model that uses every construct: hyper-parameters, arrays, @Runtime functions
# calling each other, if/elif/else on Params and Vars, with, soft reads, halting (halt_with).
TOY = """
M = 5
T = 3
K = 2
INC, DEC, KEEP = range(3)

x = Input(M)[2]
y = Output(M)
op = Param(3)[T]
pick = Param(2)[T]
stop_at = Param(M)
v = Var(M)[T + 1]
w = Var(M)[K, T + 1]

@Runtime([M], M)
def inc(a):
    return (a + 1) % M

@Runtime([M, 3], M)
def step(a, o):
    if o == INC:
        return inc(a)
    if o == DEC:
        return (a - 1) % M
    return a

v[0].set_to(x[0])
for k in range(K):
    w[k, 0].set_to(x[k])
for t in range(T):
    if op[t] == INC:
        v[t + 1].set_to(inc(v[t]))
    elif op[t] == DEC:
        v[t + 1].set_to(step(v[t], DEC))
    else:
        v[t + 1].set_to(w[pick[t], t])
    with pick[t] as p:
        for k in range(K):
            if k == p:
                w[k, t + 1].set_to(v[t + 1])
            else:
                w[k, t + 1].set_to(w[k, t])
    if v[t + 1] == stop_at:
        y.halt_with(w[1, t + 1])
"""


def toy() -> Model:
    return Model(TOY, filename="toy.py")


def random_inputs(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    return {"x": torch.from_numpy(np.random.default_rng(seed).integers(0, 5, (n, 2)))}


def all_programs(compiled):
    """Every assignment of the Params, as ``{name: [P, *shape]}``."""
    names = list(compiled.params)
    elements = [(n, ix) for n in names for ix in np.ndindex(*compiled.params[n].shape)]
    combos = list(itertools.product(*(range(compiled.params[n].size) for n, _ in elements)))
    values = {n: np.zeros((len(combos), *compiled.params[n].shape), dtype=np.int64) for n in names}
    for p, combo in enumerate(combos):
        for (n, ix), c in zip(elements, combo):
            values[n][(p, *ix)] = c
    return {n: torch.from_numpy(v) for n, v in values.items()}


def one_hot(values, compiled):
    return {n: F.one_hot(v, compiled.params[n].size).float() for n, v in values.items()}


def test_relaxed_equals_discrete_on_one_hot_params_for_every_program():
    compiled = toy().compile()
    programs = all_programs(compiled)
    inputs = random_inputs(20)
    exact = run_discrete(compiled, programs, None, inputs)["y"]  # [P, B]
    relaxed = run_relaxed(compiled, one_hot(programs, compiled), None, inputs)["y"]  # [P, B, M]
    assert relaxed.shape == (exact.shape[0], 20, 5)
    halted = exact != NO_OUTPUT
    assert halted.any() and (~halted).any()  # both halting and non-halting programs exist
    torch.testing.assert_close(relaxed.sum(-1), halted.float())
    assert torch.equal(relaxed.argmax(-1)[halted], exact[halted])
    assert torch.all(relaxed.max(-1).values[halted] == 1)


def test_relaxed_is_the_exact_expectation_when_each_param_is_read_once():
    source = """
x = Input(4)
y = Output(6)
a = Param(3)
b = Param(2)
@Runtime([4, 3, 2], 6)
def f(x, a, b):
    return (x + a * b) % 6
y.set_to(f(x, a, b))
"""
    compiled = Model(source).compile()
    probs = {"a": torch.tensor([[0.2, 0.5, 0.3]]), "b": torch.tensor([[0.6, 0.4]])}
    inputs = {"x": torch.arange(4)}
    relaxed = run_relaxed(compiled, probs, None, inputs)["y"][0]
    programs = all_programs(compiled)
    exact = run_discrete(compiled, programs, None, inputs)["y"]
    weight = probs["a"][0][programs["a"]] * probs["b"][0][programs["b"]]  # [P]
    expected = (weight[:, None, None] * F.one_hot(exact, 6).float()).sum(0)
    torch.testing.assert_close(relaxed, expected)


def test_relaxed_mixture_matches_hand_computation():
    source = """
c = Param(2)
z = Var(3)
y = Output(3)
if c == 0:
    z.set_to(1)
else:
    z.set_to(2)
y.set_to(z)
"""
    compiled = Model(source).compile()
    out = run_relaxed(compiled, {"c": torch.tensor([[0.25, 0.75]])}, None, {"d": torch.zeros(1)})
    torch.testing.assert_close(out["y"][0, 0], torch.tensor([0.0, 0.25, 0.75]))


def test_hyper_parameters_can_be_overridden_and_derived_ones_follow():
    model = Model("N = 2\nL = 2 * N - 1\nx = Output(L)\nx.set_to(0)\n")
    assert model.compile(N=5).hypers == {"N": 5, "L": 9}
    with pytest.raises(NTPTError, match="unknown hyper-parameter"):
        model.compile(Q=1)


def test_unused_params_are_not_learned():
    compiled = Model("a = Param(2)\nb = Param(3)\ny = Output(2)\ny.set_to(a)\n").compile()
    assert list(compiled.params) == ["a"]


def test_fig1_style_model_compiles():
    source = """
# constants
max_int = 15; n_instr = 3; T = 8
W, H = 5, 3; w, h = 10, 10
# variables
img_grid = InputTensor(w, h)[W, H]
init_X = Input(W)
init_Y = Input(H)
final_X = Output(W)
final_Y = Output(H)
path_len = Output(max_int)
instr = Param(4)[n_instr]
goto = Param(n_instr)[n_instr]
X = Var(W)[T]
Y = Var(H)[T]
dir = Var(4)[T]
reg = Var(max_int)[T]
instr_ptr = Var(n_instr)[T]

@Runtime([max_int], max_int)
def INC(a): return (a + 1) % max_int

@Runtime([max_int], max_int)
def DEC(a): return (a - 1) % max_int

@Runtime([W, 4], W)
def MOVE_X(x, dir):
    if dir == 1: return (x + 1) % W
    elif dir == 3: return (x - 1) % W
    else: return x

@Runtime([H, 4], H)
def MOVE_Y(y, dir):
    if dir == 2: return (y - 1) % H
    elif dir == 0: return (y + 1) % H
    else: return y

@Learn([Tensor(w, h)], 4, hid_sizes=[32, 32])
def LOOK(img): pass

# initialization
X[0].set_to(init_X)
Y[0].set_to(init_Y)
dir[0].set_to(1)
reg[0].set_to(0)
instr_ptr[0].set_to(0)

# execution model
for t in range(T - 1):
    X[t + 1].set_to(MOVE_X(X[t], dir[t]))
    Y[t + 1].set_to(MOVE_Y(Y[t], dir[t]))
    with instr_ptr[t] as i:
        if instr[i] == 0:  # INC
            reg[t + 1].set_to(INC(reg[t]))
        elif instr[i] == 1:  # DEC
            reg[t + 1].set_to(DEC(reg[t]))
        else:
            reg[t + 1].set_to(reg[t])
        if instr[i] == 2:  # LOOK
            with X[t] as x:
                with Y[t] as y:
                    dir[t + 1].set_to(LOOK(img_grid[x, y]))
        else:
            dir[t + 1].set_to(dir[t])
        instr_ptr[t + 1].set_to(goto[i])

final_X.set_to(X[T - 1])
final_Y.set_to(Y[T - 1])
path_len.set_to(reg[T - 1])
"""
    compiled = Model(source, filename="fig1.py").compile()
    assert set(compiled.params) == {"instr", "goto"}
    assert list(compiled.nets) == ["LOOK"]
    assert set(compiled.outputs) == {"final_X", "final_Y", "path_len"}


def _error(source: str) -> NTPTError:
    with pytest.raises(NTPTError) as info:
        Model(textwrap.dedent(source).strip() + "\n", filename="bad.py")
    return info.value


@pytest.mark.parametrize("source, line, fragment", [
    ("x = Var(3)\ny = Output(3)\ny.set_to(z)", 3, "unknown name 'z'"),
    ("x = Var(3)\nx.set_to(7)", 2, "value 7 is out of range"),
    ("x = Var(3)[2]\nx[2].set_to(0)", 2, "index 2 is out of range"),
    ("x = Var(3)\nwhile True:\n    pass", 2, "unbounded loop"),
    ("n = Input(4)\nx = Var(3)\nfor i in range(n):\n    pass", 3, "unbounded loop"),
    ("img = InputTensor(2, 2)\n@Runtime([3], 3)\ndef f(a): return a\nx = Var(3)\n"
     "x.set_to(f(img))", 5, "Tensor img passed where an integer is expected"),
    ("img = InputTensor(2, 2)\nx = Var(3)\nx.set_to(img)", 3, "passed where an integer"),
    ("@Learn([Tensor(2, 2)], 3)\ndef net(i): pass\nx = Var(3)\nn = Input(3)\n"
     "x.set_to(net(n))", 5, "must be a Tensor(2, 2)"),
    ("x = Var(3)\nx.set_to(0)\nx.set_to(1)", 3, "assigned twice"),
    ("x = Var(3)\ny = Var(3)\ny.set_to(x)", 3, "read before it is assigned"),
    ("c = Param(2)\nx = Var(3)\ny = Output(3)\nif c == 0:\n    x.set_to(1)\ny.set_to(x)", 6,
     "assigned only in some branches of the if at line 4"),
    ("c = Param(2)\nx = Var(3)\nx.set_to(c == 5)", 3, "unsupported expression"),
    ("c = Param(2)\ny = Output(2)\nif c == 2:\n    y.set_to(0)", 3, "never true"),
    ("a = Param(4)\nb = Param(4)\ny = Output(4)\ny.set_to(a + b)", 4, "@Runtime function"),
    ("p = Param(3)\np.set_to(1)", 2, "cannot assign to Param"),
    ("@Runtime([3], 3)\ndef f(a): return a + 1\n", 2, "f(2) returned 3"),
    ("@Runtime([3], 3)\ndef f(a): return 1 // a\n", 2, "f(0) raised ZeroDivisionError"),
    ("x = Var(3)\ny = Output(9)\ny.set_to(x", 3, "syntax error"),
    ("x = Var(3)[2]\nc = Param(4)\nx[0].set_to(x[c])", 3, "ranges over 0..3 but axis 0 has only 2"),
    ("img = InputTensor(2, 2)[3]\nc = Param(3)\n@Learn([Tensor(2, 2)], 3)\ndef net(i): pass\n"
     "y = Output(3)\ny.set_to(net(img[c]))", 6, "indexed by a random value"),
    ("x = Var(3)\nx[0].set_to(1)", 2, "has 0 dimension(s)"),
    ("x = Var(3)\ny = Output(3)\nq = x + 1\n", 3, "compile-time constant"),
])
def test_malformed_models_get_one_error_with_file_and_line(source, line, fragment):
    err = _error(source)
    assert err.filename == "bad.py"
    assert err.line == line, str(err)
    assert fragment in str(err)
    assert str(err).startswith(f"bad.py:{line}: ")
