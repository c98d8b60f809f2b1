"""What a model and an input may ask for (one-line errors naming the limit), and one program
on one example in time linear in its length."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ntpt_ray.cli import app
from ntpt_ray.lang import limits
from ntpt_ray.lang.concrete import run_path
from ntpt_ray.lang.discrete import run_discrete
from ntpt_ray.lang.errors import NTPTError
from ntpt_ray.lang.model import Model
from ntpt_ray.library import OracleLibrary
from ntpt_ray.problems import problem
from ntpt_ray.program import LearnedProgram
from ntpt_ray.train.run import save_program

TERPRET = Path(__file__).resolve().parents[2] / "shared" / "terpret"
MATH = {"instr": [0, 0, 1], "net_choice": [1, 0, 0], "arg_a": [0, 0, 0], "arg_b": [0, 0, 2],
        "arg_op": [0, 0, 1], "out_reg": [1, 2, 0], "goto": [1, 2, 0], "return_reg": 0}


def _agree(model: Model, hypers: dict, programs: dict[str, np.ndarray], inputs: dict, library) -> None:
    """Each program on each example along its path equals the discrete back-end on the batch."""
    compiled = model.compile(**hypers)
    batch = run_discrete(compiled, {n: torch.from_numpy(programs[n]) for n in compiled.params},
                         library, inputs)
    module = model.module(**hypers)
    count = next(iter(programs.values())).shape[0]
    for p in range(count):
        for b in range(next(iter(inputs.values())).shape[0]):
            one = run_path(module, {n: v[p] for n, v in programs.items()}, library,
                           {n: v[b:b + 1] for n, v in inputs.items()})
            assert one == {name: int(v[p, b]) for name, v in batch.items()}, (p, b)


@pytest.mark.skipif(not TERPRET.is_dir(), reason=f"TerpreT's models are not at {TERPRET}")
@pytest.mark.parametrize("source, task", [("turing", "turing_invert"), ("circuit", "circuit_swap"),
                                          ("basic_block", "basic_block_access")])
def test_a_path_run_equals_the_discrete_back_end_on_terpret_models(source, task):
    model = Model.from_file(TERPRET / "models" / f"{source}.py")
    hypers = json.loads((TERPRET / "data" / f"{task}_hypers.json").read_text())
    batch = json.loads((TERPRET / "data" / f"{task}_data.json").read_text())[0]
    chosen = hypers[batch["hypers"]]
    compiled = model.compile(**chosen)
    rng = np.random.default_rng(1)
    programs = {n: rng.integers(0, d.size, (3, *d.shape)) for n, d in compiled.params.items()}
    instances = batch["instances"][:3]
    inputs = {n: torch.tensor([inst[n] for inst in instances]) for n in compiled.inputs}
    _agree(model, chosen, programs, inputs, None)


@pytest.mark.parametrize("task", ["math", "apply2x2:top"])
def test_a_path_run_equals_the_discrete_back_end_on_random_programs(task):
    """Random MATH programs halt early, late or never; APPLY2X2 reads its operators with nets."""
    prob = problem(task)
    model = prob.parsed()
    rng = np.random.default_rng(2)
    for length in (1, 3):
        hypers = prob.model_hypers(prob.task.hypers_of(length))
        compiled = model.compile(**hypers)
        programs = {n: rng.integers(0, d.size, (6, *d.shape)) for n, d in compiled.params.items()}
        batch = prob.task.examples(3, length=length, split="test", seed=length, perceptual=False)
        _agree(model, hypers, programs, batch.inputs, OracleLibrary(compiled.nets))


def _math_seconds(prog: LearnedProgram, digits: int) -> float:
    task = prog.problem.task
    library = OracleLibrary(prog.problem.compile().nets)
    rng = np.random.default_rng(digits)
    symbols = np.array([rng.integers(10) if k % 2 == 0 else 10 + rng.integers(4)
                        for k in range(2 * digits - 1)])
    feed, length = task.feed(symbols, None)
    best = float("inf")
    for _ in range(2):
        began = time.perf_counter()
        out = prog.run(feed, hypers=task.hypers_of(length), library=library)["result"]
        best = min(best, time.perf_counter() - began)
    assert int(out[0]) == task.reference(symbols, None)
    return best


def test_running_one_program_takes_time_linear_in_the_input_length():
    prob = problem("math")
    full = {n: np.zeros(d.shape, dtype=np.int64) for n, d in prob.compile().params.items()}
    full.update({k: np.asarray(v) for k, v in MATH.items()})
    prog = LearnedProgram(prob, full)
    short, long = _math_seconds(prog, 25), _math_seconds(prog, 200)
    assert long < 24 * short, (short, long)  # linear: 8x; the unrolled model was quadratic (64x)


# ----------------------------------------------------------------------------- limits

OUT = "y = Output(2)\ny.set_to(0)\n"


@pytest.mark.parametrize("source, line, limit", [
    ("p = Param(10**9)\n", 1, "MAX_RANGE"),
    ("T = 10**9\nx = Var(2)[T]\n", 2, "MAX_ELEMENTS"),
    ("t = InputTensor(10**5, 10**5)\n", 1, "MAX_ELEMENTS"),
    ("x = Input(2)\n@Learn([2], 2, hid_sizes=[10**8])\ndef f(a):\n    pass\n", 2, "MAX_ELEMENTS"),
    ("@Runtime([10**4, 10**4], 2)\ndef F(a, b):\n    return 0\n", 2, "MAX_TABLE"),
    ("@Runtime([2], 10**9)\ndef F(a):\n    return 0\n", 1, "MAX_RANGE"),
    ("for t in range(10**7):\n    pass\n", 1, "MAX_UNROLLED"),
    ("T = 10**9\nfor t in range(T):\n    pass\n", 2, "MAX_UNROLLED"),
    ("A, B = range(10**9)\n", 1, "MAX_UNROLLED"),
])
def test_what_a_model_asks_for_is_bounded_in_one_line_naming_the_limit(source, line, limit):
    began = time.perf_counter()
    with pytest.raises(NTPTError) as info:
        Model(source + OUT, filename="m.py")
    message = str(info.value)
    assert message.startswith(f"m.py:{line}: ") and "\n" not in message
    assert message.endswith(f"above the limit of {limits.limit(limit)} (set NTPT_{limit} to raise it)")
    assert time.perf_counter() - began < 2  # refused before anything of that size is built


def test_a_constant_too_big_to_compute_is_refused_at_once():
    with pytest.raises(NTPTError, match=r"^m.py:1: cannot evaluate the value of T: '\*\*' needs an "):
        Model("T = 10**10**10\n" + OUT, filename="m.py")


def test_the_unrolled_size_is_counted_as_it_grows_and_a_limit_is_raised_by_its_variable(monkeypatch):
    nested = "for a in range(100):\n    for b in range(100):\n        pass\n" + OUT
    soft = "i = Input(60)\nj = Input(60)\na = Param(2)[60, 60]\ny = Output(2)\ny.set_to(a[i, j])\n"
    monkeypatch.setenv("NTPT_MAX_UNROLLED", "3000")
    with pytest.raises(NTPTError, match=r"^m.py:2: the unrolled program grows to 30[0-9][0-9], above the "
                                        r"limit of 3000 \(set NTPT_MAX_UNROLLED to raise it\)$"):
        Model(nested, filename="m.py")
    with pytest.raises(NTPTError, match=r"^m.py:5: the unrolled program grows to 360[0-9], above"):
        Model(soft, filename="m.py")  # a read of a[i, j] with random i, j has 3600 options
    monkeypatch.setenv("NTPT_MAX_UNROLLED", "50000")
    Model(nested, filename="m.py")
    Model(soft, filename="m.py")
    monkeypatch.setenv("NTPT_MAX_RANGE", "10")
    with pytest.raises(NTPTError, match=r"^m.py:1: the range of Var 'x' is 11, above the limit of 10 "):
        Model("x = Var(11)\n" + OUT, filename="m.py")
    monkeypatch.setenv("NTPT_MAX_RANGE", "ten")
    with pytest.raises(ValueError, match="NTPT_MAX_RANGE must be a positive integer, got 'ten'"):
        Model("x = Var(11)\n" + OUT, filename="m.py")


def test_ntpt_run_bounds_its_input_in_one_line(tmp_path, monkeypatch):
    prob = problem("math")
    full = {n: np.zeros(d.shape, dtype=np.int64) for n, d in prob.compile().params.items()}
    full.update({k: np.asarray(v) for k, v in MATH.items()})
    save_program(tmp_path / "prog", LearnedProgram(prob, full), None)
    monkeypatch.setenv("NTPT_MAX_INPUT", "7")
    runner = CliRunner()
    ok = runner.invoke(app, ["run", str(tmp_path / "prog"), "-i", "1+2x3-4"])
    assert ok.exit_code == 0 and "│ yes" in ok.output, ok.output
    long = runner.invoke(app, ["run", str(tmp_path / "prog"), "-i", "1+2x3-4+5"])
    assert long.exit_code == 1
    assert long.output.strip() == ("error: --input: 9 symbols, above the limit of 7 (set "
                                   "NTPT_MAX_INPUT to raise it)"), long.output
