"""The MATH generalisation experiment: the baselines' shapes and sizes, the exact expectation
against a Monte-Carlo estimate, NTPT's continued training and test with the loop program, and a
tiny run of the command on real Ray (results.json schema, resume skips finished parts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch

from ntpt_ray.data.tasks import apply_op
from ntpt_ray.generalise.baselines import (
    LibraryEmbedding,
    LSTMBaseline,
    NeuralGPU,
    OneHotEmbedding,
    count_parameters,
    lstm_parameters,
    ngpu_parameters,
)
from ntpt_ray.generalise.expectation import confusion, expected_accuracy
from ntpt_ray.generalise.spec import GeneraliseSpec, parse_generalise_spec
from ntpt_ray.library import NeuralLibrary
from ntpt_ray.problems import problem
from ntpt_ray.program import LearnedProgram
from ntpt_ray.sweep import SpecError

BIN = Path(sys.executable).parent
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0",
       "COLUMNS": "200"}
LOOP = {"instr": [0, 0, 1], "net_choice": [1, 0, 0], "arg_a": [0, 0, 0], "arg_b": [0, 0, 2],
        "arg_op": [0, 0, 1], "out_reg": [1, 2, 0], "goto": [1, 2, 0], "return_reg": 0}
"""The paper's MATH loop in the shipped model: read an operator into r1, a digit into r2, r0 = r0 op r2."""


def loop_program() -> LearnedProgram:
    return LearnedProgram(problem("math", perceptual=True),
                          {k: np.asarray(v, dtype=np.int64) for k, v in LOOP.items()})


def fresh_nets(seed: int = 3):
    return NeuralLibrary(problem("math", perceptual=True).compile().nets, [seed]).snapshot(0)


# ---- the baselines

def test_the_lstm_and_the_neural_gpu_have_their_shapes_and_the_hand_counted_parameters():
    symbols = torch.randint(0, 14, (3, 9))
    lstm = LSTMBaseline(OneHotEmbedding(), hidden=8, layers=2, dropout=0.1)
    assert lstm(symbols).shape == (3, 19)
    by_hand = 4 * (14 * 8 + 64 + 16) + 4 * (64 + 64 + 16) + 8 * 19 + 19  # two layers' gates, the head
    assert count_parameters(lstm) == lstm_parameters(14, 8, 2) == by_hand
    assert lstm_parameters(14, 1024, 3) == 21_072_915  # the paper's "21M" LSTM
    gpu = NeuralGPU(OneHotEmbedding(), filters=6, height=4, layers=2)
    assert gpu(symbols).shape == (3, 19) and gpu(symbols[:, :1]).shape == (3, 19)
    assert count_parameters(gpu) == ngpu_parameters(14, 6, 2) == 14 * 6 + 2 * 3 * (9 * 36 + 6) + 6 * 19 + 19


def test_the_perceptual_lstm_embeds_with_the_library_nets_as_they_are():
    nets = fresh_nets()
    library = NeuralLibrary(problem("math", perceptual=True).compile().nets, [0])
    library.load(nets)
    embedding = LibraryEmbedding(nets)
    images = torch.rand(2, 3, 28, 28)
    expected = torch.cat([library.logits(library.nets[n].fn, [images.reshape(6, 28, 28)], 0)[0]
                          for n in ("net_0", "net_1")], -1).reshape(2, 3, 14)
    torch.testing.assert_close(embedding(images), expected)
    lstm = LSTMBaseline(embedding, hidden=8, layers=1)
    assert lstm(images).shape == (2, 19)
    net_params = sum(v.numel() for state in nets.values() for v in state.values())
    assert count_parameters(lstm) == lstm_parameters(14, 8, 1) + net_params


# ---- the exact expectation

def _monte_carlo(digits: np.ndarray, operators: np.ndarray, n: int, samples: int, rng) -> float:
    true_d = rng.integers(0, 10, (samples, n))
    true_o = rng.integers(0, 4, (samples, n - 1))
    seen_d = (rng.random((samples, n, 1)) > np.cumsum(digits[true_d], -1)).sum(-1)
    seen_o = (rng.random((samples, n - 1, 1)) > np.cumsum(operators[true_o], -1)).sum(-1)
    value, seen = true_d[:, 0], seen_d[:, 0]
    for k in range(n - 1):
        value = apply_op(value, true_d[:, k + 1], true_o[:, k])
        seen = apply_op(seen, seen_d[:, k + 1], seen_o[:, k])
    return float((value == seen).mean())


def test_the_exact_expectation_agrees_with_a_monte_carlo_estimate():
    rng = np.random.default_rng(0)
    digits = rng.dirichlet(np.full(10, 0.3), 10) * 0.15 + np.eye(10) * 0.85
    operators = rng.dirichlet(np.full(4, 0.3), 4) * 0.1 + np.eye(4) * 0.9
    exact = expected_accuracy(digits, operators, 6)
    samples = 20_000
    for n in (1, 2, 4, 6):
        estimate = _monte_carlo(digits, operators, n, samples, rng)
        sigma = np.sqrt(exact[n] * (1 - exact[n]) / samples)
        assert abs(estimate - exact[n]) < 4 * sigma, (n, estimate, exact[n])
    assert all(v == pytest.approx(1) for v in expected_accuracy(np.eye(10), np.eye(4), 5).values())
    p = 0.975  # the simulation: errors are often erased, 87% at 16 digits where p^16 = 66.7%
    uniform = np.full((10, 10), (1 - p) / 9) + np.eye(10) * (p - (1 - p) / 9)
    assert 0.85 < expected_accuracy(uniform, np.eye(4), 16)[16] < 0.88


def test_a_confusion_matrix_is_row_normalised_and_needs_every_class():
    m = confusion(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2)
    np.testing.assert_allclose(m, [[0.5, 0.5], [0, 1]])
    with pytest.raises(ValueError, match=r"classes \[2\]"):
        confusion(np.array([0, 1]), np.array([0, 1]), 3)


# ---- NTPT after the sweep

def test_continued_training_improves_the_nets_of_a_fixed_program_and_the_test_meets_the_expectation():
    from ntpt_ray.generalise.ntpt import continue_training, test_ntpt

    spec = GeneraliseSpec.model_validate({"continued": {"eval_every": 4, "max_steps": 8, "patience": 2},
                                          "evaluate": {"max_length": 3, "examples": 500}})
    program = loop_program()
    nets, record = continue_training(spec, program, fresh_nets(), seed=0)
    assert record["program_fixed"] and record["steps"] == 8 and len(record["val_curve"]) == 3
    assert record["val_net_0_best"] > record["val_net_0_start"] + 0.05  # random nets learn from MATH alone
    tested = test_ntpt(spec, program, nets)
    assert tested["onehot_accuracy"] == {1: 1.0, 2: 1.0, 3: 1.0}  # the loop, with exact perception
    assert tested["params"]["ntpt-onehot"] == 60
    for n in (1, 2, 3):  # measured on 500 expressions vs exact, from the nets' test confusions
        assert abs(tested["accuracy"][n] - tested["exact"][n]) < 4 * np.sqrt(0.25 / 500)
    digits = np.asarray(tested["confusion"]["net_0"])  # 1 digit: net_0's mean recall (digits drawn uniformly)
    assert tested["exact"][1] == pytest.approx(np.trace(digits) / 10)


def test_a_bad_generalisation_spec_is_one_line_naming_the_field():
    with pytest.raises(SpecError, match=r"^x.toml: \[baselines\] models: Value error, distinct models|"
                                        r"^x.toml: \[baselines\] models: distinct models"):
        parse_generalise_spec({"baselines": {"models": ["gru"]}}, "x.toml")
    with pytest.raises(SpecError, match=r"\[lstm\] unknown field 'hiden'; allowed: hidden, layers, dropout"):
        parse_generalise_spec({"lstm": {"hiden": 3}}, "x.toml")


# ---- the command, tiny, on real Ray

SWEEP = """
name = "tiny-math"
[problem]
task = "math"
perceptual = true
[restarts]
total = 1
per_actor = 1
actors = 1
[train]
steps = 4
batch_size = 4
[convergence]
val_every = 2
val_size = 4
[verify]
beam = 2
test_size = 4
test_lengths = [2, 3]
"""


def _schema(models: list[str]) -> dict:
    accuracy = {"type": "number", "minimum": 0, "maximum": 1}
    by_length = {"type": "object", "patternProperties": {"^[0-9]+$": accuracy},
                 "additionalProperties": False, "minProperties": 3}
    return {"type": "object",
            "required": ["accuracy", "params", "restarts", "net_accuracy", "expected", "train_lengths",
                         "examples"],
            "properties": {
                "accuracy": {"type": "object", "required": models, "additionalProperties": by_length},
                "params": {"type": "object", "required": models, "additionalProperties": {"type": "integer"}},
                "restarts": {"type": "object", "required": ["run", "verified", "interval"],
                             "properties": {"run": {"const": 1}, "verified": {"type": "integer"}}},
                "examples": {"const": 8}}}


def test_a_run_refuses_to_start_over_finished_parts_or_to_resume_with_other_settings(tmp_path):
    from ntpt_ray.generalise.experiment import GeneraliseError, check_resume, part_path

    spec = GeneraliseSpec()
    check_resume(spec, tmp_path, resume=False)  # a fresh folder: records the settings
    part_path(tmp_path, "lstm-2").parent.mkdir()
    part_path(tmp_path, "lstm-2").write_text("{}")
    with pytest.raises(GeneraliseError, match="already has results: pass --resume"):
        check_resume(spec, tmp_path, resume=False)
    check_resume(spec.model_copy(update={"name": "renamed"}), tmp_path, resume=True)
    other = spec.model_copy(update={"lstm": spec.lstm.model_copy(update={"hidden": 1024})})
    with pytest.raises(GeneraliseError, match=r"\[lstm\] differ"):  # lstm-2 ran with hidden 128
        check_resume(other, tmp_path, resume=True)
    continued = spec.model_copy(update={"continued": spec.continued.model_copy(update={"lr": 0.01})})
    check_resume(continued, tmp_path, resume=True)  # no finished part used [continued]


@pytest.mark.slow
def test_the_command_runs_every_part_on_ray_writes_results_and_figures_and_resume_skips_them(tmp_path):
    torch.save(fresh_nets(), tmp_path / "library.pt")
    (tmp_path / "sweep.toml").write_text(SWEEP)
    (tmp_path / "spec.toml").write_text(f"""
name = "tiny"
[library]
start = "{tmp_path / 'library.pt'}"
[ntpt]
sweep = "{tmp_path / 'sweep.toml'}"
restarts = 1
[lstm]
hidden = 4
layers = 1
[ngpu]
filters = 3
[baselines]
models = ["lstm-2", "ngpu-onehot"]
device = "cpu"
max_steps = 2
eval_every = 1
val_size = 8
[evaluate]
max_length = 3
examples = 8
""")
    out = tmp_path / "out"
    command = [str(BIN / "ntpt"), "generalise", str(tmp_path / "spec.toml"), "--out", str(out)]
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    models = ["lstm-2", "ngpu-onehot"] + (["ntpt", "ntpt-onehot"] if results["restarts"]["verified"] else [])
    jsonschema.validate(results, _schema(models))
    assert results["train_lengths"]["lstm-2"] == [2] and results["baselines"]["lstm-2"]["steps"] == 2
    assert results["start_net_accuracy"]["net_0"] < 0.3  # fresh nets
    assert (out / "fig8a.png").stat().st_size > 0 and (out / "fig8b.png").stat().st_size > 0
    parts = {p.name: p.stat().st_mtime_ns for p in (out / "parts").glob("*.json")}
    assert {"library.json", "sweep.json", "lstm-2.json", "ngpu-onehot.json"} <= set(parts)

    resumed = subprocess.run([*command, "--resume"], env=ENV, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in (out / "parts").glob("*.json")} == parts  # nothing re-run
    assert "Started a local Ray" not in resumed.stderr  # every part done: no Ray at all


def test_a_lifelong_run_gives_the_library_of_its_lifetime_with_the_best_final_net_0(tmp_path):
    import torch

    from ntpt_ray.generalise.experiment import GeneraliseError, lifelong_library

    (tmp_path / "lifetimes" / "ntpt").mkdir(parents=True)
    (tmp_path / "libraries" / "ntpt").mkdir(parents=True)
    for stem, accuracy in (("000", 0.61), ("001", 0.71), ("002", 0.66)):
        (tmp_path / "lifetimes" / "ntpt" / f"{stem}.json").write_text(
            json.dumps({"final_nets": {"net_0": accuracy, "net_1": 0.9}}))
        torch.save({}, tmp_path / "libraries" / "ntpt" / f"{stem}.pt")
    file, source = lifelong_library(tmp_path)
    assert file.name == "001.pt" and "final net_0 0.7100" in source
    with pytest.raises(GeneraliseError, match="has no NTPT lifetime"):
        lifelong_library(tmp_path / "libraries")
