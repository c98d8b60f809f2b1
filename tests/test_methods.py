"""Discrete search back-ends: random, enumerate and SMT find known programs; enumerate covers a
space exactly once across two real Ray actors; Z3's reading of the IR agrees with the discrete
interpreter's; perceptual problems get one clear error."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ntpt_ray.lang.discrete import run_discrete
from ntpt_ray.library import OracleLibrary
from ntpt_ray.methods import MethodRunner, SearchSettings
from ntpt_ray.methods.smt import SmtEncoding
from ntpt_ray.methods.space import ProgramSpace, unique
from ntpt_ray.problems import file_problem
from ntpt_ray.sweep import SpecError, parse_spec
from ntpt_ray.train.verify import Verifier

TERPRET = Path(__file__).resolve().parents[2] / "shared" / "terpret"
needs_terpret = pytest.mark.skipif(not TERPRET.is_dir(), reason="no TerpreT models beside the checkout")
TEST1 = TERPRET / "models" / "test1.py"


def _test1(tmp_path: Path, instances: list[dict], m: int = 5):
    """TerpreT's test1 model on our own examples, with ``m`` tape symbols."""
    data, hypers = tmp_path / "data.json", tmp_path / "hypers.json"
    data.write_text(json.dumps([{"batch_name": "train", "hypers": "h", "instances": instances}]))
    hypers.write_text(json.dumps({"h": {"const_T": 4, "const_M": m}}))
    return file_problem(TEST1, data, hypers), data, hypers


@needs_terpret
@pytest.mark.parametrize("method", ["random", "enumerate", "smt"])
def test_each_method_finds_the_known_program_of_test1(method):
    data = TERPRET / "data"
    problem = file_problem(TEST1, data / "test1_data.json", data / "test1_hypers.json",
                           check_batches=["difficulty2"])
    runner = MethodRunner(problem, SearchSettings(method=method, programs=10, batch=2),
                          Verifier(problem, val_size=10, test_size=10))
    search = runner.restart(0, 7, 1)
    while not search.done:
        search.step()
    assert search.found is not None  # the one program right on train and difficulty2
    assert {k: int(v) for k, v in search.found.items()} == {"offset": 0, "do_anything": 1}
    assert search.test_accuracy == {"difficulty2": 1.0}


@needs_terpret
def test_the_space_holds_each_distinct_program_once(tmp_path):
    problem, _, _ = _test1(tmp_path, [{"initial_tape": [0, 1], "final_tape": 1}])
    verifier = Verifier(problem, val_size=10, test_size=10)
    space = ProgramSpace(problem.compile(), verifier.guards)
    listed = space.programs(0, space.size)
    every = {"offset": np.repeat(np.arange(5), 2), "do_anything": np.tile(np.arange(2), 5)}
    assert space.size == 6  # do_anything = 0 never reads offset: 1 + 5 distinct programs
    assert len(unique(listed)["offset"]) == space.size
    keys = lambda p: sorted(zip(p["offset"].tolist(), p["do_anything"].tolist()))
    assert keys(listed) == keys(unique(space.canonical(every)))
    assert keys(space.programs(2, 4)) == keys({k: v[2:4] for k, v in listed.items()})


@needs_terpret
def test_enumerate_covers_the_space_once_across_two_ray_actors_and_says_it_is_exhausted(tmp_path):
    from ntpt_ray.sweep import run_sweep

    contradiction = [{"initial_tape": [0, 1], "final_tape": 1}, {"initial_tape": [0, 1], "final_tape": 2}]
    _, data, hypers = _test1(tmp_path, contradiction)
    spec = parse_spec({"name": "enum-two", "problem": {"model": str(TEST1), "data": str(data),
                                                        "hypers": str(hypers)},
                       "restarts": {"per_actor": 1, "actors": 2},
                       "search": {"method": "enumerate", "programs": 1, "batch": 1},
                       "stop": {"policy": "all"}, "output": {"store": str(tmp_path / "store")}})
    result = run_sweep(spec, actors=2)
    assert result.total == 6 and result.done == 6 and result.verified == 0
    assert result.examined == result.space == 6  # one shard (restart) per program, each once
    assert result.stopped_by.startswith("the whole space of 6 distinct programs examined: no program")


@needs_terpret
@pytest.mark.parametrize("model, data", [("turing", "turing_invert"), ("circuit", "circuit_swap")])
def test_smt_and_discrete_back_ends_agree_on_terpret_models(model, data):
    problem = file_problem(TERPRET / "models" / f"{model}.py", TERPRET / "data" / f"{data}_data.json",
                           TERPRET / "data" / f"{data}_hypers.json")
    compiled = problem.compile()
    examples = problem.train_examples(3, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    library = OracleLibrary(compiled.nets)
    for _ in range(3):  # random programs: Z3's model of each Output term equals the interpreter's value
        values = {n: rng.integers(0, d.size, size=d.shape) for n, d in compiled.params.items()}
        discrete = run_discrete(compiled, {n: torch.as_tensor(v)[None] for n, v in values.items()}, library,
                                examples.inputs)
        encoding = SmtEncoding(problem, library, seed=0, timeout=30)
        for name, v in values.items():
            for index in itertools.product(*map(range, v.shape)):
                encoding.solver.add(encoding.variable((name, index)) == int(v[index]))
        terms = [encoding.outputs(examples, row) for row in range(len(examples))]  # before solving
        assert str(encoding.solver.check()) == "sat"
        found = encoding.solver.model()
        for row in range(len(examples)):
            for out, term in terms[row].items():
                value = term if isinstance(term, int) else found.eval(term, model_completion=True).as_long()
                assert value == int(discrete[out][0, row]), (out, row)


def test_a_perceptual_problem_gets_one_clear_error_for_a_discrete_method():
    with pytest.raises(SpecError, match=r"\[search\] method: method 'smt' needs exact perception "
                                        r"\(perceptual = false\)"):
        parse_spec({"name": "p", "problem": {"task": "add2x2:top", "perceptual": True},
                    "search": {"method": "smt"}})
