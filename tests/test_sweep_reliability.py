"""Sweeps that cannot be fooled: placement-free results, one driver per sweep, honest resumes,
bad state files, actor errors in one line, and an embedded Ray on loopback only."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ntpt_ray.cli import app
from ntpt_ray.jsonfile import BadFile
from ntpt_ray.store import ProgramStore
from ntpt_ray.sweep import SweepError, parse_spec
from ntpt_ray.sweep.state import LOCK, SweepDirectory
from ntpt_ray.sweep.worker import Assignment, LibraryVersion, RestartFailed, RestartWorker

BIN = Path(sys.executable).parent
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0",
       "COLUMNS": "200"}
ENV.pop("NTPT_STORE", None)
SMALL = {"name": "rel", "problem": {"task": "add2x2:top"},
         "restarts": {"total": 4, "per_actor": 3},
         "train": {"steps": 100}, "convergence": {"val_every": 50, "val_size": 40},
         "verify": {"beam": 64, "test_size": 40}, "stop": {"policy": "all"}}


def _toml(data: dict) -> str:
    """``data`` (two levels: tables of scalars and lists) as TOML."""
    def value(v):
        return json.dumps(v) if not isinstance(v, bool) else str(v).lower()

    lines = [f"{k} = {value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for section, fields in data.items():
        if isinstance(fields, dict):
            lines += [f"[{section}]", *(f"{k} = {value(v)}" for k, v in fields.items())]
    return "\n".join(lines) + "\n"


def _spec_file(tmp_path: Path, **changes) -> Path:
    data = {**SMALL, **changes}
    path = tmp_path / f"{data['name']}.toml"
    path.write_text(_toml(data))
    return path


def _sweep_dir(store: Path, spec_file: Path) -> Path:
    import tomllib

    return store / "sweeps" / parse_spec(tomllib.loads(spec_file.read_text())).sweep_id


def _cli(*args: str):
    return CliRunner().invoke(app, ["sweep", *map(str, args)])


# ---- a restart's results do not depend on where it runs

def test_a_restart_finds_the_same_program_whatever_its_slot_neighbours_and_start():
    spec = parse_spec(SMALL)
    v0 = LibraryVersion(0, {})
    alone = RestartWorker(spec)
    alone.advance(start=[Assignment(7, 1007, 0)], library=v0)
    assert alone.slot_of[7] == 0
    replies = [alone.advance()]  # its budget spent: verified in this call ([convergence] at_end)
    crowded = RestartWorker(spec)  # restart 7 starts a period late, in slot 2, beside two others
    crowded.advance(start=[Assignment(1, 1001, 0), Assignment(2, 1002, 0)], library=v0)
    crowded.advance(start=[Assignment(7, 1007, 0)])
    assert crowded.slot_of[7] == 2
    replies.append(crowded.advance())
    first, second = (next(c for c in reply.checked if c.restart == 7) for reply in replies)
    assert first.val_curve == second.val_curve and len(first.val_curve) == 2
    assert first.program["values"] == second.program["values"]
    assert first.verification == second.verification


def test_restarts_drawing_batches_of_different_sizes_in_one_step_still_train_as_alone(tmp_path):
    """A data file with two train batches, of 12 and 6 examples: with batch_size 10 a step's
    batches come in two sizes, each run apart; restart 3 trains as it does alone."""
    from test_tasks import REVERSE

    from ntpt_ray.problems import file_problem
    from ntpt_ray.train.restarts import RestartBatch, TrainConfig

    (tmp_path / "m.py").write_text(REVERSE)
    rows = torch.randint(0, 4, (18, 3), generator=torch.Generator().manual_seed(0)).tolist()
    batches = [{"batch_name": name, "hypers": "n3", "instances": [{"xs": r, "ys": r[::-1]} for r in part]}
               for name, part in (("train", rows[:12]), ("more", rows[12:]))]
    (tmp_path / "d.json").write_text(json.dumps(batches))
    (tmp_path / "h.json").write_text(json.dumps({"n3": {"N": 3}}))
    prob = file_problem(tmp_path / "m.py", tmp_path / "d.json", tmp_path / "h.json",
                        train_batches=["train", "more"], check_batches=[])
    config = TrainConfig(steps=8, batch_size=10, val_size=8, test_size=8)
    together, alone = RestartBatch(prob, [1, 2, 3, 4], config), RestartBatch(prob, [3], config)
    mixed = 0
    for _ in range(8):
        upcoming = pickle.loads(pickle.dumps(together.streams))  # copies: what this step draws
        mixed += len({len(prob.train_examples(10, stream)) for stream in upcoming}) == 2
        together.step()
        alone.step()
    assert mixed >= 1
    for name, logits in alone.params.logits.items():
        assert torch.equal(together.params.logits[name][2], logits[0])


# ---- the saved state: state.json and its journal

def test_a_save_appends_what_changed_and_a_whole_save_starts_a_new_generation(tmp_path):
    from ntpt_ray.sweep.state import JOURNAL, STATE, read_state

    directory = SweepDirectory(tmp_path, parse_spec(SMALL))
    state = directory.create({}, "fresh")  # a whole save: generation 1
    whole = (directory.path / STATE).read_bytes()
    for r in range(3):
        state.restart_started(r, 1.0 + r, "pid 7")
    state.outcomes[0] = "failed"
    state.restart_finished(0, 4.0)
    state.seconds = 5.0
    directory.save(state, {0, 1, 2})
    state.outcomes[1] = "verified"
    state.restart_finished(1, 6.0)
    state.seconds = 7.0
    directory.save(state, {1})
    assert (directory.path / STATE).read_bytes() == whole  # untouched: two lines in the journal
    assert len((directory.path / JOURNAL).read_bytes().splitlines()) == 2
    loaded = SweepDirectory(tmp_path, parse_spec(SMALL)).load()
    assert loaded == state
    # a line a crash cut short is left out; a line of an older generation (a crash between
    # rewriting state.json and emptying the journal) is stale
    with open(directory.path / JOURNAL, "ab") as f:
        f.write(b'{"generation": 1, "seconds": 9.0, "outcomes": {"2": "fai')
    assert read_state(directory.path)["seconds"] == 7.0
    directory.save(state)  # whole: generation 2, journal emptied
    assert state.generation == 2 and (directory.path / JOURNAL).read_bytes() == b""
    (directory.path / JOURNAL).write_bytes(b'{"generation": 1, "seconds": 9.0, "outcomes": {"2": "failed"}, '
                                           b'"times": {}}\n')
    assert SweepDirectory(tmp_path, parse_spec(SMALL)).load() == state
    (directory.path / JOURNAL).write_bytes(b"[1]\n")
    with pytest.raises(BadFile, match=rf"^{directory.path / JOURNAL}:1: not a sweep state journal line"):
        read_state(directory.path)
    (directory.path / JOURNAL).write_bytes(b'{"generation": 2, "seconds": 9.0, "outcomes": {"2": "maybe"}, '
                                           b'"times": {}}\n')
    with pytest.raises(BadFile, match=rf"^{directory.path / JOURNAL}:1: .*an outcome other than 'verified'"):
        read_state(directory.path)


def test_the_journal_is_folded_into_state_json_once_it_outgrows_it(tmp_path):
    from ntpt_ray.sweep.state import JOURNAL, STATE

    directory = SweepDirectory(tmp_path, parse_spec(SMALL))
    directory.journal_floor = 0  # at the size of state.json alone
    state = directory.create({}, "fresh")
    saves = 0
    while state.generation == 1:
        state.outcomes[saves] = "failed"
        state.restart_started(saves, 0.0, "pid 7")
        directory.save(state, {saves})
        saves += 1
    # the journal had outgrown state.json at the last save: rewritten whole, journal empty
    assert 2 < saves < 50 and (directory.path / JOURNAL).read_bytes() == b""
    assert SweepDirectory(tmp_path, parse_spec(SMALL)).load() == state
    assert len(json.loads((directory.path / STATE).read_text())["outcomes"]) == saves


def test_background_saves_keep_their_order_and_raise_a_failed_write(tmp_path):
    from ntpt_ray.sweep.state import JOURNAL, read_state

    directory = SweepDirectory(tmp_path, parse_spec(SMALL))
    state = directory.create({}, "fresh")
    with directory.background_journal():
        for r in range(50):
            state.outcomes[r] = "failed"
            state.seconds = float(r)
            directory.save(state, {r})
        directory.save(state)  # a rewrite, after the lines before it, which it makes stale
        assert state.generation == 2
        state.outcomes[50] = "verified"
        state.seconds = 50.0
        directory.save(state, {50})
    assert len((directory.path / JOURNAL).read_bytes().splitlines()) == 1  # durable at the end
    assert json.loads((directory.path / "state.json").read_text())["generation"] == 2
    assert SweepDirectory(tmp_path, parse_spec(SMALL)).load() == state
    assert read_state(directory.path)["seconds"] == 50.0
    (directory.path / JOURNAL).unlink()
    (directory.path / JOURNAL).mkdir()  # appends to it fail
    with pytest.raises(IsADirectoryError):
        with directory.background_journal():
            state.outcomes[51] = "failed"
            directory.save(state, {51})


# ---- one driver per sweep

def test_the_driver_lock_names_its_holder_and_a_dead_drivers_lock_is_taken_over(tmp_path):
    directory = SweepDirectory(tmp_path, parse_spec(SMALL))
    directory.path.mkdir(parents=True)
    lock = directory.path / LOCK
    lock.write_text("driver pid 999999 on a-dead-host\n")  # left by a driver that died: not locked
    me = f"driver pid {os.getpid()} on {socket.gethostname()}"
    with directory.lock():
        assert lock.read_text() == me + "\n"
        with pytest.raises(SweepError) as busy, directory.lock():
            pass
        assert str(busy.value) == (f"sweep {directory.spec.sweep_id} is running already: {me} holds "
                                   f"{lock}; wait for it to end, or stop it and --resume")
    assert lock.read_text() == ""
    with directory.lock():  # released
        pass


@pytest.mark.slow
def test_a_second_driver_on_a_running_sweep_gets_one_line_naming_the_first(tmp_path):
    spec, store = _spec_file(tmp_path, name="two-drivers"), tmp_path / "store"
    lock = _sweep_dir(store, spec) / LOCK
    first = subprocess.Popen([BIN / "ntpt", "sweep", spec, "--store", store], env=ENV, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        holder = f"driver pid {first.pid} on {socket.gethostname()}"
        deadline = time.time() + 120
        while not (lock.exists() and lock.read_text().strip() == holder):
            assert first.poll() is None and time.time() < deadline, "the first driver took no lock"
            time.sleep(0.2)
        for args in ([], ["--resume"]):
            began = time.perf_counter()
            second = subprocess.run([BIN / "ntpt", "sweep", spec, "--store", store, *args], env=ENV,
                                    capture_output=True, text=True, timeout=120, check=False)
            assert second.returncode == 1, second.stdout + second.stderr
            errors = [line for line in second.stderr.splitlines() if line.startswith("error:")]
            assert errors == [(f"error: sweep {lock.parent.name} is running already: {holder} holds {lock}; "
                               "wait for it to end, or stop it and --resume")], second.stderr
            assert time.perf_counter() - began < 60  # refused before any Ray starts
        assert first.poll() is None  # the first one runs on
    finally:
        _kill_session(first.pid)  # the driver and its embedded Ray: no clean-up
        first.wait(timeout=60)
    with SweepDirectory(store, parse_spec({**SMALL, "name": "two-drivers"})).lock():  # taken over
        assert lock.read_text().startswith(f"driver pid {os.getpid()} ")


def _kill_session(sid: int) -> None:
    """SIGKILL every process of session ``sid`` (a process started with ``start_new_session``
    and all it started: Ray's workers leave its process group, not its session)."""
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[3]) == sid:
                os.kill(int(entry.name), signal.SIGKILL)


# ---- resumes and saved state, checked before Ray starts

def _write_state(sweep: Path, **fields) -> Path:
    sweep.mkdir(parents=True, exist_ok=True)
    state = {"sweep": sweep.name, "spec": {"name": "rel"}, "outcomes": {}, "libraries":
             [{"version": 0, "source": "fresh", "score": 0.0, "file": ""}], "seconds": 1.0,
             "sessions": 1, **fields}
    (sweep / "state.json").write_text(json.dumps(state))
    return sweep / "state.json"


def test_a_resume_whose_total_drops_restarts_with_outcomes_is_refused(tmp_path):
    store = tmp_path / "store"
    spec = _spec_file(tmp_path, restarts={"total": 9, "per_actor": 3})
    outcomes = {str(r): "failed" for r in (0, 1, 9, 10, 11, 12, 13, 14, 15)}  # 9 outcomes, 7 of total 16
    _write_state(_sweep_dir(store, spec), outcomes=outcomes)
    result = _cli(spec, "--store", store, "--resume")
    assert result.exit_code == 1
    assert result.stderr == (f"error: sweep {_sweep_dir(store, spec).name} has the outcome of restart 15, "
                             "beyond [restarts] total = 9 (restarts 0..8): resume with total >= 16\n")


@pytest.mark.parametrize("text, fields, says", [
    ('{"sweep": "x", "outcomes": {', {}, "not valid JSON: Expecting property name enclosed in double quotes"),
    ("{}", {}, "missing 'sweep', 'spec', 'outcomes', 'libraries', 'seconds', 'sessions'"),
    ("[]", {}, "expected a JSON object {...}, found an array"),
    (None, {"outcomes": {"0": "won"}}, "not a sweep state: an outcome other than 'verified' or 'failed'"),
    (None, {"libraries": [{"path": "x"}]},
     "not a sweep state: LibraryRecord.__init__() got an unexpected keyword argument 'path'"),
], ids=["truncated", "empty object", "array", "bad outcome", "bad library"])
def test_a_bad_state_file_gets_one_line_naming_it(tmp_path, text, fields, says):
    store = tmp_path / "store"
    spec = _spec_file(tmp_path)
    state = _write_state(_sweep_dir(store, spec), **fields)
    if text is not None:
        state.write_text(text)
    for args in (["--resume"], []):
        result = _cli(spec, "--store", store, *args)
        assert result.exit_code == 1
        assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"error: {state}: {says}"), \
            result.stderr


# ---- an actor's error: one line, the traceback in the sweep's errors.log

def test_restart_failed_survives_pickling_and_reads_as_one_line():
    failed = pickle.loads(pickle.dumps(RestartFailed([3], "ValueError: bad nets")))
    assert failed.restarts == [3] and str(failed) == "restart 3 failed on an actor: ValueError: bad nets"
    assert str(RestartFailed([1, 2], "E: x")) == "restarts 1, 2 failed on an actor: E: x"


@pytest.mark.slow
def test_an_exception_in_an_actor_is_one_line_naming_the_restart_and_its_log(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"net_0": {"w0": torch.ones(2, 2), "b0": torch.ones(1, 2)}}, bad)  # the wrong shape
    spec = _spec_file(tmp_path, name="actor-error", problem={"task": "add2x2:top", "perceptual": True},
                      restarts={"total": 2, "per_actor": 2, "actors": 1}, library={"start": str(bad)})
    store = tmp_path / "store"
    done = subprocess.run([BIN / "ntpt", "sweep", spec, "--store", store], env=ENV, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    log = _sweep_dir(store, spec) / "errors.log"
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and done.stderr.strip().endswith(errors[0]), done.stderr
    assert re.fullmatch(r"error: restart [01] failed on an actor: ValueError: library net 'net_0' layer 0: "
                        rf"snapshot shape \(2, 2\) != \(\d+, \d+\) \(traceback in {re.escape(str(log))}; "
                        r"state is saved: fix it and --resume\)", errors[0]), errors[0]
    text = log.read_text()
    assert "in reset" in text and "raise ValueError(" in text and "\x1b[" not in text  # the actor's traceback
    state = json.loads((log.parent / "state.json").read_text())
    assert state["sessions"] == 1 and state["seconds"] > 0


# ---- on an embedded Ray (started here, in this process)

@pytest.fixture(scope="module")
def embedded_ray():
    import ray

    from ntpt_ray.sweep.coordinator import connect

    connect()
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_restarts_give_the_same_programs_on_one_actor_and_on_two(embedded_ray, tmp_path):
    from ntpt_ray.sweep import run_sweep

    spec = parse_spec(SMALL)
    found = {}
    for actors in (1, 2):
        result = run_sweep(spec, store=tmp_path / str(actors), actors=actors)
        assert result.done == 4 and result.stopped_by == "all restarts done"
        state = json.loads((tmp_path / str(actors) / "sweeps" / spec.sweep_id / "state.json").read_text())
        records = ProgramStore(tmp_path / str(actors)).list(spec.sweep_id)
        times = state["times"]  # when each restart ran, and where: for restarts/min over time
        assert sorted(times) == ["0", "1", "2", "3"]
        assert all(0 <= t["started"] <= t["finished"] <= state["seconds"] and t["session"] == 1
                   for t in times.values()), times
        assert 1 <= len({t["actor"] for t in times.values()}) <= actors
        found[actors] = (state["outcomes"], {r.restart: (r.program["values"], r.val_curve) for r in records})
    assert found[1] == found[2] and found[1][1], found


def _descendants(root: int) -> set[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    found = {root}
    while grown := {pid for pid, parent in parents.items() if parent in found} - found:
        found |= grown
    return found


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_the_embedded_ray_listens_on_loopback_only(embedded_ray):
    @embedded_ray.remote(num_cpus=1)
    class Probe:
        def pid(self) -> int:
            return os.getpid()

    probe = Probe.remote()
    ours = _descendants(os.getpid()) | {embedded_ray.get(probe.pid.remote())}
    listening = []
    for line in subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout.splitlines():
        if {int(pid) for pid in re.findall(r"pid=(\d+)", line)} & ours:
            listening.append(line.split()[3])
    embedded_ray.kill(probe)
    assert len(listening) >= 4, listening  # gcs, raylet (2), this driver, the actor...
    assert all(re.fullmatch(r"(127\.0\.0\.1|\[::ffff:127\.0\.0\.1\]):\d+", a) for a in listening), listening
