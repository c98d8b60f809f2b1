"""``ntpt tune``: the [tune] table, Optuna storages, best trials, best specs, and a real study
on a `ray start --head` cluster with real SQLite storage: resume, pruning, a killed driver."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
import tomlkit
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from test_sweep_ray import BIN, ENV, _start_head, _stop

from ntpt_ray.sweep import SpecError, load_spec, parse_spec
from ntpt_ray.tune import TuneError, best_trial, open_storage, tuned_spec
from ntpt_ray.tune.best import write_best_spec
from ntpt_ray.tune.compare import Measured, two_proportion_p
from ntpt_ray.tune.study import default_params, make_pruner, open_study, recover_stale

TINY = """
# a tiny study: 4 restarts of 100 steps per trial
name = "{name}"
[problem]
task = "math"
[restarts]
per_actor = 1
[train]
steps = 100
lr = 0.1          # the spec's own rate
[convergence]
val_size = 40
[verify]
beam = 128
test_size = 40
[tune]
trials = 2
restarts = 4
startup = 2
pruner = "{pruner}"
prune_startup = 1
prune_warmup = 0.25
[tune.params]
lr = {{ low = 0.01, high = 1.0, log = true }}
batch_size = {{ choices = [8, 16] }}
"""


def _tiny(tmp_path: Path, name: str = "tiny", pruner: str = "median") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(TINY.format(name=name, pruner=pruner))
    return path


def _error(tune: str) -> str:
    data = {"name": "x", "problem": {"task": "math"}, "tune": tomlkit.parse(tune).unwrap()}
    with pytest.raises(SpecError) as caught:
        parse_spec(data)
    return str(caught.value)


# ---- the [tune] table

def test_unknown_parameter_names_the_allowed_ones():
    message = _error("[params]\nlrr = { low = 0.1, high = 1.0 }")
    assert message == ("<spec>: [tune] params: unknown parameter 'lrr'; allowed: lr, library_lr, "
                       "entropy_start, entropy_end, init_scale, batch_size, steps, beam")


@pytest.mark.parametrize("table, says", [
    ("lr = { low = 1.0, high = 0.1 }", "[tune] params.lr: empty range: low 1 >= high 0.1"),
    ("lr = { low = 0.5, high = 0.5 }", "[tune] params.lr: empty range: low 0.5 >= high 0.5"),
    ("batch_size = { choices = [] }", "[tune] params.batch_size: empty range: choices = []"),
    ("lr = { low = 0.0, high = 1.0, log = true }", "a log range needs low > 0"),
    ("lr = { high = 1.0 }", "[tune] params.lr: needs low and high"),
    ("steps = { low = 100, high = 350.5 }", "steps is an integer"),
    ("lr = { low = 0.1, high = 1.0, lg = true }", "[tune.params.lr] unknown field 'lg'; allowed: low, high"),
])
def test_bad_ranges_are_named(table, says):
    assert says in _error(f"[params]\n{table}")


def test_no_parameters_and_library_rate_without_library_are_refused():
    assert "no parameter to tune" in _error("[params]")
    assert "trains no neural library" in _error("[params]\nlibrary_lr = { low = 1e-4, high = 1e-2 }")


def test_tuned_spec_sets_sections_and_runs_every_restart(tmp_path):
    spec = load_spec(_tiny(tmp_path))
    tuned = tuned_spec(spec, {"lr": 0.3, "batch_size": 8.0, "beam": 64}, name="t", restarts=8, seed=5,
                       run_all=True)
    assert (tuned.train.lr, tuned.train.batch_size, tuned.verify.beam) == (0.3, 8, 64)
    assert isinstance(tuned.train.batch_size, int)
    assert (tuned.name, tuned.restarts.total, tuned.restarts.seed, tuned.stop.policy) == ("t", 8, 5, "all")
    assert default_params(spec) == {"lr": 0.1, "batch_size": 16}


# ---- storages and studies

def test_storage_errors_are_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    for url, says in [(f"sqlite:///{tmp_path}/file/tune.db", "cannot open it"),
                      ("postgresql://127.0.0.1:1/study", "cannot open it"),
                      ("nosuchdb://host/x", "cannot open it"),
                      ("runs/tune.db", "expected an SQLAlchemy URL")]:
        with pytest.raises(TuneError) as caught:
            open_storage(url)
        assert str(caught.value).startswith(f"storage '{url}': {says}")
        assert "\n" not in str(caught.value)


def test_a_study_is_created_once_with_the_spec_values_first(tmp_path):
    spec = load_spec(_tiny(tmp_path))
    url = f"journal:{tmp_path}/journal.log"
    first = open_study(spec, url)
    again = open_study(spec, url)  # loads, does not enqueue the defaults twice
    waiting = again.get_trials(states=(TrialState.WAITING,))
    assert first.study_name == again.study_name == "tiny"
    assert len(waiting) == 1 and waiting[0].user_attrs == {"baseline": True}


def test_best_trial_breaks_ties_by_time_to_first_verified():
    study = optuna.create_study(direction="maximize")
    space = {"lr": FloatDistribution(0.01, 1.0, log=True)}
    for lr, value, first in [(0.1, 0.5, 30.0), (0.2, 0.5, 12.0), (0.3, 0.4, 1.0), (0.4, 0.5, None)]:
        study.add_trial(create_trial(params={"lr": lr}, distributions=space, value=value,
                                     user_attrs={"first_verified_seconds": first}))
    assert best_trial(study).params == {"lr": 0.2}
    study.add_trial(create_trial(params={"lr": 0.1}, distributions=space, value=0.9,
                                 user_attrs={"baseline": True}))
    assert best_trial(study).params == {"lr": 0.1}
    assert best_trial(study, tuned_only=True).params == {"lr": 0.2}  # --compare: not the spec's own


def test_the_pruner_stops_the_bottom_quarter_only(tmp_path):
    tune = load_spec(_tiny(tmp_path, pruner="percentile")).tune  # prune_percentile = 25
    tune = tune.model_copy(update={"prune_warmup": 0.5})  # 2 of its 4 restarts done
    study = optuna.create_study(direction="maximize", pruner=make_pruner(tune))
    space = {"lr": FloatDistribution(0.01, 1.0, log=True)}
    for value in (0.1, 0.2, 0.3, 0.4):  # 25th percentile at step 2: 0.175
        study.add_trial(create_trial(params={"lr": value}, distributions=space, value=value,
                                     intermediate_values={1: value, 2: value}))
    verdicts = []
    for value in (0.15, 0.25):
        trial = study.ask(space)
        trial.report(value, 1)  # in the warm-up: never pruned
        early = trial.should_prune()
        trial.report(value, 2)
        verdicts.append((early, trial.should_prune()))
    assert verdicts == [(False, True), (False, False)]


def test_stale_running_trials_of_a_dead_local_driver_are_retried(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/s.db", direction="maximize")
    dead = subprocess.Popen(["true"])
    dead.wait()
    trial = study.ask({"lr": FloatDistribution(0.01, 1.0, log=True)})
    trial.set_user_attr("driver", f"{os.uname().nodename}:{dead.pid}")
    alive = study.ask({"lr": FloatDistribution(0.01, 1.0, log=True)})
    alive.set_user_attr("driver", f"{os.uname().nodename}:{os.getpid()}")
    assert recover_stale(study) == [trial.number]
    states = {t.number: t.state for t in study.get_trials()}
    assert states[trial.number] == TrialState.FAIL and states[alive.number] == TrialState.RUNNING
    retry = study.get_trials(states=(TrialState.WAITING,))
    assert len(retry) == 1 and retry[0].user_attrs == {"retry_of": trial.number}


def test_best_spec_keeps_comments_and_loads(tmp_path):
    source = _tiny(tmp_path)
    study = optuna.create_study(direction="maximize")
    study.add_trial(create_trial(
        params={"lr": 0.25, "batch_size": 8}, value=0.5, user_attrs={"verified": 2, "restarts": 4},
        distributions={"lr": FloatDistribution(0.01, 1.0, log=True),
                       "batch_size": optuna.distributions.CategoricalDistribution([8, 16])}))
    out = write_best_spec(source, best_trial(study), tmp_path / "tiny.tuned.toml", study="s")
    text = out.read_text()
    assert text.startswith("# Tuned by `ntpt tune`: study 's', trial 0, 2/4 restarts verified (50.0%)")
    assert "# a tiny study: 4 restarts of 100 steps per trial" in text  # the source's comments stay
    tuned = load_spec(out)
    assert (tuned.name, tuned.train.lr, tuned.train.batch_size) == ("tiny-tuned", 0.25, 8)
    assert tuned.train.steps == 100 and tuned.tune == load_spec(source).tune


def test_success_intervals_and_test():
    a, b = Measured("a", {}, verified=8, restarts=32), Measured("b", {}, verified=24, restarts=32)
    low, high = a.interval()
    assert (low, high) == pytest.approx((0.1325, 0.4211), abs=1e-4)  # Wilson, 8 of 32
    assert two_proportion_p(a, b) < 0.001 < two_proportion_p(a, Measured("c", {}, 9, 32))


# ---- a real study on a real cluster

@pytest.fixture(scope="module")
def cluster():
    address, temp = _start_head(2)
    yield address
    _stop(temp)


def _tune(spec: Path, tmp_path: Path, address: str, *args: str, **popen):
    command = [BIN / "ntpt", "tune", str(spec), "--storage", f"sqlite:///{tmp_path}/tune.db",
               "--store", str(tmp_path / "store"), "--address", address, *args]
    return subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=tmp_path, **popen)


def _run(*args, **kwargs) -> str:
    process = _tune(*args, **kwargs)
    out, _ = process.communicate(timeout=400)
    assert process.returncode == 0, out
    return out


def _study(tmp_path: Path, name: str = "tiny") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path}/tune.db")


def _sweep_outcomes(tmp_path: Path, trial) -> dict:
    import json

    state = tmp_path / "store" / "sweeps" / trial.user_attrs["sweep"] / "state.json"
    return json.loads(state.read_text())["outcomes"]


@pytest.mark.slow
def test_study_runs_resumes_prunes_and_reports(tmp_path, cluster):
    spec = _tiny(tmp_path)
    out = _run(spec, tmp_path, cluster, "--parallel", "2")
    assert "2 finished trials (2 this run)" in out
    first = _study(tmp_path).get_trials()
    assert [t.state for t in first] == [TrialState.COMPLETE] * 2
    assert first[0].params == {"lr": 0.1, "batch_size": 16} and first[0].user_attrs["baseline"]
    for trial in first:  # each trial is a sweep that ran all its restarts; its score is theirs
        outcomes = _sweep_outcomes(tmp_path, trial)
        verified = sum(o == "verified" for o in outcomes.values())
        assert len(outcomes) == 4 and trial.user_attrs["verified"] == verified
        assert trial.value == verified / 4
        assert sorted(trial.intermediate_values) == [1, 2, 3, 4]
        assert trial.intermediate_values[4] == trial.value

    out = _run(spec, tmp_path, cluster, "--trials", "3")  # the same command resumes the study
    assert "3 finished trials (1 this run)" in out
    again = _study(tmp_path).get_trials()
    assert [(t.params, t.value, t.datetime_start) for t in again[:2]] == \
        [(t.params, t.value, t.datetime_start) for t in first]

    # a history of trials that verified every restart early makes a new trial hopeless
    study = _study(tmp_path)
    for lr in (0.5, 0.6, 0.7, 0.8):
        study.add_trial(create_trial(
            params={"lr": lr, "batch_size": 16}, value=1.0, intermediate_values={s: 1.0 for s in range(1, 5)},
            distributions=study.get_trials()[0].distributions))
    before = len(study.get_trials())
    out = _run(spec, tmp_path, cluster, "--trials", str(before + 1))
    hopeless = _study(tmp_path).get_trials()[before]
    assert hopeless.state == TrialState.PRUNED and f"trial {before} pruned" in out, out
    assert max(hopeless.intermediate_values) < 4  # stopped before its sweep ran every restart
    assert len(_sweep_outcomes(tmp_path, hopeless)) < 4

    out = _run(spec, tmp_path, cluster, "--report", "--plots", str(tmp_path / "plots"))
    assert "pruned" in out and "(spec)" in out
    for name in ("history", "importance", "intermediate"):
        assert (tmp_path / "plots" / f"{name}.png").stat().st_size > 10_000
    out = _run(spec, tmp_path, cluster, "--best")
    tuned = load_spec(tmp_path / "tiny.tuned.toml")
    best = best_trial(_study(tmp_path))
    assert (tuned.train.lr, tuned.train.batch_size) == (best.params["lr"], best.params["batch_size"])


@pytest.mark.slow
def test_a_killed_driver_leaves_its_trial_to_be_run_again(tmp_path, cluster):
    spec = _tiny(tmp_path, name="killed", pruner="none")
    spec.write_text(spec.read_text().replace("steps = 100", "steps = 400"))
    driver = _tune(spec, tmp_path, cluster, "--parallel", "1", start_new_session=True)
    deadline = time.time() + 120
    while True:
        assert driver.poll() is None and time.time() < deadline, driver.stdout.read()
        try:
            running = _study(tmp_path, "killed").get_trials(states=(TrialState.RUNNING,))
        except KeyError:  # not created yet
            running = []
        if running and "sweep" in running[0].user_attrs:
            break
        time.sleep(0.5)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    out = _run(spec, tmp_path, cluster, "--parallel", "1")
    trials = _study(tmp_path, "killed").get_trials()
    assert trials[0].state == TrialState.FAIL, out
    retried = [t for t in trials if t.user_attrs.get("retry_of") == 0]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert retried[0].params == trials[0].params
    assert retried[0].user_attrs["sweep"] == trials[0].user_attrs["sweep"]  # continued, not rerun
    assert len(_study(tmp_path, "killed").get_trials(states=(TrialState.COMPLETE,))) == 2


def test_cli_errors_are_one_line(tmp_path):
    spec = _tiny(tmp_path)
    for args, says in [(["--storage", "postgresql://127.0.0.1:1/db"], "cannot open it"),
                       (["--best", "--storage", f"sqlite:///{tmp_path}/none.db"], "has no study 'tiny'"),
                       (["--best", "--report"], "separate steps")]:
        done = subprocess.run([BIN / "ntpt", "tune", str(spec), *args], env=ENV, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 1 and says in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(spec.read_text().replace("batch_size = {", "batchsize = {"))
    done = subprocess.run([BIN / "ntpt", "tune", str(bad)], env=ENV, capture_output=True, text=True)
    assert done.returncode == 1 and "unknown parameter 'batchsize'" in done.stderr, done.stderr


def test_a_report_on_a_missing_study_creates_no_storage(tmp_path):
    from typer.testing import CliRunner

    from ntpt_ray.cli import app

    spec = _tiny(tmp_path)
    for url, file in [(f"sqlite:///{tmp_path}/db/tune.db", tmp_path / "db" / "tune.db"),
                      (f"journal:{tmp_path}/journal/tune.log", tmp_path / "journal" / "tune.log")]:
        for step in ("--report", "--best", "--compare"):
            extra = ["4"] if step == "--compare" else []
            result = CliRunner().invoke(app, ["tune", str(spec), step, *extra, "--storage", url])
            assert result.exit_code == 1 and result.stderr == (
                f"error: storage '{url}' has no study 'tiny' (no file {file}); run `ntpt tune SPEC` first\n")
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.toml"]
