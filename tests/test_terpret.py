"""TerpreT's dialect: each construct on small sources, then TerpreT's published models as they are."""

from __future__ import annotations

import itertools
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ntpt_ray.lang.discrete import NO_OUTPUT, run_discrete
from ntpt_ray.lang.errors import NTPTError
from ntpt_ray.lang.model import Model
from ntpt_ray.lang.relaxed import run_relaxed
from ntpt_ray.lang.relevance import param_guards

TERPRET = Path(__file__).resolve().parents[2] / "shared" / "terpret"


def compiled(source: str, filename: str = "t.py", **hypers):
    return Model(textwrap.dedent(source), filename=filename).compile(**hypers)


def every_program(model) -> dict[str, torch.Tensor]:
    """Every assignment of the learned Params, ``{name: [P, *shape]}``."""
    elements = [(n, ix) for n, d in model.params.items() for ix in np.ndindex(*d.shape)]
    combos = list(itertools.product(*(range(model.params[n].size) for n, _ in elements)))
    values = {n: np.zeros((len(combos), *d.shape), dtype=np.int64) for n, d in model.params.items()}
    for p, combo in enumerate(combos):
        for (n, ix), c in zip(elements, combo):
            values[n][(p, *ix)] = c
    return {n: torch.from_numpy(v) for n, v in values.items()}


def both(model, programs: dict[str, torch.Tensor], inputs: dict[str, torch.Tensor]):
    """Discrete outputs ``[P, B]`` and relaxed ones ``[P, B, size]`` with one-hot Params."""
    exact = run_discrete(model, programs, None, inputs)
    probs = {n: F.one_hot(v, model.decls[n].size).float() for n, v in programs.items()}
    return exact, run_relaxed(model, probs, None, inputs)


def assert_agree(exact, relaxed) -> None:
    assert exact.keys() == relaxed.keys()
    for name in exact:
        assert relaxed[name].shape[:2] == exact[name].shape, name
        assert torch.equal(relaxed[name].argmax(-1), exact[name]), name
        assert torch.all(relaxed[name].max(-1).values == 1), name


def error_of(source: str, filename: str = "bad.py", **hypers) -> NTPTError:
    with pytest.raises(NTPTError) as info:
        Model(textwrap.dedent(source).strip() + "\n", filename=filename).compile(**hypers)
    return info.value


# ----------------------------------------------------------------------------- Hyper()

HYPER = """\
from dummy import Hyper, Param, Var, Runtime, Input, Output
N = Hyper()
M = Hyper()
K = 2 * 3
x = Input(N)
y = Output(N)
y.set_to(x)
"""


def test_a_hyper_gets_its_value_when_compiled():
    model = Model(HYPER, filename="h.py")
    assert model.free_hypers == ("N", "M")
    assert model.hypers == {"K": 6}  # the constants that do not depend on a free hyper
    assert model.compile(N=4, M=1).hypers == {"N": 4, "M": 1, "K": 6}
    assert model.compile(N=4, M=1).outputs["y"].size == 4


def test_a_missing_hyper_is_one_error_naming_it_and_its_line():
    model = Model(HYPER, filename="h.py")  # not compiled yet: no error
    with pytest.raises(NTPTError) as info:
        model.compile(N=3)
    assert str(info.value) == ("h.py:3: hyper-parameter 'M' = Hyper() has no value; give it (a hypers "
                               "file set or -H M=N)")
    with pytest.raises(NTPTError, match="unknown hyper-parameter"):
        model.compile(N=3, M=1, Q=2)


def test_a_model_without_free_hypers_is_still_checked_when_constructed():
    with pytest.raises(NTPTError, match="out of range"):
        Model("x = Var(3)\ny = Output(3)\nx.set_to(5)\n")
    with pytest.raises(NTPTError, match="syntax error"):
        Model("N = Hyper(\n")


# ----------------------------------------------------------------------------- set_to_constant

FIXED = """
P = Param(3)[2]
Q = Param(3)
sel = Param(2)
y = Output(3)[2]
z = Output(3)
q = Output(3)
P[0].set_to_constant(2)
Q.set_to_constant(1)
for i in range(2):
    y[i].set_to(P[i])
with sel as s:
    z.set_to(P[s])
q.set_to(Q)
"""


def test_a_fixed_element_reads_as_its_constant_in_both_back_ends_whatever_it_is_given():
    model = compiled(FIXED)
    assert model.fixed == {("P", (0,)): 2, ("Q", ()): 1}
    assert list(model.params) == ["P", "sel"]  # Q is fixed whole: not learned; P partly: learned
    assert set(param_guards(model)) == {("P", (1,)), ("sel", ())}  # a fixed element is never relevant
    inputs = {"x": torch.zeros(3)}
    programs = {"P": torch.tensor([[0, 1], [1, 0]]), "sel": torch.tensor([0, 1])}
    exact = run_discrete(model, programs, None, inputs)
    assert exact["y[0]"].tolist() == [[2] * 3, [2] * 3]
    assert exact["y[1]"].tolist() == [[1] * 3, [0] * 3]
    assert exact["z"].tolist() == [[2] * 3, [0] * 3]  # program 0 reads P[0] through sel
    assert exact["q"].tolist() == [[1] * 3, [1] * 3]
    uniform = {"P": torch.full((2, 2, 3), 1 / 3), "sel": torch.tensor([[1.0, 0.0], [0.0, 1.0]])}
    relaxed = run_relaxed(model, uniform, None, inputs)
    torch.testing.assert_close(relaxed["y[0]"], F.one_hot(torch.tensor(2), 3).float().expand(2, 3, 3))
    torch.testing.assert_close(relaxed["z"][0], F.one_hot(torch.tensor(2), 3).float().expand(3, 3))
    torch.testing.assert_close(relaxed["y[1]"], torch.full((2, 3, 3), 1 / 3))
    torch.testing.assert_close(relaxed["q"][1, 0], torch.tensor([0.0, 1.0, 0.0]))


@pytest.mark.parametrize("source, line, fragment", [
    ("P = Param(3)\ny = Output(3)\nP.set_to_constant(3)\ny.set_to(P)", 3, "value 3 is out of range"),
    ("P = Param(3)\ny = Output(3)\nP.set_to_constant(1)\nP.set_to_constant(1)\ny.set_to(P)", 4,
     "P is fixed twice"),
    ("P = Param(3)[2]\nc = Param(2)\ny = Output(3)\nP[c].set_to_constant(1)\ny.set_to(P[0])", 4,
     "must be a compile-time constant"),
    ("P = Param(3)\nc = Param(2)\ny = Output(3)\nif c == 0:\n    P.set_to_constant(1)\ny.set_to(P)", 5,
     "inside an if/with on a random value"),
    ("x = Var(3)\ny = Output(3)\nx.set_to_constant(1)", 3, "only Params are fixed"),
    ("P = Param(3)\nc = Input(3)\ny = Output(3)\nP.set_to_constant(c)\ny.set_to(P)", 4,
     "must be a compile-time constant"),
])
def test_set_to_constant_errors(source, line, fragment):
    err = error_of(source)
    assert err.line == line and fragment in str(err), str(err)


# ----------------------------------------------------------------------------- @Inline

INLINE = """
N = 3
x = Input(4)[N]
op = Param(2)[N]
tmp = Var(4)[N]
y = Output(4)[N]

@Runtime([4], 4)
def inc(a): return (a + 1) % 4

@Inline
def twice(a):
    return inc(inc(a))

@Inline()
def step(o, src, dst):
    if o == 0:
        dst.set_to(src)
    else:
        dst.set_to(twice(src))

for i in range(N):
    step(op[i], x[i], tmp[i])
    y[i].set_to(tmp[i])
"""


def test_inline_functions_are_expanded_at_their_call_sites():
    model = compiled(INLINE)
    x = torch.tensor([[0, 1, 3], [2, 2, 2]])
    programs = every_program(model)
    exact, relaxed = both(model, programs, {"x": x})
    assert_agree(exact, relaxed)
    for i in range(3):
        expected = torch.where(programs["op"][:, i:i + 1] == 0, x[:, i], (x[:, i] + 2) % 4)
        assert torch.equal(exact[f"y[{i}]"], expected)


@pytest.mark.parametrize("source, fragment", [
    ("@Inline\ndef f(a):\n    a.set_to(0)\nv = Var(2)\ny = Output(2)\ny.set_to(f(v))",
     "must be a single 'return <expression>'"),
    ("@Inline\ndef f(a):\n    return a\ny = Output(2)\nf(y)", "'return' in @Inline function 'f'"),
    ("@Inline\ndef f(a):\n    f(a)\ny = Output(2)\nf(y)", "calls itself"),
    ("@Inline\ndef f(a):\n    a.set_to(0)\ny = Output(2)\nf(y, y)", "f takes 1 positional arguments, got 2"),
    ("@Inline\ndef f(a=1):\n    pass\ny = Output(2)\ny.set_to(0)", "plain positional arguments"),
])
def test_inline_errors(source, fragment):
    assert fragment in str(error_of(source))


# ----------------------------------------------------------------------------- aliases

ALIAS = """
T = 3
x = Input(4)
instructions = Param(3)[2]
table = Param(4)[2, 3]
nxt_block = Param(2)[2]
acc = Var(4)[T + 1]
ip = Var(2)[T + 1]
y = Output(4)
first = Output(4)
corner = Output(4)

@Runtime([4], 4)
def inc(a): return (a + 1) % 4

row = table[1]          # a module-level alias, indexed further below
acc[0].set_to(x)
ip[0].set_to(0)
for t in range(T):
    cur = acc[t]
    nxt = acc[t + 1]
    if t == 0:
        start = cur     # bound with t = 0: stays acc[0] when t moves on
    with ip[t] as i:
        instr = instructions[i]
        if instr == 0:
            nxt.set_to(inc(cur))
        elif instr == 1:
            with instr as k:
                nxt.set_to(table[i, k])
        else:
            nxt.set_to(cur)
        ip[t + 1].set_to(nxt_block[i])
y.set_to(acc[T])
first.set_to(start)
corner.set_to(row[2])
"""


def _alias_reference(p: dict[str, np.ndarray], x: int) -> tuple[int, int]:
    acc, ip = x, 0
    for _ in range(3):
        instr = p["instructions"][ip]
        acc = (acc + 1) % 4 if instr == 0 else p["table"][ip, instr] if instr == 1 else acc
        ip = p["nxt_block"][ip]
    return acc, p["table"][1, 2]


def test_aliases_stand_for_their_element_wherever_they_are_used():
    model = compiled(ALIAS)
    rng = np.random.default_rng(0)
    programs = {n: torch.from_numpy(rng.integers(0, d.size, (40, *d.shape)))
                for n, d in model.params.items()}
    x = torch.arange(4)
    exact, relaxed = both(model, programs, {"x": x})
    assert_agree(exact, relaxed)
    assert torch.equal(exact["first"], x.expand(40, 4))
    for k in range(40):
        p = {n: v[k].numpy() for n, v in programs.items()}
        for b in range(4):
            assert (int(exact["y"][k, b]), int(exact["corner"][k, b])) == _alias_reference(p, b)


@pytest.mark.parametrize("source, line, fragment", [
    ("x = Input(3)\ny = Output(3)\nfor i in range(1):\n    q = x + 1\ny.set_to(0)", 4,
     "compile-time constant or name an element"),
    ("y = Output(3)\nfor i in range(1):\n    q = z[0]\ny.set_to(0)", 3, "unknown name 'z'"),
    ("y = Output(3)\nfor i in range(1):\n    q = Var(3)\ny.set_to(0)", 3, "belong at module level"),
    ("x = Input(3)\ny = Output(3)\nfor i in range(1):\n    x = y\ny.set_to(0)", 4, "cannot be rebound"),
])
def test_alias_errors(source, line, fragment):
    err = error_of(source)
    assert err.line == line and fragment in str(err), str(err)


# ----------------------------------------------------------------------------- module-level if

MODULE_IF = """
N = Hyper()
x = Input(3)
if N > 2:
    K = 1
    y = Output(3)
    @Runtime([3], 3)
    def f(a): return (a + K) % 3
    y.set_to(f(x))
elif N == 2:
    y = Output(3)
    y.set_to(2)
else:
    K = Hyper()
    y = Output(3)
    y.set_to(x)
"""


def test_a_module_level_if_on_hypers_chooses_module_level_code():
    model = Model(MODULE_IF, filename="m.py")
    assert model.free_hypers == ("N", "K")
    x = {"x": torch.tensor([0, 1, 2])}
    big = model.compile(N=3)
    assert big.hypers == {"N": 3, "K": 1} and list(big.runtime_fns) == ["f"]
    assert run_discrete(big, {}, None, x)["y"].tolist() == [[1, 2, 0]]
    assert run_discrete(model.compile(N=2), {}, None, x)["y"].tolist() == [[2, 2, 2]]
    assert run_discrete(model.compile(N=1, K=0), {}, None, x)["y"].tolist() == [[0, 1, 2]]
    with pytest.raises(NTPTError, match="'K' = Hyper\\(\\) has no value"):
        model.compile(N=1)


# ----------------------------------------------------------------------------- temporaries

TEMPORARY = """
c = Param(2)
x = Input(3)
tmp = Var(3)
y = Output(3)
if c == 0:
    tmp.set_to(x)
    y.set_to(tmp)
else:
    y.set_to(0)
"""


def test_a_var_assigned_in_some_arms_is_local_to_them():
    model = compiled(TEMPORARY)
    exact, relaxed = both(model, every_program(model), {"x": torch.tensor([1, 2])})
    assert_agree(exact, relaxed)
    assert exact["y"].tolist() == [[1, 2], [0, 0]]


def test_reading_a_temporary_after_the_chain_says_where_it_was_assigned():
    err = error_of(TEMPORARY + "z = Output(3)\nz.set_to(tmp)\n")
    assert err.line == 11
    assert "tmp is read before it is assigned: it is assigned only in some branches of the if at line 5" \
        in str(err)


# ----------------------------------------------------------------------------- Outputs

OUTPUTS = """
x = Input(3)[2]
p = Param(2)
out = Output(3)[2]
flag = Output(2)
for i in range(2):
    if p == 0:
        out[i].set_to(x[i])
    else:
        out[i].set_to(x[1 - i])
flag.set_to(p)
"""


def test_every_element_of_several_outputs_comes_back_from_both_back_ends():
    model = compiled(OUTPUTS)
    assert not model.halts
    x = torch.tensor([[0, 1], [2, 0]])
    exact, relaxed = both(model, every_program(model), {"x": x})
    assert set(exact) == {"out[0]", "out[1]", "flag"}
    assert_agree(exact, relaxed)
    assert exact["out[0]"].tolist() == [[0, 2], [1, 0]] and exact["flag"].tolist() == [[0, 0], [1, 1]]
    half = run_relaxed(model, {"p": torch.tensor([[0.5, 0.5]])}, None, {"x": x})
    torch.testing.assert_close(half["out[1]"].sum(-1), torch.ones(1, 2))
    torch.testing.assert_close(half["out[1]"][0, 0], torch.tensor([0.5, 0.5, 0.0]))


@pytest.mark.parametrize("source, line, fragment", [
    ("y = Output(2)\ny.set_to(0)\ny.set_to(1)", 3, "y is assigned twice"),
    ("y = Output(2)[2]\ny[0].set_to(0)", 1, "y[1] is never written"),
    ("c = Param(2)\ny = Output(2)\nif c == 0:\n    y.set_to(1)", 3,
     "y is written in some branches of this if but not in all of them"),
    ("c = Param(2)\ny = Output(2)\nwith c as k:\n    if k == 0:\n        y.set_to(1)", 3,
     "written in some branches of this with"),
    ("y = Output(2)\nz = Output(2)\ny.set_to(z)", 3, "Output 'z' cannot be read"),
])
def test_output_errors(source, line, fragment):
    err = error_of(source)
    assert err.line == line and fragment in str(err), str(err)


# ----------------------------------------------------------------------------- halt_with

HALT = """
c = Param(2)
d = Param(2)
y = Output(3)
if c == 1:
    y.halt_with(1)
if d == 1:
    y.halt_with(2)
"""


def test_halt_with_ends_the_program_and_its_relaxed_mass_is_the_halting_probability():
    model = compiled(HALT)
    assert model.halts
    programs = every_program(model)  # (c, d) = (0, 0), (0, 1), (1, 0), (1, 1)
    exact = run_discrete(model, programs, None, {"b": torch.zeros(1)})["y"][:, 0]
    assert exact.tolist() == [NO_OUTPUT, 2, 1, 1]  # the first halt on a path wins
    probs = {"c": torch.tensor([[0.4, 0.6]]), "d": torch.tensor([[0.5, 0.5]])}
    relaxed = run_relaxed(model, probs, None, {"b": torch.zeros(1)})["y"][0, 0]
    torch.testing.assert_close(relaxed, torch.tensor([0.0, 0.6, 0.2]))
    torch.testing.assert_close(relaxed.sum(), torch.tensor(1 - 0.4 * 0.5))


@pytest.mark.parametrize("source, line, fragment", [
    ("c = Param(2)\ny = Output(2)\nz = Output(2)\nif c == 0:\n    y.halt_with(1)\nz.set_to(0)", 6,
     "a model either halts (halt_with) or sets its Outputs (set_to), not both"),
    ("y = Output(2)\nz = Output(2)\nz.set_to(0)\ny.halt_with(1)", 4, "not both"),
    ("v = Var(2)\ny = Output(2)\nv.halt_with(1)", 3, "'v' is a Var: use .set_to"),
])
def test_halt_with_errors(source, line, fragment):
    err = error_of(source)
    assert err.line == line and fragment in str(err), str(err)


# ----------------------------------------------------------------------------- odds and ends

def test_a_zero_argument_runtime_function_is_a_constant_in_both_back_ends():
    model = compiled("""
    p = Param(4)
    y = Output(4)
    z = Output(4)
    @Runtime([], 4)
    def Three(): return 3
    @Runtime([4, 4], 4)
    def Add(a, b): return (a + b) % 4
    y.set_to(Three())
    z.set_to(Add(p, Three()))
    """)
    exact, relaxed = both(model, every_program(model), {"b": torch.zeros(2)})
    assert_agree(exact, relaxed)
    assert exact["y"].tolist() == [[3, 3]] * 4 and exact["z"][:, 0].tolist() == [3, 0, 1, 2]


def test_a_model_without_outputs_is_an_error_after_the_program_compiled():
    err = error_of("x = Var(2)\nx.set_to(0)")
    assert str(err) == "bad.py: the model declares no Output: nothing to learn from"
    assert "out of range" in str(error_of("x = Var(2)\nx.set_to(5)"))  # the earlier error wins


def test_an_unread_param_is_a_warning_and_not_learned():
    model = compiled("a = Param(2)\nb = Param(3)\ny = Output(2)\ny.set_to(a)\n", filename="w.py")
    assert list(model.params) == ["a"]
    assert model.warnings == ["w.py:2: Param 'b' is read nowhere: it is not learned"]


# ----------------------------------------------------------------------------- TerpreT's models

PAIRS = [("test1", "test1"), ("turing", "turing_invert"), ("turing", "turing_prepend"),
         ("turing", "turing_decrement"), ("circuit", "circuit_swap"), ("basic_block", "basic_block_access")]
needs_terpret = pytest.mark.skipif(not TERPRET.is_dir(), reason=f"TerpreT's models are not at {TERPRET}")


def _read(task: str) -> tuple[dict, list]:
    hypers = json.loads((TERPRET / "data" / f"{task}_hypers.json").read_text())
    return hypers, json.loads((TERPRET / "data" / f"{task}_data.json").read_text())


def _inputs(model, instances: list[dict]) -> dict[str, torch.Tensor]:
    return {name: torch.tensor([inst[name] for inst in instances]) for name in model.inputs}


def _expected(model, instances: list[dict]) -> dict[str, list]:
    """The observed value of each Output element, per instance (None where unobserved)."""
    out = {}
    for name, decl in model.outputs.items():
        for slot in decl.slots():
            key = f"{name}[{', '.join(map(str, slot[1]))}]" if slot[1] else name
            out[key] = [np.asarray(inst.get(name))[slot[1]] if inst.get(name) is not None else None
                        for inst in instances]
    return out


@needs_terpret
@pytest.mark.parametrize("source, task", PAIRS)
def test_terpret_models_compile_as_published_and_both_back_ends_agree(source, task):
    model = Model.from_file(TERPRET / "models" / f"{source}.py")
    assert model.free_hypers
    hypers, data = _read(task)
    rng = np.random.default_rng(0)
    for batch in data:
        program = model.compile(**hypers[batch["hypers"]])
        assert program.outputs and program.params and not program.warnings
        programs = {n: torch.from_numpy(rng.integers(0, d.size, (8, *d.shape)))
                    for n, d in program.params.items()}
        exact, relaxed = both(program, programs, _inputs(program, batch["instances"]))
        assert set(exact) == set(_expected(program, batch["instances"]))
        assert_agree(exact, relaxed)


@needs_terpret
def test_a_hand_written_xor_swap_circuit_gets_both_wires_right():
    model = Model.from_file(TERPRET / "models" / "circuit.py")
    hypers, data = _read("circuit_swap")
    batch = data[0]
    program = model.compile(**hypers[batch["hypers"]])
    xor = 2
    swap = {"gate": [[xor] * 3], "in1": [[0, 0, 0]], "in2": [[1, 1, 1]], "out": [[0, 1, 0]]}
    exact, relaxed = both(program, {n: torch.tensor(v) for n, v in swap.items()},
                          _inputs(program, batch["instances"]))
    for name, values in _expected(program, batch["instances"]).items():
        assert exact[name][0].tolist() == values, name
        assert relaxed[name][0].argmax(-1).tolist() == values, name


@needs_terpret
def test_a_terpret_model_without_its_hypers_names_the_first_missing_one():
    path = TERPRET / "models" / "turing.py"
    with pytest.raises(NTPTError) as info:
        Model.from_file(path).compile(numTapeSymbols=3)
    assert str(info.value).startswith(f"{path}:4: hyper-parameter 'numHeadStates' = Hyper() has no value")
