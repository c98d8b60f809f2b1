"""A model specialised to one program (:mod:`ntpt_ray.lang.specialise`) runs like the full one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ntpt_ray.lang.discrete import run_discrete
from ntpt_ray.lang.ir import Branch, Read, block_nodes
from ntpt_ray.lang.model import CompiledModel, Model
from ntpt_ray.lang.specialise import specialise
from ntpt_ray.library import OracleLibrary
from ntpt_ray.problems import problem

TERPRET = Path(__file__).resolve().parents[2] / "shared" / "terpret"
MATH = {"instr": [0, 0, 1], "net_choice": [1, 0, 0], "arg_a": [0, 0, 0], "arg_b": [0, 0, 2],
        "arg_op": [0, 0, 1], "out_reg": [1, 2, 0], "goto": [1, 2, 0], "return_reg": 0}


def _agree(compiled: CompiledModel, programs: dict[str, np.ndarray], inputs: dict, library) -> None:
    """Each program, specialised, gives on the batch what the full model gives."""
    full = run_discrete(compiled, {n: torch.from_numpy(programs[n]) for n in compiled.params},
                        library, inputs)
    for p in range(next(iter(programs.values())).shape[0]):
        one = run_discrete(specialise(compiled, {n: v[p] for n, v in programs.items()}), {},
                           library, inputs)
        for name, values in full.items():
            assert torch.equal(one[name][0], values[p]), (name, p)


@pytest.mark.skipif(not TERPRET.is_dir(), reason=f"TerpreT's models are not at {TERPRET}")
@pytest.mark.parametrize("source, task", [("turing", "turing_invert"), ("circuit", "circuit_swap"),
                                          ("basic_block", "basic_block_access"),
                                          ("test1", "test1")])
def test_a_specialised_terpret_model_runs_like_the_full_one(source, task):
    model = Model.from_file(TERPRET / "models" / f"{source}.py")
    hypers = json.loads((TERPRET / "data" / f"{task}_hypers.json").read_text())
    batch = json.loads((TERPRET / "data" / f"{task}_data.json").read_text())[0]
    compiled = model.compile(**hypers[batch["hypers"]])
    rng = np.random.default_rng(1)
    programs = {n: rng.integers(0, d.size, (8, *d.shape)) for n, d in compiled.params.items()}
    inputs = {n: torch.tensor([inst[n] for inst in batch["instances"]]) for n in compiled.inputs}
    _agree(compiled, programs, inputs, None)


@pytest.mark.parametrize("task", ["math", "add2x2:left", "apply2x2:top"])
def test_a_specialised_model_runs_random_programs_like_the_full_one(task):
    """Random MATH programs halt early, late or never; the 2x2 models read symbols with nets."""
    prob = problem(task)
    rng = np.random.default_rng(2)
    for length in (1, 4):
        examples = prob.task.examples(64, length=length, split="test", seed=length, perceptual=False)
        compiled = prob.compile(examples.hypers)
        programs = {n: rng.integers(0, d.size, (24, *d.shape)) for n, d in compiled.params.items()}
        _agree(compiled, programs, examples.symbolic(), OracleLibrary(compiled.nets))


def test_the_math_loop_specialised_reads_no_param_and_branches_on_data_only():
    """MATH's head and program counter follow from the Params: no ``with`` on them is left,
    and the program is a fraction of the full model's size."""
    prob = problem("math")
    examples = prob.task.examples(32, length=8, split="test", seed=0, perceptual=False)
    compiled = prob.compile(examples.hypers)
    program = {k: np.asarray(v) for k, v in MATH.items()}
    one = specialise(compiled, program)
    assert not [e for e in block_nodes(one.body) if isinstance(e, Read) and e.kind == "Param"]

    def branches(block):
        return sum(1 + sum(branches(b) for _, b in s.arms) for s in block if isinstance(s, Branch))

    assert branches(one.body) < branches(compiled.body) / 20
    out = run_discrete(one, {}, OracleLibrary(compiled.nets), examples.symbolic())["result"][0]
    assert torch.equal(out, torch.as_tensor(examples.outputs["result"]).reshape(-1))


def test_a_program_missing_a_param_is_refused_by_name():
    compiled = problem("math").compile()
    with pytest.raises(ValueError, match="'goto'"):
        specialise(compiled, {k: np.asarray(v) for k, v in MATH.items() if k != "goto"})
