"""The lifelong experiment: its schedule, fixed pools, NTPT's one shared library, and a tiny
run of the whole command on real Ray (results.json schema, resume, a killed worker's rerun)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch

from ntpt_ray.data.symbols import SymbolPools
from ntpt_ray.lifelong.ntpt import NTPTLearner
from ntpt_ray.lifelong.pools import TaskPools
from ntpt_ray.lifelong.schedule import Schedule
from ntpt_ray.lifelong.spec import PAPER_TASKS, load_lifelong_spec, parse_lifelong_spec
from ntpt_ray.sweep import SpecError
from ntpt_ray.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0",
       "COLUMNS": "200"}
TINY = """
name = "tiny"
[data]
train_size = 40
val_size = 40
test_size = 60
eval_size = 30
[schedule]
per_task = 100
batch_size = 20
eval_every = 200
[lifetimes]
count = 3
per_task = 2
[ntpt]
beam = 8
final_beam = 16
candidates = 2
"""


def test_the_schedule_moves_from_task_to_task_and_drops_the_first_after_one_and_a_half_p():
    s = Schedule(PAPER_TASKS, per_task=1000)
    assert s.total == 8000
    t = np.arange(0, 8000, 50)
    w = s.weights(t)
    np.testing.assert_allclose(w.sum(1), 1)
    for k in range(8):
        assert s.weights((k + 0.5) * 1000).argmax() == k
        assert s.weights((k + 0.5) * 1000)[k] > 0.5
    assert (w[t >= 1500, 0] == 0).all() and (w[t < 1500, 0] > 0).all()
    rng = np.random.default_rng(0)
    drawn = np.array([s.draw(1200, rng) for _ in range(4000)])  # weights 0.3 : 0.7 on tasks 0, 1
    assert set(drawn) == {0, 1}
    assert abs((drawn == 0).mean() - 0.3) < 0.03


def test_pools_hold_distinct_grids_with_right_answers_and_test_images_unseen_in_training():
    pools = TaskPools.build(("add2x2:left", "apply2x2:right"), train_size=1000, val_size=50, test_size=300)
    for k, task in enumerate(pools.tasks):
        train, test = pools.train[k], pools.test[k]
        keys = {train.rows[i].tobytes() + train.ints[i].tobytes() for i in range(len(train))}
        assert len(train) == len(keys) == 1000
        reference = get_task(task)
        for pool in (train, test):
            for i in range(0, len(pool), 37):
                ints = pool.ints[i] if task.startswith("apply") else None
                assert pool.target[i] == reference.reference(pool.symbols[i], ints)
        train_images = SymbolPools.load(None, "train").images
        test_images = SymbolPools.load(None, "test").images
        seen = {train_images[r].tobytes() for r in np.unique(train.rows)}
        assert not seen & {test_images[r].tobytes() for r in np.unique(test.rows)}
        batch = train.batch(slice(0, 5))
        assert batch.images.shape == (5, 4, 28, 28) and batch.images.dtype == torch.float32
        labels = SymbolPools.load(None, "train").symbols
        assert (labels[train.rows[:5]] == train.symbols[:5]).all()


def test_ntpt_has_one_library_for_all_eight_tasks_and_a_program_each():
    learner = NTPTLearner([3, 4], tasks=PAPER_TASKS)
    pools = TaskPools.build(PAPER_TASKS, train_size=20, val_size=20, test_size=20)
    assert len(learner.params) == 8 and len({id(p) for p in learner.params}) == 8
    assert learner.params[0].logits["net_choice"].shape[-1] == 1  # the first task: net_0 only
    assert all(p.logits["net_choice"].shape[-1] == 2 for p in learner.params[1:])
    library = set(learner.library.parameters())
    for k in (0, 5):
        learner.zero_grad(set_to_none=True)
        learner.loss(k, pools.train[k].batch(slice(0, 8))).sum().backward()
        with_grad = {p for p in learner.parameters() if p.grad is not None and p.grad.abs().sum() > 0}
        assert with_grad & library, "every task trains the one library"
        assert with_grad - library <= set(learner.params[k].parameters())
    w = learner.library.nets["net_0"].weights[0]
    assert w.grad is not None and w.grad[0].abs().sum() > 0 and w.grad[1].abs().sum() > 0


def test_a_lifelong_spec_error_names_the_file_and_field(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[schedule]\nper_task = 0\n")
    with pytest.raises(SpecError, match=r"bad.toml: \[schedule\] per_task"):
        load_lifelong_spec(bad)
    with pytest.raises(SpecError, match=r"\[tasks\] order"):
        parse_lifelong_spec({"tasks": {"order": ["math"]}})
    with pytest.raises(SpecError, match=r"\[baselines\] lr"):
        parse_lifelong_spec({"baselines": {"lr": {"lstm": 0.1}}})
    assert load_lifelong_spec(ROOT / "search" / "lifelong.toml").tasks.order == list(PAPER_TASKS)
    changed = load_lifelong_spec(ROOT / "search" / "lifelong.toml", ["ntpt.library_lr=1e-4", "lifetimes.count=2"])
    assert changed.ntpt.library_lr == 1e-4 and changed.lifetimes.count == 2
    with pytest.raises(SpecError, match="expected SECTION.FIELD=VALUE"):
        load_lifelong_spec(ROOT / "search" / "lifelong.toml", ["ntpt.lr"])
    with pytest.raises(SpecError, match=r"\[ntpt\] beam"):
        load_lifelong_spec(ROOT / "search" / "lifelong.toml", ["ntpt.beam=0"])


RESULTS_SCHEMA = {
    "type": "object",
    "required": ["final", "final_std", "curves", "net_accuracy", "programs", "protocol", "verified",
                 "lifetimes", "wall_s", "shown"],
    "properties": {
        "final": {"type": "object", "additionalProperties": {
            "type": "object", "propertyNames": {"enum": list(PAPER_TASKS)},
            "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1}}},
        "curves": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["examples", "accuracy"]}},
        "net_accuracy": {"type": "object", "required": ["net_0", "net_1"]},
        "programs": {"type": "object", "additionalProperties": {"type": "string"}},
        "protocol": {"type": "object", "required": ["tasks", "data", "schedule", "lifetimes"]},
    },
}


def _lifelong(spec: Path, out: Path, *extra: str, env=None) -> subprocess.Popen:
    return subprocess.Popen([BIN / "ntpt", "lifelong", str(spec), "--out", str(out), "--models", "ntpt,mtnn-2",
                             "--set", "ntpt.final_beam=32", *extra], env=env or ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_a_tiny_lifelong_run_on_ray_survives_a_killed_worker_and_resumes(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY)
    out, pids = tmp_path / "out", tmp_path / "pids"
    pids.mkdir()
    run = _lifelong(spec, out, env={**ENV, "NTPT_LIFELONG_PID_DIR": str(pids)})
    deadline = time.monotonic() + 120
    while not list(pids.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    victim = sorted(pids.iterdir())[0]
    first_pid = int(victim.read_text())
    os.kill(first_pid, signal.SIGKILL)
    output, _ = run.communicate(timeout=300)
    assert run.returncode == 0, output
    assert int(victim.read_text()) != first_pid, "the killed unit ran again in another worker"
    results = json.loads((out / "results.json").read_text())
    jsonschema.validate(results, RESULTS_SCHEMA)
    assert results["lifetimes"] == {"ntpt": 3, "mtnn-2": 3}
    assert results["protocol"]["ntpt"]["final_beam"] == 32  # --set reached the run
    assert set(results["programs"]) == set(PAPER_TASKS) and "return" in results["programs"]["add2x2:top"]
    assert len(results["curves"]["ntpt"]["examples"]) == 4  # every 200 of 800 examples, the last on the whole pool
    assert all((out / name).stat().st_size > 10_000 for name in ("fig6.png", "fig7.png"))
    assert "| add2x2:top |" in (out / "table.md").read_text()
    finished = {p: p.stat().st_mtime_ns for p in (out / "lifetimes").rglob("*.json")}
    assert len(finished) == 6
    libraries = sorted((out / "libraries" / "ntpt").glob("*.pt"))
    assert [p.name for p in libraries] == ["000.pt", "001.pt", "002.pt"]
    nets = torch.load(libraries[0])  # a LibrarySnapshot a sweep can start from
    assert set(nets) == {"net_0", "net_1"} and nets["net_0"]["w0"].shape == (784, 256)
    changed = _lifelong(spec, out, "--resume", "--set", "ntpt.lr=0.2")
    output, _ = changed.communicate(timeout=120)
    assert changed.returncode == 1 and "ntpt.lr differ" in output, output
    again = _lifelong(spec, out)
    output, _ = again.communicate(timeout=120)
    assert again.returncode == 1 and "pass --resume" in output
    (out / "lifetimes" / "ntpt" / "001.json").unlink()
    resumed = _lifelong(spec, out, "--resume")
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output
    after = {p: p.stat().st_mtime_ns for p in (out / "lifetimes").rglob("*.json")}
    assert set(after) == set(finished)
    assert [p.name for p in after if after[p] != finished.get(p)] == ["001.json"]


def test_the_library_epsilon_keeps_an_uncalled_nets_tiny_gradients_from_moving_it():
    """RMSProp normalises each weight's step by its own gradient history, so a net the programs
    no longer call (gradients ~1e-7 per weight) would still move at the full rate; the library's
    epsilon bounds that drift (the reason `library_eps` exists)."""
    from ntpt_ray.lifelong.lifetime import make_optimizer

    moved = {}
    for eps in (1e-8, 1e-3):
        spec = load_lifelong_spec(ROOT / "search" / "lifelong.toml", [f"ntpt.library_eps={eps}"])
        learner = NTPTLearner([0], tasks=PAPER_TASKS[:2])
        optimizer = make_optimizer(spec, "ntpt", learner, spec.ntpt.lr)
        assert optimizer.param_groups[1]["eps"] == eps and optimizer.param_groups[1]["lr"] == spec.ntpt.library_lr
        w = learner.library.nets["net_0"].weights[-1]
        before = w.detach().clone()
        for _ in range(50):
            optimizer.zero_grad(set_to_none=False)
            w.grad = torch.full_like(w, 1e-7)
            optimizer.step()
        moved[eps] = (w.detach() - before).abs().max().item()
    assert moved[1e-8] > 50 * spec.ntpt.library_lr * 0.5  # amplified to about lr per step
    assert moved[1e-3] < moved[1e-8] / 1000


def test_a_committed_program_is_one_hot_and_only_its_nets_learn_through_it():
    """`commit_verified`: once lifetime 0's APPLY2X2 program is fixed to one that reads every
    image with net_1, neither its logits nor net_0 get any gradient from that task in lifetime 0,
    while the uncommitted lifetime 1 still trains both."""
    from ntpt_ray.lifelong.ntpt import DecodedProgram

    learner = NTPTLearner([3, 4], tasks=PAPER_TASKS)
    pools = TaskPools.build(PAPER_TASKS, train_size=20, val_size=20, test_size=20)
    k = 4  # apply2x2:top
    params = learner.params[k]
    values = {name: np.zeros(logit.shape[1:-1], dtype=np.int64) for name, logit in params.logits.items()}
    values["net_choice"][:] = 1
    values["return_reg"][()] = 3  # R_READ (N_AUX = 3): the answer is net_1's reading of the first cell
    with pytest.raises(ValueError, match="only a verified program"):
        learner.commit(k, 0, DecodedProgram(values, False, 0.0), pools.train[k].batch(slice(0, 8)))
    program = DecodedProgram(values, True, 1.0)
    learner.commit(k, 0, program, pools.train[k].batch(slice(0, 8)))
    assert learner.owned["net_1"].tolist() == [True, False] and not learner.owned["net_0"].any()
    probs = params.probs()
    assert all(torch.equal(p[0].argmax(-1), torch.as_tensor(values[n])) and bool((p[0].max(-1).values == 1).all())
               for n, p in probs.items())
    assert not bool((probs["net_choice"][1].max(-1).values == 1).all())
    assert learner.decode(k, 0, pools.val[k].batch(slice(0, 8)), beam=4) is program
    learner.zero_grad(set_to_none=True)
    learner.loss(k, pools.train[k].batch(slice(0, 8))).sum().backward()
    w = learner.library.nets["net_0"].weights[0]
    assert w.grad[0].abs().sum() == 0 and w.grad[1].abs().sum() > 0
    assert all(logit.grad[0].abs().sum() == 0 for logit in params.logits.values())
    assert learner.library.nets["net_1"].weights[0].grad[0].abs().sum() > 0
    # library_teachers = "committed": another, uncommitted task no longer trains lifetime 0's
    # net_1 (a committed program calls it), but still its net_0 and lifetime 1's nets
    learner.zero_grad(set_to_none=True)
    learner.loss(5, pools.train[5].batch(slice(0, 8))).sum().backward()
    learner.keep_owned_nets(5)
    net_1 = learner.library.nets["net_1"].weights[0].grad
    assert net_1[0].abs().sum() == 0 and net_1[1].abs().sum() > 0
    assert learner.library.nets["net_0"].weights[0].grad[0].abs().sum() > 0


def test_a_stuck_uncommitted_program_is_drawn_afresh_with_a_fresh_optimiser_state():
    """`restart_after`: once a task has had that many examples since its program was drawn, an
    uncommitted program is re-drawn (its RMSProp state cleared); a committed one is kept."""
    from ntpt_ray.lifelong.lifetime import _restart_stuck
    from ntpt_ray.lifelong.ntpt import DecodedProgram

    learner = NTPTLearner([3, 4], tasks=PAPER_TASKS[:2])
    pools = TaskPools.build(PAPER_TASKS[:2], train_size=20, val_size=20, test_size=20)
    optimizer = torch.optim.RMSprop(learner.parameters(), lr=0.1)
    learner.loss(0, pools.train[0].batch(slice(0, 8))).sum().backward()
    optimizer.step()
    values = {n: np.zeros(l.shape[1:-1], dtype=np.int64) for n, l in learner.params[0].logits.items()}
    learner.commit(0, 0, DecodedProgram(values, True, 1.0), pools.train[0].batch(slice(0, 8)))
    before = {n: l.detach().clone() for n, l in learner.params[0].logits.items()}
    restarted: dict = {}
    _restart_stuck(learner, optimizer, {0: [0] * 3}, after=200, batch_size=50, restarted=restarted)
    assert restarted == {(0, 0): [], (0, 1): []}  # 150 examples: not yet
    _restart_stuck(learner, optimizer, {0: [0] * 4}, after=200, batch_size=50, restarted=restarted)
    assert restarted == {(0, 0): [], (0, 1): [200]}
    for name, logit in learner.params[0].logits.items():
        assert torch.equal(logit[0], before[name][0]) and not torch.equal(logit[1], before[name][1])
        state = optimizer.state[logit]["square_avg"]
        assert state[1].abs().sum() == 0
        assert state[0].abs().sum() > 0 or logit.shape[-1] == 1  # net_choice of the first task: no gradient
    with pytest.raises(ValueError, match="committed"):
        learner.restart_program(0, 0, 1)


def test_candidates_train_side_by_side_and_the_first_verified_one_becomes_the_lifetimes_program():
    """`candidates = 3`: every lifetime trains three programs per task against its one set of
    nets; its loss is their mean, the first verified candidate is its program, committing fixes
    all three rows, and a restart (with its optimiser state) redraws all three."""
    from ntpt_ray.lifelong.lifetime import _restart_stuck
    from ntpt_ray.lifelong.ntpt import DecodedProgram
    from ntpt_ray.tasks import Examples, relaxed_nll

    tasks, k = PAPER_TASKS[:2], 1
    learner = NTPTLearner([3, 4], tasks=tasks, candidates=3)
    single = NTPTLearner([3, 4], tasks=tasks)
    pools = TaskPools.build(tasks, train_size=20, val_size=20, test_size=20)
    batch = pools.train[k].batch(slice(0, 8))
    logits = learner.params[k].logits["net_choice"]
    assert logits.shape[0] == 6 and not torch.equal(logits[0], logits[1])
    outputs = learner.outputs(k, batch)
    torch.testing.assert_close(outputs[::3], single.outputs(k, batch))  # candidate 0: the C = 1 program
    nll = relaxed_nll({"result": outputs}, Examples({}, {"result": batch.target}))
    torch.testing.assert_close(learner.loss(k, batch), nll.view(2, 3).mean(1))

    values = {n: np.zeros(l.shape[1:-1], dtype=np.int64) for n, l in learner.params[k].logits.items()}
    calls = []

    def decode_row(task, restart, probs, val, beam, screen):  # only the 2nd candidate verifies
        calls.append(restart)
        return DecodedProgram(values, restart == 0 and len(calls) == 2, float(len(calls)))

    learner._decode_row = decode_row
    val = pools.val[k].batch(slice(0, 8))
    chosen = learner.decode(k, 0, val, beam=4)
    assert chosen.verified and calls == [0, 0]
    unverified = learner.decode(k, 1, val, beam=4)
    assert not unverified.verified and unverified.val_accuracy == 3.0 and calls == [0, 0, 1, 1, 1]

    optimizer = torch.optim.RMSprop(learner.parameters(), lr=0.1)
    learner.loss(k, batch).sum().backward()
    optimizer.step()
    learner.commit(k, 0, chosen, batch)
    probs = learner.params[k].probs()
    assert all(bool((p[:3].max(-1).values == 1).all()) and not bool((p[3:].max(-1).values == 1).all())
               for p in probs.values() if p.shape[-1] > 1)
    before = logits.detach().clone()
    _restart_stuck(learner, optimizer, {k: [0] * 4}, after=200, batch_size=50, restarted={})
    assert torch.equal(logits[:3], before[:3]) and all(not torch.equal(logits[r], before[r]) for r in (3, 4, 5))
    state = optimizer.state[logits]["square_avg"]
    assert state[3:].abs().sum() == 0 and state[:3].abs().sum() > 0
