"""Training, decoding and verification end to end, small enough for CI."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ntpt_ray.cli import app
from ntpt_ray.problems import problem
from ntpt_ray.program import LearnedProgram
from ntpt_ray.train.beam import argmax_program, top_programs
from ntpt_ray.train.restarts import RestartBatch, TrainConfig
from ntpt_ray.train.run import load_program, save_run, train_restarts

SMALL = TrainConfig(steps=120, val_every=40, val_size=40, test_size=40, beam=64)


def test_beam_is_exactly_the_k_most_probable_programs():
    rng = np.random.default_rng(0)
    probs = {"a": rng.dirichlet(np.ones(3), size=2), "b": rng.dirichlet(np.ones(4))}
    programs, logp = top_programs(probs, 10)
    every = [(i, j, k) for i in range(3) for j in range(3) for k in range(4)]
    scores = sorted((np.log(probs["a"][0, i]) + np.log(probs["a"][1, j]) + np.log(probs["b"][k]))
                    for i, j, k in every)[::-1]
    np.testing.assert_allclose(logp, scores[:10])
    assert programs["a"].shape == (10, 2) and programs["b"].shape == (10,)
    first = {name: v[0] for name, v in programs.items()}
    best = argmax_program(probs)
    assert all(np.array_equal(first[n], best[n]) for n in probs)
    assert len({(tuple(a), b) for a, b in zip(programs["a"], programs["b"])}) == 10



@pytest.mark.parametrize("concentration", [0.05, 1.0, None])  # peaked, spread, exact ties
def test_a_wide_beam_is_the_k_most_probable_programs_with_ties_broken_by_index(concentration):
    """Once the beam is full only candidates above the worst kept prefix's best extension are
    ranked; with ties (uniform Params) every choice is still among the k most probable."""
    rng = np.random.default_rng(1)
    shape = (5, 4)
    probs = {"p": np.full(shape, 0.25) if concentration is None else
             rng.dirichlet(np.full(4, concentration), size=5)}
    programs, logp = top_programs(probs, 30)
    every = np.array(list(itertools.product(range(4), repeat=5)))
    scores = np.log(probs["p"])[np.arange(5), every].sum(1)
    np.testing.assert_allclose(logp, np.sort(scores)[::-1][:30])
    chosen = np.log(probs["p"])[np.arange(5), programs["p"]].sum(1)
    np.testing.assert_allclose(chosen, logp)
    assert len({tuple(row) for row in programs["p"]}) == 30

def test_vectorised_restarts_are_independent():
    """A restart trained among others follows the same trajectory as alone (same data)."""
    prob = problem("add2x2:left")
    config = TrainConfig(steps=5, val_size=8, test_size=8)
    together = RestartBatch(prob, [11, 12, 13], config, data_seed=7)
    alone = RestartBatch(prob, [12], config, data_seed=7)
    for _ in range(5):
        together.step()
        alone.step()
    for name in together.params.logits:
        torch.testing.assert_close(together.params.logits[name][1], alone.params.logits[name][0],
                                   rtol=1e-4, atol=1e-5)


def test_a_restart_of_ntpt_train_learns_the_same_whatever_its_chunk():
    """Its batches come from its own seed (as in a sweep), not from the chunk it trains in."""
    prob = problem("add2x2:left")
    config = TrainConfig(steps=6, val_every=3, val_size=8, test_size=8, beam=4)
    runs = [train_restarts(prob, restarts=2, vectorise=v, config=config, seed=3) for v in (1, 2)]
    for alone, together in zip(*(run.results for run in runs)):
        assert alone.seed == together.seed
        assert [n for n, _ in alone.val_curve] == [n for n, _ in together.val_curve]
        np.testing.assert_allclose([a for _, a in alone.val_curve], [a for _, a in together.val_curve],
                                   atol=1e-4)
        for name, values in alone.verification.values.items():
            np.testing.assert_array_equal(values, together.verification.values[name])


def test_symbolic_add2x2_finds_a_verified_program(tmp_path):
    prob = problem("add2x2:top")
    summary = train_restarts(prob, restarts=4, vectorise=4, config=SMALL, seed=1)
    assert summary.verified >= 1
    winner = summary.winner
    assert winner is not None
    assert all(len(r.val_curve) == 3 for r in summary.results)
    # the winner adds the two top cells: check it on every digit pair
    digits = torch.tensor([(a, b, c, d) for a in range(10) for b in range(10)
                           for c, d in [(3, 7)]])
    out = winner.run({"grid": digits}, library=_oracle(prob))
    assert torch.equal(out["result"], digits[:, 0] + digits[:, 1])
    listing = winner.listing()
    assert "ADD(" in listing and "return R" in listing
    saved = save_run(summary, tmp_path / "run")
    record = json.loads((saved / "run.json").read_text())
    assert record["verified"] == summary.verified and len(record["results"]) == 4
    loaded, library = load_program(saved)
    assert library == {}
    assert {k: v.tolist() for k, v in loaded.values.items()} == \
        {k: np.asarray(v).tolist() for k, v in winner.values.items()}


def _oracle(prob):
    from ntpt_ray.library import OracleLibrary

    return OracleLibrary(prob.compile().nets)


def test_learned_program_round_trips_through_json():
    prob = problem("math")
    program = LearnedProgram(prob, {"instr": np.array([0, 0, 1]), "return_reg": np.array(0)},
                             {"instr": np.array([0.9, 0.8, 0.7]), "return_reg": np.array(1.0)})
    again = LearnedProgram.from_dict(json.loads(program.to_json()))
    assert again.problem == prob
    assert again.values["instr"].tolist() == [0, 0, 1]


def test_cli_train_show_evaluate_and_check(tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "add2x2:top", "--restarts", "4", "--vectorise", "2",
                                 "--steps", "120", "--beam", "64", "--seed", "3",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "verified programs:" in result.output
    assert (out / "run.json").exists()
    if (out / "program.json").exists():
        shown = runner.invoke(app, ["show", str(out)])
        assert shown.exit_code == 0 and "return R" in shown.output
        scored = runner.invoke(app, ["evaluate", str(out), "--examples", "200"])
        assert scored.exit_code == 0 and "1.0000" in scored.output
    bad = runner.invoke(app, ["train", "add2x2:middle"])
    assert bad.exit_code == 1 and "unknown task 'add2x2:middle'" in bad.output


@pytest.mark.parametrize("args, message", [
    (["check", "missing.py"], "cannot read model"),
    (["train", "math", "--hyper", "N_BLOCKS"], "--hyper expects NAME=INTEGER"),
    (["train", "math", "--hyper", "NOPE=3"], "unknown hyper-parameter"),
    (["train", "math", "--steps", "0"], "TrainConfig.steps must be >= 1"),
    (["train", "math", "--lr", "-1"], "TrainConfig.lr must be > 0"),
    (["evaluate", "no/such/run"], "no verified program at no/such/run"),
    (["train", "math", "--model", "no_such_model.py"], "no_such_model.py: cannot read model"),
])
def test_cli_errors_are_one_clear_line(args, message):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert message in result.output


def test_perceptual_add2x2_learns_digits_from_sums_alone():
    """Real MNIST grids supervised by the sum only: validation accuracy and net_0's accuracy
    on the MNIST test set rise far above chance (0.1) within a few hundred steps."""
    from ntpt_ray.evaluate import net_accuracy

    prob = problem("add2x2:top", perceptual=True)
    config = TrainConfig(steps=300, val_every=150, val_size=100, test_size=50, beam=16)
    batch = RestartBatch(prob, [5, 6], config)
    batch.train()
    final = [curve[-1][1] for curve in (r.val_curve for r in batch.results)]
    best = int(np.argmax(final))
    assert final[best] > 0.3
    verification = batch.verify(best)
    assert set(verification.perceptual_accuracy) == {"test"}
    program = LearnedProgram(prob, verification.values, verification.confidence)
    digits = net_accuracy(batch.library_snapshot(best), program)
    assert set(digits) == {"net_0"} and digits["net_0"] > 0.3


def test_relevance_knows_a_move_block_reads_no_arguments():
    from ntpt_ray.lang.relevance import param_guards, relevant_mask

    from test_models import MATH

    model = problem("math").compile()
    guards = param_guards(model)
    values = {k: np.asarray(v)[None] for k, v in MATH.items()}
    relevant = relevant_mask(guards, values)
    assert relevant["arg_a"][0].tolist() == [False, False, True]  # only block 2 is an APPLY
    assert relevant["net_choice"][0].tolist() == [True, True, False]  # only MOVEs read a net
    assert relevant["goto"][0].all() and relevant["return_reg"][0]


def test_changing_a_param_a_program_does_not_read_never_changes_its_outputs():
    """Soundness of the relevance analysis, on random MATH programs at several lengths."""
    from ntpt_ray.lang.relevance import param_guards, relevant_mask
    from ntpt_ray.library import OracleLibrary
    from ntpt_ray.program import run_programs

    prob = problem("math")
    rng = np.random.default_rng(0)
    params = prob.compile().params
    programs = {n: rng.integers(0, d.size, (200, *d.shape)) for n, d in params.items()}
    guards = param_guards(prob.compile({"N_DIGITS": 8}))
    relevant = relevant_mask(guards, programs)
    scrambled = {n: np.where(relevant[n], v, rng.integers(0, params[n].size, v.shape))
                 for n, v in programs.items()}
    assert any((scrambled[n] != programs[n]).any() for n in programs)
    for length in (2, 5, 8):
        batch = prob.task.examples(50, length=length, split="test", seed=length, perceptual=False)
        library = OracleLibrary(prob.compile(batch.hypers).nets)
        before = run_programs(prob, programs, batch.inputs, hypers=batch.hypers, library=library)
        after = run_programs(prob, scrambled, batch.inputs, hypers=batch.hypers, library=library)
        assert torch.equal(before["result"], after["result"])


def test_distinct_programs_merge_those_that_differ_only_in_unread_params():
    from ntpt_ray.lang.relevance import param_guards, relevant_mask
    from ntpt_ray.train.beam import distinct_programs

    model = problem("math").compile()
    guards = param_guards(model)
    rng = np.random.default_rng(1)
    probs = {n: rng.dirichlet(np.ones(d.size) * 0.5, size=d.shape) for n, d in model.params.items()}
    programs, scores = distinct_programs(probs, 300, guards)
    assert len(scores) == 300 and np.all(np.diff(scores) <= 1e-12)
    relevant = relevant_mask(guards, programs)
    keys = {tuple(np.concatenate([np.where(relevant[n][i], programs[n][i], -1).ravel()
                                  for n in programs])) for i in range(300)}
    assert len(keys) == 300



GUARDED = """
c = Param(2)
a = Param(3)[2]
x = Input(3)
y = Output(3)
if c == 0:
    y.set_to(a[0])
else:
    y.set_to(a[1])
"""


@pytest.mark.parametrize("k", [1, 4, 6])
def test_the_distinct_beam_is_exactly_the_k_most_probable_distinct_programs(k):
    """Against brute force: every joint program, its unread element set to the argmax, the
    duplicates merged, ranked by what it reads."""
    from ntpt_ray.lang.model import Model
    from ntpt_ray.lang.relevance import param_guards
    from ntpt_ray.train.beam import distinct_programs

    model = Model(GUARDED, "guarded.py").compile()
    guards = param_guards(model)
    probs = {"c": np.array([0.45, 0.55]), "a": np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]])}
    logp = {n: np.log(p) for n, p in probs.items()}
    distinct = {}
    for c, a0, a1 in itertools.product(range(2), range(3), range(3)):
        key = (c, a0 if c == 0 else -1, a1 if c == 1 else -1)
        distinct[key] = logp["c"][c] + (logp["a"][0, a0] if c == 0 else logp["a"][1, a1])
    expected = sorted(distinct.values(), reverse=True)[:k]
    programs, scores = distinct_programs(probs, k, guards)
    np.testing.assert_allclose(scores, expected)
    for i in range(k):  # the unread element holds its argmax
        unread = 1 - programs["c"][i]
        assert programs["a"][i, unread] == probs["a"][unread].argmax()

def test_distinct_program_keys_are_exact_as_integers_and_as_rows():
    from ntpt_ray.train.beam import _row_keys

    rng = np.random.default_rng(2)
    keys = [rng.integers(-1, 3, size=(500, 4)), rng.integers(-1, 2, size=(500, 3))]
    code = _row_keys(keys, [3, 2])  # (3+1)^4 * (2+1)^3 values: one int64 per row
    rows = np.concatenate(keys, axis=1)
    assert code.ndim == 1
    _, by_code = np.unique(code, return_index=True)
    _, by_row = np.unique(rows, axis=0, return_index=True)
    assert sorted(by_code) == sorted(by_row)
    wide = [rng.integers(-1, 2, size=(50, 40))]  # 3^40 > 2^63: the rows themselves
    assert _row_keys(wide, [2]).shape == (50, 40)


def test_cli_check_reports_file_and_line(tmp_path):
    bad = tmp_path / "bad_model.py"
    bad.write_text("x = Var(3)\nfor t in range(4):\n    x.set_to(9)\n")
    result = CliRunner().invoke(app, ["check", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:3: value 9 is out of range" in result.output
    good = CliRunner().invoke(app, ["check", "ntpt_ray/models/sources/math.py", "-H", "N_DIGITS=4"])
    assert good.exit_code == 0 and "return_reg" in good.output


def test_library_snapshot_seeds_another_run():
    """A restart's nets, saved and loaded into every restart of a new batch (--library)."""
    prob = problem("add2x2:top", perceptual=True)
    config = TrainConfig(steps=2, val_size=4, test_size=4)
    first = RestartBatch(prob, [1, 2], config)
    first.train()
    snapshot = first.library_snapshot(1)
    second = RestartBatch(prob, [7, 8, 9], config, library=snapshot)
    for r in range(3):
        for name, tensor in second.library_snapshot(r)["net_0"].items():
            assert torch.equal(tensor, snapshot["net_0"][name])
    wrong = {"net_0": {**snapshot["net_0"], "w0": torch.zeros(3, 3)}}
    with pytest.raises(ValueError, match="snapshot shape"):
        RestartBatch(prob, [1], config, library=wrong)


def test_guards_that_test_each_other_fall_back_to_the_widened_joint_beam():
    from ntpt_ray.train.beam import _guards_first, distinct_programs

    probs = {"a": np.array([0.6, 0.4]), "b": np.array([0.3, 0.7])}
    guards = {("a", ()): {((("b", ()), (True, False)),)}, ("b", ()): {((("a", ()), (True, False)),)}}
    assert _guards_first(probs, guards) is None
    programs, scores = distinct_programs(probs, 3, guards)
    assert len(scores) == 3 and np.all(np.diff(scores) <= 0)
    assert scores[0] == 0.0  # a = b = 1 reads neither


def test_a_verifier_remembers_each_programs_check_sets_by_the_params_it_reads(monkeypatch):
    """The second restart decoding MATH's program (here with other values in the Params it
    never reads) gets the first one's verdict without running; a wrong program gets its own."""
    from test_models import MATH

    from ntpt_ray.train.verify import Verifier

    verifier = Verifier(problem("math"), val_size=4, test_size=4)
    right = {k: np.asarray(v)[None] for k, v in MATH.items()}
    verdict = verifier.test_accuracy(right)
    assert len(verdict) == len(verifier.test) and set(verdict.values()) == {1.0}
    runs = []
    monkeypatch.setattr(verifier, "accuracy", lambda *a, **k: runs.append(a) or np.zeros(1))
    unread = {**right, "arg_a": right["arg_a"].copy()}
    unread["arg_a"][0, 0] = (unread["arg_a"][0, 0] + 1) % 3  # block 0 is a MOVE: never read
    assert verifier.test_accuracy(unread) == verdict and not runs
    wrong = {**right, "return_reg": (right["return_reg"] + 1) % 3}
    assert verifier.test_accuracy(wrong) == {verifier.test[0].name: 0.0} and len(runs) == 1
    assert verifier.test_accuracy(wrong) == {verifier.test[0].name: 0.0} and len(runs) == 1


def test_cli_bench_times_both_paths_and_gives_every_beam_its_share_of_training(tmp_path):
    """A tiny ``ntpt bench``: both relaxed paths timed, each beam width decoded (with its own
    verifier) and its decoding time put beside the training time."""
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, ["bench", "--restarts", "4", "--vectorise", "2", "--steps", "20",
                                      "--samples", "2", "--beams", "16,32", "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert set(record["throughput"]) == {"reference", "fast"}
    success = record["success"]
    assert set(success["decode_seconds"]) == {"beam 16", "beam 32"} and success["train_seconds"] > 0
    assert "of training" in result.output and "fast / reference at R=2" in result.output
