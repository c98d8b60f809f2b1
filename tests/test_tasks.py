"""Tasks as objects: a user's model and data files, TerpreT's format, through every path."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ntpt_ray import TrainConfig, train_restarts
from ntpt_ray.cli import app
from ntpt_ray.problems import file_problem, problem
from ntpt_ray.tasks import UNOBSERVED, Examples, TaskDataError, discrete_correct, get_task, relaxed_nll

REPO = Path(__file__).resolve().parents[1]
TERPRET = REPO.parent / "shared" / "terpret"
needs_terpret = pytest.mark.skipif(not TERPRET.is_dir(), reason="../shared/terpret is not here")

# Reverse a list of three symbols: a program of three copies, each Param choosing a source.
REVERSE = """
N = Hyper()
xs = Input(4)[N]
ys = Output(4)[N]
src = Param(N)[N]
for i in range(N):
    with src[i] as s:
        ys[i].set_to(xs[s])
"""


def _reverse_files(tmp_path: Path, *, check: list[list[int]] | None = None, null: bool = False) -> tuple[Path, Path, Path]:
    model = tmp_path / "reverse.py"
    model.write_text(REVERSE)
    rng = np.random.default_rng(0)
    train = [{"xs": row.tolist(), "ys": row[::-1].tolist()} for row in rng.integers(0, 4, (12, 3))]
    if null:
        for inst in train:
            inst["ys"][1] = None
    batches = [{"batch_name": "train", "hypers": "n3", "instances": train}]
    if check is not None:
        batches.append({"batch_name": "longer", "hypers": "n3",
                        "instances": [{"xs": c, "ys": c[::-1]} for c in check]})
    data = tmp_path / "reverse_data.json"
    data.write_text(json.dumps(batches))
    hypers = tmp_path / "reverse_hypers.json"
    hypers.write_text(json.dumps({"n3": {"N": 3}}))
    return model, data, hypers


def test_builtin_tasks_are_registered_task_objects():
    task = get_task("math")
    assert task.output_names == ("result",) and task.train_hypers == {"N_DIGITS": 2}
    sets = task.check_sets(4, seed=0, perceptual=False)
    assert [s.name for s in sets][:2] == ["2", "3"] and sets[-1].hypers == {"N_DIGITS": 16}
    with pytest.raises(ValueError, match="unknown task 'mytask'.*--model MODEL --data"):
        problem("mytask")


def test_a_user_task_from_files_trains_and_verifies_on_held_out_batches(tmp_path):
    model, data, hypers = _reverse_files(tmp_path, check=[[1, 2, 3], [3, 0, 1]])
    prob = file_problem(model, data, hypers)
    assert prob.task.train_batches == ("train",) and prob.task.check_batches == ("longer",)
    summary = train_restarts(prob, restarts=4, vectorise=4, config=TrainConfig(steps=60, val_every=20))
    assert summary.verified >= 1
    assert summary.winner.values["src"].tolist() == [2, 1, 0]
    verified = next(r for r in summary.results if r.verified)
    assert verified.verification.test_accuracy == {"longer": 1.0}


def test_null_outputs_are_masked_out_of_the_loss_and_the_checks(tmp_path):
    model, data, hypers = _reverse_files(tmp_path, null=True)
    prob = file_problem(model, data, hypers)
    examples = prob.task.validation_sets(100, seed=0, perceptual=False)[0]
    assert (examples.outputs["ys[1]"] == UNOBSERVED).all()
    # any source for the middle element is right: it is never observed
    outputs = {"ys[0]": examples.inputs["xs"][:, 2][None], "ys[1]": torch.zeros(1, 12, dtype=torch.long),
               "ys[2]": examples.inputs["xs"][:, 0][None]}
    assert discrete_correct(outputs, examples).all()
    certain = {k: torch.nn.functional.one_hot(v, 4).float() for k, v in outputs.items()}
    assert torch.allclose(relaxed_nll(certain, examples), torch.zeros(1), atol=1e-6)
    assert not prob.task.held_out  # only a train batch: fitting it is all that is checked


@pytest.mark.parametrize("edit, fragment", [
    (lambda b: b[0]["instances"][3].update(xs=[1, 9, 0]), "batch 'train': instance 3: Input 'xs'[1]: value 9 is outside its range 0..3"),
    (lambda b: b[0]["instances"][2].pop("xs"), "batch 'train': instance 2: Input 'xs': missing"),
    (lambda b: b[0]["instances"][0].update(zs=1), "instance 0: 'zs' is neither an Input nor an Output"),
    (lambda b: b[0]["instances"][5].update(ys=[1, 2]), "instance 5: Output 'ys': has shape (2,), the model declares (3,)"),
    (lambda b: b[0].update(hypers="n9"), "hypers set 'n9' is not in the hypers file (sets: n3)"),
    (lambda b: [i.pop("ys") for i in b[0]["instances"]], "Output 'ys' of the model is never mentioned"),
])
def test_data_that_does_not_fit_its_model_gets_one_line_naming_file_batch_instance_and_name(tmp_path, edit, fragment):
    model, data, hypers = _reverse_files(tmp_path)
    batches = json.loads(data.read_text())
    edit(batches)
    data.write_text(json.dumps(batches))
    with pytest.raises(TaskDataError) as info:
        file_problem(model, data, hypers)
    assert str(info.value).startswith(f"{data}: ") and fragment in str(info.value)
    result = CliRunner().invoke(app, ["train", "--model", str(model), "--data", str(data), "--hypers", str(hypers)])
    assert result.exit_code == 1 and fragment in result.output and "Traceback" not in result.output


def test_cli_train_run_json_and_missing_hyper(tmp_path):
    model, data, hypers = _reverse_files(tmp_path, check=[[1, 2, 3]])
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--model", str(model), "--data", str(data), "--hypers", str(hypers),
                                 "--restarts", "2", "--vectorise", "2", "--steps", "60", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "program.json").exists()
    model.unlink()  # the run directory keeps its own copy of the source
    ran = runner.invoke(app, ["run", str(out), "--json", '{"xs": [3, 0, 2]}'])
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.output.strip().splitlines()[-1]) == {"ys": [2, 0, 3]}
    longer = runner.invoke(app, ["run", str(out), "--json", '{"xs": [3, 0, 2, 1]}', "-H", "N=4"])
    assert longer.exit_code == 1 and "shape" in longer.output  # src has 3 entries: a new shape
    bad = runner.invoke(app, ["run", str(out), "--json", '{"xz": [1, 2, 3]}'])
    assert bad.exit_code == 1 and "'xz' is not an Input" in bad.output
    model.write_text(REVERSE)
    missing = runner.invoke(app, ["check", str(model)])
    assert missing.exit_code == 1 and f"{model}:2:" in missing.output and "'N'" in missing.output
    checked = runner.invoke(app, ["check", str(model), "--hypers", f"{hypers}:n3"])
    assert checked.exit_code == 0 and "ys" in checked.output


@needs_terpret
@pytest.mark.parametrize("model, data, checks", [
    ("test1.py", "test1", "difficulty2"),
    ("circuit.py", "circuit_swap", None),
    ("turing.py", "turing_invert", None),
    ("turing.py", "turing_prepend", None),
])
def test_terpret_models_train_from_the_files_as_published(model, data, checks, tmp_path):
    result = CliRunner().invoke(app, [
        "train", "--model", str(TERPRET / "models" / model), "--data", str(TERPRET / "data" / f"{data}_data.json"),
        "--hypers", str(TERPRET / "data" / f"{data}_hypers.json"), "--restarts", "8", "--vectorise", "8",
        "--steps", "300", "--out", str(tmp_path / "run"), *(["--check-batches", checks] if checks else [])])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "program.json").exists(), result.output


def test_the_larger_digit_example_is_a_perceptual_user_task(tmp_path):
    sys.path.insert(0, str(REPO / "search" / "tasks" / "larger_digit"))
    from make_data import write

    data = write(tmp_path, train=160, check=60)
    prob = file_problem(REPO / "search" / "tasks" / "larger_digit" / "model.py", data)
    assert prob.perceptual and prob.task.train_batches == ("train",)
    examples = prob.task.check_sets(10, seed=0, perceptual=True)[0]
    assert examples.inputs["digits"].shape == (60, 2, 28, 28) and examples.symbols["digits"].shape == (60, 2)
    assert isinstance(examples, Examples)


def test_a_custom_model_for_a_builtin_task_must_declare_its_inputs(tmp_path):
    from ntpt_ray.problems import problem, read_model_source

    model = tmp_path / "cells.py"
    model.write_text(read_model_source("grid2x2")[0].replace("grid", "cells"))
    with pytest.raises(ValueError, match="cells.py: the task's examples give Input 'grid', which the model does not declare"):
        problem("add2x2:top", model=str(model))


@pytest.mark.parametrize("name", ["math", "add2x2:left", "apply2x2:bottom", "math-two-lengths"])
def test_a_built_in_task_draws_stacked_training_batches_as_one_at_a_time(name):
    from dataclasses import replace

    from ntpt_ray.tasks import Task

    task = replace(get_task("math"), train_lengths=(2, 3)) if name == "math-two-lengths" else get_task(name)
    def streams():
        return [np.random.default_rng([5, s]) for s in range(7)]

    fast = task.stacked_train_examples(16, streams(), perceptual=False)
    slow = Task.stacked_train_examples(task, 16, streams(), perceptual=False)  # one at a time, stacked
    assert [rows for rows, _ in fast] == [rows for rows, _ in slow] and sum(len(r) for r, _ in fast) == 7
    for (_, a), (_, b) in zip(fast, slow):
        assert a.hypers == b.hypers and (a.inputs.keys(), a.outputs.keys()) == (b.inputs.keys(), b.outputs.keys())
        for part in ("inputs", "outputs"):
            for key in getattr(a, part):
                assert torch.equal(getattr(a, part)[key], getattr(b, part)[key]), (part, key)
