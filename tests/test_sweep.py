"""Sweep building blocks without Ray: specs, the convergence rule, per-restart Adam, slots, workers."""

from __future__ import annotations

import pickle
import shutil
import tomllib
from pathlib import Path

import pytest
import torch

from ntpt_ray.problems import problem
from ntpt_ray.sweep import ConvergenceRule, SpecError, load_spec, parse_spec
from ntpt_ray.sweep.state import SweepDirectory, resolve_start_library
from ntpt_ray.sweep.worker import Assignment, LibraryVersion, RestartWorker
from ntpt_ray.train.optim import RestartAdam
from ntpt_ray.train.restarts import RestartBatch, TrainConfig

SEARCH = Path(__file__).resolve().parents[1] / "search"
MINIMAL = {"name": "t", "problem": {"task": "add2x2:top"}}


# ---- specs

@pytest.mark.parametrize("path", sorted(p for p in SEARCH.glob("*.toml")
                                        if not p.name.startswith(("lifelong", "math_generalisation"))),
                         ids=lambda p: p.name)  # experiment specs: tests/test_lifelong.py, test_generalise.py
def test_shipped_specs_load(path):
    spec = load_spec(path)
    assert spec.name == tomllib.loads(path.read_text())["name"]
    assert spec.train_config().steps == spec.train.steps


def test_the_shipped_specs_cover_every_task_family():
    names = {p.stem for p in SEARCH.glob("*.toml")}
    assert {"math", "math_onehot", "add2x2", "apply2x2"} <= names


@pytest.mark.parametrize("change, message", [
    ({"problem": {"task": "add3x3"}}, "[problem] task: unknown task 'add3x3'; allowed: add2x2:top"),
    ({"train": {"lr": -1}}, "[train] lr: Input should be greater than 0 (got -1)"),
    ({"train": {"stepz": 5}}, "[train] unknown field 'stepz'; allowed: steps, batch_size, lr"),
    ({"stop": {"policy": "best"}}, "[stop] policy: Input should be 'first', 'programs' or 'all'"),
    ({"restarts": {"actors": 0}}, "[restarts] actors"),
    ({"convergence": {"jump": 1.5}}, "[convergence] jump: Input should be less than or equal to 1"),
    ({"verify": {"test_lengths": [2, 0]}}, "[verify] test_lengths.1: Input should be greater than"),
    ({"problem": {"task": "math", "hypers": {"N_DIGITZ": 3}}}, "[problem]: "),
    ({"extra": 1}, "unknown field 'extra'; allowed: name, description, problem"),
    ({"name": "a b"}, "name: String should match pattern"),
    ({"verify": {"test_lengths": []}}, "[verify] test_lengths: List should have at least 1 item"),
    ({"verify": {"test_lengths": [2, 2]}}, "[verify] test_lengths: each length once, got [2, 2]"),
    ({"train": {"lr": float("inf")}}, "[train] lr: Input should be a finite number (got inf)"),
    ({"train": {"entropy_end": float("nan")}}, "[train] entropy_end: Input should be a finite number"),
    ({"restarts": {"total": True}}, "[restarts] total: Input should be a valid integer (got True)"),
    ({"restarts": {"per_actor": 2.0}}, "[restarts] per_actor: Input should be a valid integer (got 2.0)"),
    ({"problem": {"task": "add2x2:top", "perceptual": "no"}},
     "[problem] perceptual: Input should be a valid boolean (got 'no')"),
    ({"convergence": {"at_end": 1}}, "[convergence] at_end: Input should be a valid boolean (got 1)"),
    ({"problem": {"data": "d.json", "model": "m.py", "train_batches": []}},
     "[problem] train_batches: List should have at least 1 item"),
])
def test_a_bad_spec_gets_one_error_naming_the_field(change, message):
    data = {**MINIMAL, **change}
    with pytest.raises(SpecError) as info:
        parse_spec(data, source="s.toml")
    assert str(info.value).startswith("s.toml: ")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("section, field, limit, value", [
    ("restarts", "total", "MAX_RESTARTS", 10**9), ("restarts", "per_actor", "MAX_PER_ACTOR", 10**9),
    ("train", "batch_size", "MAX_BATCH", 10**6), ("convergence", "val_size", "MAX_EXAMPLES", 10**9),
    ("verify", "test_size", "MAX_EXAMPLES", 10**9), ("verify", "beam", "MAX_BEAM", 10**9),
])
def test_every_size_has_a_limit_that_an_environment_variable_raises(section, field, limit, value, monkeypatch):
    from ntpt_ray.sweep import spec as spec_module

    data = {**MINIMAL, section: {field: value}}
    bound = getattr(spec_module, limit)
    with pytest.raises(SpecError) as info:
        parse_spec(data, source="s.toml")
    assert str(info.value) == (f"s.toml: [{section}] {field}: {value} is above the limit of {bound} "
                               f"(set NTPT_{limit} to raise it)")
    parse_spec({**MINIMAL, section: {field: bound}})  # the limit itself is allowed
    monkeypatch.setenv(f"NTPT_{limit}", str(value))
    assert getattr(parse_spec(data), section).model_dump()[field] == value
    monkeypatch.setenv(f"NTPT_{limit}", "lots")
    with pytest.raises(SpecError, match=f"NTPT_{limit} must be a positive integer, got 'lots'"):
        parse_spec(data)


def test_lengths_and_hypers_have_limits_too():
    with pytest.raises(SpecError, match=r"^<spec>: \[verify\] test_lengths.0: 100000 is above the limit of 64 "
                                        r"\(set NTPT_MAX_LENGTH to raise it\)$"):
        parse_spec({"name": "m", "problem": {"task": "math"}, "verify": {"test_lengths": [100000]}})
    with pytest.raises(SpecError, match=r"^<spec>: \[problem\] hypers: N_DIGITS: 100000 is above the limit "
                                        r"of 100 \(set NTPT_MAX_HYPER to raise it\)$"):
        parse_spec({"name": "m", "problem": {"task": "math", "hypers": {"N_DIGITS": 100000}}})


def test_floats_accept_integers():
    assert parse_spec({**MINIMAL, "train": {"lr": 1}}).train.lr == 1.0


def test_missing_section_and_bad_toml_are_named(tmp_path):
    with pytest.raises(SpecError, match=r"^<spec>: missing section \[problem\]$"):
        parse_spec({"name": "t"})
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 't'\n[problem\n")
    with pytest.raises(SpecError, match=r"bad.toml: not valid TOML: .*line 2"):
        load_spec(bad)
    with pytest.raises(SpecError, match="no such sweep spec"):
        load_spec(tmp_path / "absent.toml")


def test_sweep_id_follows_what_changes_the_search_only():
    spec = parse_spec(MINIMAL)
    same = parse_spec({**MINIMAL, "restarts": {"actors": 1, "per_actor": 3, "total": 5},
                       "stop": {"policy": "all"}})
    other = parse_spec({**MINIMAL, "train": {"lr": 0.05}})
    reseeded = parse_spec({**MINIMAL, "restarts": {"seed": 3}})
    assert spec.sweep_id == same.sweep_id
    assert len({spec.sweep_id, other.sweep_id, reseeded.sweep_id}) == 3
    assert spec.sweep_id.startswith("t-")


# ---- convergence rule

def test_convergence_fires_on_a_jump_to_a_high_accuracy():
    rule = ConvergenceRule(jump=0.2, window=3, min_accuracy=0.5)
    assert not rule.fires([0.1])
    assert not rule.fires([0.1, 0.2, 0.25, 0.3])  # slow climb
    assert rule.fires([0.1, 0.2, 0.2, 0.6])  # jump
    assert not rule.fires([0.1, 0.1, 0.1, 0.45])  # jump, but below min_accuracy
    assert rule.fires([0.2, 0.3, 0.4, 0.55])  # 0.35 above the lowest of the window
    assert not rule.fires([0.1, 0.6, 0.6, 0.6, 0.65])  # the jump left the window


def test_convergence_does_not_refire_on_a_plateau_after_a_failed_check():
    rule = ConvergenceRule(jump=0.2, window=4, min_accuracy=0.4)
    curve = [0.1, 0.1, 0.5]
    assert rule.fires(curve)
    assert not rule.fires(curve + [0.55], last_checked=0.5)
    assert rule.fires(curve + [0.62], last_checked=0.5)


def test_convergence_rule_rejects_nonsense():
    with pytest.raises(ValueError):
        ConvergenceRule(jump=2)
    with pytest.raises(ValueError):
        ConvergenceRule(window=0)


# ---- per-restart Adam and slots

def test_restart_adam_matches_torch_adam_and_resets_one_restart():
    torch.manual_seed(0)
    start = torch.randn(3, 4, 5)
    ours, theirs = start.clone().requires_grad_(), start.clone().requires_grad_()
    mine, torchs = RestartAdam([([ours], 0.1)], 3), torch.optim.Adam([theirs], lr=0.1)
    for k in range(5):
        for p, opt in ((ours, mine), (theirs, torchs)):
            opt.zero_grad()
            ((p - k) ** 2).sum().backward()
            opt.step()
    torch.testing.assert_close(ours, theirs)
    # restart 1 frozen: untouched; restart 0 reset: moves like a fresh Adam's first step
    before = ours.detach().clone()
    mine.reset(0)
    mine.zero_grad()
    (ours ** 2).sum().backward()
    grad = ours.grad.clone()
    mine.step(torch.tensor([True, False, True]))
    torch.testing.assert_close(ours[1], before[1])
    torch.testing.assert_close(ours[0], before[0] - 0.1 * grad[0].sign(), rtol=1e-4, atol=1e-5)
    assert mine.steps.tolist() == [1, 5, 6]


def test_restart_adam_updates_groups_of_tensors_of_any_rank_as_torch_adam():
    torch.manual_seed(1)
    shapes, lrs = [(3, 4), (3, 2, 5), (3,), (3, 2, 2, 2)], (0.1, 0.1, 0.01, 0.01)
    ours = [torch.randn(s, requires_grad=True) for s in shapes]
    theirs = [p.detach().clone().requires_grad_() for p in ours]
    mine = RestartAdam([(ours[:2], 0.1), (ours[2:], 0.01)], 3)
    torchs = torch.optim.Adam([{"params": [p], "lr": lr} for p, lr in zip(theirs, lrs)])
    for k in range(4):
        for params, opt in ((ours, mine), (theirs, torchs)):
            opt.zero_grad()
            sum(((p - k) ** 3).sum() for p in params[:3]).backward()
            opt.step()  # the last tensor has no gradient: untouched
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)


def test_a_reset_slot_trains_like_a_fresh_restart():
    prob = problem("add2x2:left")
    config = TrainConfig(steps=6, val_size=8, test_size=8)
    batch = RestartBatch(prob, [1, 2], config, data_seed=5)
    for _ in range(3):
        batch.step()
    batch.reset(1, 42)
    fresh = RestartBatch(prob, [42], config, data_seed=5)  # restart 42's batches: its own stream
    for _ in range(3):
        batch.step()
        fresh.step()
    for name in batch.params.logits:
        torch.testing.assert_close(batch.params.logits[name][1], fresh.params.logits[name][0], rtol=1e-4, atol=1e-5)
    assert batch.steps_done.tolist() == [6, 3]
    batch.freeze(0)
    frozen = {n: v[0].detach().clone() for n, v in batch.params.logits.items()}
    batch.step()
    assert all(torch.equal(batch.params.logits[n][0], frozen[n]) for n in frozen)
    assert batch.steps_done.tolist() == [6, 4]


# ---- the worker protocol, in-process

def test_worker_trains_reports_verifies_and_frees_slots():
    spec = parse_spec({"name": "w", "problem": {"task": "add2x2:top"},
                       "restarts": {"per_actor": 3},
                       "train": {"steps": 150},
                       "convergence": {"val_every": 50, "val_size": 40, "jump": 1.0, "min_accuracy": 1.0},
                       "verify": {"beam": 64, "test_size": 40}})  # the rule never fires: at_end only
    worker = RestartWorker(spec)
    reply = worker.advance(start=[Assignment(r, 1000 + r, 0) for r in range(3)],
                           library=LibraryVersion(0, {}))
    assert sorted(reply.accuracy) == [0, 1, 2] and set(reply.steps.values()) == {50} and reply.periods == 1
    assert reply.best_accuracy == max(max(values) for values in reply.accuracy.values())
    with pytest.raises(ValueError, match=r"4 restarts assigned to an actor running 3 with 0 queued \(at most 6"):
        worker.advance(start=[Assignment(9 + k, 9, 0) for k in range(4)])
    assert not worker.advance().checked
    reply = worker.advance()  # budgets spent: each verified in the call, its slot freed
    checked = reply.checked
    assert [c.restart for c in reply.checked] == [0, 1, 2] and not reply.spent and not reply.steps
    assert all(c.finished for c in reply.checked)
    assert any(c.verified for c in reply.checked)  # add2x2:top succeeds in nearly every restart
    for c in reply.checked:
        assert len(c.val_curve) == 3 and c.program["task"] == "add2x2:top"
        assert c.verified == all(a == 1 for a in c.verification["test_accuracy"].values())
    reply = worker.advance(start=[Assignment(3, 1003, 0)])
    assert worker.free_slots == 2 and list(reply.steps) == [3] and reply.steps[3] == 50
    # one call of three periods does what three calls of one do
    at_once = RestartWorker(spec).advance(start=[Assignment(r, 1000 + r, 0) for r in range(3)],
                                          library=LibraryVersion(0, {}), periods=5)
    assert at_once.periods == 3 and all(len(a) == 3 for a in at_once.accuracy.values())
    assert [(c.restart, c.program["values"], c.val_curve) for c in at_once.checked] == \
           [(c.restart, c.program["values"], c.val_curve) for c in checked]


def test_restarts_queued_on_a_worker_fill_its_freed_slots_within_the_call():
    spec = parse_spec({"name": "w", "problem": {"task": "add2x2:top"},
                       "restarts": {"per_actor": 2},
                       "train": {"steps": 100},
                       "convergence": {"val_every": 50, "val_size": 40, "jump": 1.0, "min_accuracy": 1.0,
                                       "at_end": False},
                       "verify": {"beam": 64, "test_size": 40}})  # spent restarts are dropped
    worker = RestartWorker(spec)
    reply = worker.advance(start=[Assignment(r, 1000 + r, 0) for r in range(4)],
                           library=LibraryVersion(0, {}), periods=10, refill=True)
    # restarts 2 and 3 took the slots 0 and 1 freed after two periods; the call ended once a
    # slot was free with nothing queued
    assert reply.spent == [0, 1, 2, 3] and reply.periods == 4 and not reply.steps
    assert all(len(reply.accuracy[r]) == 2 for r in range(4)) and worker.free_slots == 2
    alone = RestartWorker(spec).advance(start=[Assignment(3, 1003, 0)], library=LibraryVersion(0, {}),
                                        periods=10)
    assert alone.accuracy[3] == reply.accuracy[3]  # a restart's data come from its seed


def test_start_library_resolution(tmp_path):
    assert resolve_start_library(None, tmp_path) == ({}, "fresh")
    with pytest.raises(FileNotFoundError, match=r"\[library\] start: no library at"):
        resolve_start_library(str(tmp_path / "nope.pt"), tmp_path)
    with pytest.raises(FileNotFoundError, match="no sweep named 'grid'"):
        resolve_start_library("sweep:grid", tmp_path)
    nets = {"net_0": {"w0": torch.ones(2, 2)}}
    spec = parse_spec({"name": "grid", "problem": {"task": "add2x2:top", "perceptual": True}})
    directory = SweepDirectory(tmp_path, spec)
    state = directory.create({}, "fresh")
    directory.add_library(state, nets, "grid-r00001", 0.9)
    found, source = resolve_start_library("sweep:grid", tmp_path)
    assert torch.equal(found["net_0"]["w0"], nets["net_0"]["w0"]) and source.endswith("v1")
    assert directory.load().libraries[1].source == "grid-r00001"


def test_frozen_nets_are_used_but_never_trained():
    prob = problem("apply2x2:top", perceptual=True)
    config = TrainConfig(steps=3, batch_size=4, val_size=4, test_size=4, frozen_nets=("net_0",))
    batch = RestartBatch(prob, [1, 2], config)
    before = {name: net.snapshot(0) for name, net in batch.library.nets.items()}
    for _ in range(3):
        batch.step()
    after = {name: net.snapshot(0) for name, net in batch.library.nets.items()}
    assert all(torch.equal(before["net_0"][k], after["net_0"][k]) for k in before["net_0"])
    assert not all(torch.equal(before["net_1"][k], after["net_1"][k]) for k in before["net_1"])
    with pytest.raises(ValueError, match="not @Learn functions"):
        RestartBatch(prob, [1], TrainConfig(frozen_nets=("net_7",)))
    with pytest.raises(SpecError, match=r"\[library\] frozen: \['net_7'\] are not nets of the model"):
        parse_spec({**MINIMAL, "library": {"frozen": ["net_7"]}})


# ---- `ntpt sweep` errors, before any Ray starts

@pytest.mark.parametrize("args, message", [
    (["--address", "127.0.0.1:1"], "--address 127.0.0.1:1: no Ray cluster answers there"),
    (["--actors", "0"], "--actors must be >= 1, got 0"),
])
def test_sweep_command_errors_are_one_line(tmp_path, args, message):
    from typer.testing import CliRunner

    from ntpt_ray.cli import app

    result = CliRunner().invoke(app, ["sweep", str(SEARCH / "math_onehot.toml"), "--store",
                                      str(tmp_path), *args])
    assert result.exit_code == 1
    assert result.output.strip().startswith(f"error: {message}")
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "sweeps").exists()  # nothing written for a sweep that never ran


def test_sweep_command_names_the_bad_spec_field(tmp_path):
    from typer.testing import CliRunner

    from ntpt_ray.cli import app

    bad = tmp_path / "bad.toml"
    bad.write_text('name = "b"\n[problem]\ntask = "math"\n[stop]\npolicy = "best"\n')
    result = CliRunner().invoke(app, ["sweep", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}: [stop] policy: Input should be 'first', 'programs' or 'all'" in result.output


def test_a_user_task_spec_resolves_paths_from_the_spec_and_hashes_contents_not_names(tmp_path):
    from test_tasks import _reverse_files

    model, data, hypers = _reverse_files(tmp_path, check=[[1, 2, 3]])
    spec_file = tmp_path / "reverse.toml"
    spec_file.write_text('name = "rev"\n[problem]\nmodel = "reverse.py"\ndata = "reverse_data.json"\n'
                         'hypers = "reverse_hypers.json"\n')
    spec = load_spec(spec_file)
    prob = spec.build_problem()
    assert prob.task.check_batches == ("longer",) and "ys[i].set_to" in prob.source
    first = spec.sweep_id
    renamed = tmp_path / "elsewhere"
    renamed.mkdir()
    for f in (model, data, hypers):
        f.rename(renamed / f.name.replace("reverse", "rev2"))
    (renamed / "s.toml").write_text('name = "rev"\n[problem]\nmodel = "rev2.py"\ndata = "rev2_data.json"\n'
                                    'hypers = "rev2_hypers.json"\n')
    assert load_spec(renamed / "s.toml").sweep_id == first  # same contents, other names
    (renamed / "rev2.py").write_text((renamed / "rev2.py").read_text() + "\n# edited\n")
    assert load_spec(renamed / "s.toml").sweep_id != first
    unpickled = pickle.loads(pickle.dumps(spec))
    shutil.rmtree(renamed)
    assert unpickled.build_problem().source == prob.source  # actors need none of the files
    with pytest.raises(SpecError, match=r"\[problem\]: data needs model"):
        parse_spec({"name": "x", "problem": {"data": "d.json"}})
