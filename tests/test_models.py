"""The shipped paper models: hand-written correct programs run right, discretely and relaxed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ntpt_ray.lang.relaxed import run_relaxed
from ntpt_ray.library import OracleLibrary
from ntpt_ray.problems import problem
from ntpt_ray.program import LearnedProgram

NOOP, NORTH, EAST, SOUTH, WEST, ARITH = range(6)

# The paper's loop (Fig. 4b): read an operator into R1, a digit into R2, R0 = APPLY(R0, R2, R1).
MATH = dict(instr=[0, 0, 1], net_choice=[1, 0, 0], arg_a=[0, 0, 0], arg_b=[0, 0, 2],
            arg_op=[0, 0, 1], out_reg=[1, 2, 0], goto=[1, 2, 0], return_reg=0)

# ADD2X2 (R0 = READ of the top-left cell): moves, then ADD of the two read registers.
ADD2X2 = {
    "top": dict(instr=[EAST, ARITH, NOOP, NOOP], arg_a=[0, 0, 0, 0], arg_b=[1, 1, 0, 0], return_reg=2),
    "left": dict(instr=[SOUTH, ARITH, NOOP, NOOP], arg_a=[0, 0, 0, 0], arg_b=[1, 1, 0, 0], return_reg=2),
    "bottom": dict(instr=[SOUTH, EAST, ARITH, NOOP], arg_a=[0, 0, 1, 0], arg_b=[0, 0, 2, 0],
                   return_reg=3),
    "right": dict(instr=[EAST, SOUTH, ARITH, NOOP], arg_a=[0, 0, 1, 0], arg_b=[0, 0, 2, 0],
                  return_reg=3),
}
# APPLY2X2 (Fig. 3b): R0..R2 = the integers, R3 = READ, then moves and two APPLYs.
APPLY2X2 = {
    "top": dict(instr=[EAST, ARITH, ARITH, NOOP], net_choice=[1, 1, 0, 0, 0],
                arg_a=[0, 0, 5, 0], arg_b=[0, 1, 2, 0], arg_op=[0, 3, 4, 0], return_reg=6),
    "left": dict(instr=[SOUTH, ARITH, ARITH, NOOP], net_choice=[1, 1, 0, 0, 0],
                 arg_a=[0, 0, 5, 0], arg_b=[0, 1, 2, 0], arg_op=[0, 3, 4, 0], return_reg=6),
    "bottom": dict(instr=[SOUTH, EAST, ARITH, ARITH], net_choice=[1, 1, 1, 0, 0],
                   arg_a=[0, 0, 0, 6], arg_b=[0, 0, 1, 2], arg_op=[0, 0, 4, 5], return_reg=7),
    "right": dict(instr=[EAST, SOUTH, ARITH, ARITH], net_choice=[1, 1, 1, 0, 0],
                  arg_a=[0, 0, 0, 6], arg_b=[0, 0, 1, 2], arg_op=[0, 0, 4, 5], return_reg=7),
}


def program(task: str, values: dict) -> LearnedProgram:
    prob = problem(task)
    params = prob.compile().params
    full = {name: np.zeros(decl.shape, dtype=np.int64) for name, decl in params.items()}
    full.update({k: np.asarray(v) for k, v in values.items() if k in params})
    return LearnedProgram(prob, full)


def examples(prog: LearnedProgram, n: int, length: int, seed: int):
    return prog.problem.task.examples(n, length=length, split="test", seed=seed, perceptual=False)


def accuracy(prog: LearnedProgram, length: int, n: int = 300, seed: int = 0) -> float:
    batch = examples(prog, n, length, seed)
    library = OracleLibrary(prog.problem.compile(batch.hypers).nets)
    out = prog.run(batch.inputs, library=library, hypers=batch.hypers)["result"]
    return float((out == batch.outputs["result"]).float().mean())


@pytest.mark.parametrize("length", [1, 2, 3, 5, 8, 12, 16])
def test_the_paper_math_program_is_right_at_every_length(length):
    assert accuracy(program("math", MATH), length) == 1.0


@pytest.mark.parametrize("family, table", [("add2x2", ADD2X2), ("apply2x2", APPLY2X2)])
def test_hand_written_grid_programs_solve_their_task_and_no_other(family, table):
    for where, values in table.items():
        for other in table:  # the program for `where`, run on the task `other`
            score = accuracy(program(f"{family}:{other}", values), 1)
            assert (score == 1.0) == (other == where), (where, other, score)


def test_a_wrong_math_program_fails_longer_expressions():
    """Returning R2 (the last digit) fits 1-digit inputs only: verification needs lengths."""
    wrong = dict(MATH, return_reg=2)
    assert accuracy(program("math", wrong), 2) < 0.5


def test_relaxed_math_with_one_hot_params_equals_the_discrete_program():
    prog = program("math", MATH)
    batch = examples(prog, 64, 3, seed=3)
    model = prog.problem.compile(batch.hypers)
    probs = {k: F.one_hot(torch.as_tensor(v), model.params[k].size).float()[None]
             for k, v in prog.values.items()}
    out = run_relaxed(model, probs, OracleLibrary(model.nets), batch.inputs)["result"][0]
    torch.testing.assert_close(out.sum(-1), torch.ones(64))
    assert torch.equal(out.argmax(-1), batch.outputs["result"])
