"""Sweeps on real Ray: an embedded local Ray, and a `ray start --head` cluster on loopback that
the tests start and stop themselves; actors and drivers are killed for real."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import pytest

from ntpt_ray.store import ProgramStore
from ntpt_ray.sweep import parse_spec

BIN = Path(sys.executable).parent
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1",
       # "0": Ray keeps 127.0.0.1 as the node address and binds loopback only (one node only)
       "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1" if os.environ.get("NTPT_TEST_MULTINODE") == "1" else "0",
       "RAY_USAGE_STATS_ENABLED": "0", "COLUMNS": "200"}
ENV.pop("NTPT_STORE", None)
SMALL_MATH = """
name = "{name}"
[problem]
task = "math"
[restarts]
total = {total}
per_actor = 2
actors = 2
seed = {seed}
[train]
steps = 300
[convergence]
val_every = 25
val_size = 40
[verify]
beam = 256
test_size = 40
[stop]
policy = "{policy}"
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes_of(temp: str) -> list[int]:
    """Pids of the Ray processes whose command line names ``temp``, and their descendants."""
    parents, found = {}, set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if temp in cmdline:
            found.add(int(entry.name))
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in found} - found
        found |= children
        grew = bool(children)
    return sorted(found - {os.getpid()})


@pytest.fixture(scope="module")
def cluster():
    """A one-node Ray cluster with 2 CPUs, bound to 127.0.0.1; killed (only it) afterwards."""
    address, temp = _start_head(2)
    yield address, temp
    _stop(temp)


def _start_head(cpus: int) -> tuple[str, str]:
    temp = tempfile.mkdtemp(prefix="ntpt-ray-", dir="/tmp")  # short: Ray's socket paths are long
    address = f"127.0.0.1:{_free_port()}"
    subprocess.run([BIN / "ray", "start", "--head", "--node-ip-address=127.0.0.1",
                    f"--port={address.split(':')[1]}", f"--num-cpus={cpus}",
                    "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats"],
                   env=ENV, check=True, timeout=180, capture_output=True)
    return address, temp


def _stop(temp: str) -> None:
    """Kill the cluster whose session lives in ``temp`` (no other Ray) and remove its files."""
    for pid in _processes_of(temp):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def two_nodes():
    """A head and a worker node, one CPU each; the worker node runs in its own process group
    (``ray start --block``) so that a test can kill the whole node.

    Ray 2.60 refuses a multi-node cluster confined to loopback (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
    is single-node only) and otherwise listens on the machine's address, so this runs only when
    asked for with NTPT_TEST_MULTINODE=1."""
    if os.environ.get("NTPT_TEST_MULTINODE") != "1":
        pytest.skip("multi-node Ray cannot be confined to loopback: set NTPT_TEST_MULTINODE=1")
    address, temp = _start_head(1)
    node = subprocess.Popen([BIN / "ray", "start", f"--address={address}", "--node-ip-address=127.0.0.1",
                             "--num-cpus=1", "--block", "--disable-usage-stats"], env=ENV,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while "0.0/2.0 CPU" not in subprocess.run([BIN / "ray", "status", f"--address={address}"], env=ENV,
                                              capture_output=True, text=True, timeout=60).stdout:
        assert time.time() < deadline and node.poll() is None, "the worker node did not join"
        time.sleep(1)
    yield address, temp, node
    with contextlib.suppress(ProcessLookupError):
        os.killpg(node.pid, signal.SIGKILL)
    _stop(temp)


def _spec(tmp_path: Path, **fields) -> Path:
    path = tmp_path / f"{fields['name']}.toml"
    path.write_text(SMALL_MATH.format(**fields))
    return path


def _sweep(spec: Path, store: Path, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([BIN / "ntpt", "sweep", str(spec), "--store", str(store), *args],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **popen)


def _state(store: Path, spec: Path) -> dict:
    from ntpt_ray.sweep.state import read_state  # state.json and its journal

    folder = store / "sweeps" / parse_spec(tomllib.loads(spec.read_text())).sweep_id
    return read_state(folder) if (folder / "state.json").exists() else {"outcomes": {}}


def _wait_for_outcomes(process: subprocess.Popen, store: Path, spec: Path, n: int,
                       timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while len(_state(store, spec)["outcomes"]) < n:
        assert process.poll() is None, process.stdout.read()
        assert time.time() < deadline, f"fewer than {n} restarts finished in {timeout} s"
        time.sleep(0.5)


def _actor_pids(temp: str) -> list[int]:
    pids = []
    for pid in _processes_of(temp):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::RestartWorker"):
                pids.append(pid)
        except OSError:
            pass
    return pids


def _check_store(store: Path, spec: Path, state: dict) -> list[str]:
    """Every verified outcome has exactly one stored program, and nothing else is stored."""
    sweep = parse_spec(tomllib.loads(spec.read_text())).sweep_id
    ids = [r.id for r in ProgramStore(store).list(sweep)]
    verified = sorted(int(r) for r, o in state["outcomes"].items() if o == "verified")
    assert len(ids) == len(set(ids))
    assert sorted(int(i.rsplit("-r", 1)[1]) for i in ids) == verified
    return ids


def _finishes_every_restart(sweep: subprocess.Popen, store: Path, spec: Path,
                            restarts: int) -> tuple[int, int]:
    """Wait for the sweep; check it exits 0 with every restart finished and its verified
    programs stored once each; return (actors lost, restarts re-run) from its summary."""
    out, _ = sweep.communicate(timeout=400)
    assert sweep.returncode == 0, out
    state = _state(store, spec)
    assert sorted(map(int, state["outcomes"])) == list(range(restarts)), out
    _check_store(store, spec, state)
    found = re.search(r"actors lost / restarts re-run\W+(\d+) / (\d+)", out)
    assert found, out
    return int(found.group(1)), int(found.group(2))


def _left_to_right(text: str) -> int:
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "x": lambda a, b: a * b,
           "/": lambda a, b: 18 if b == 0 else a // b}
    value = int(text[0])
    for op, digit in zip(text[1::2], text[2::2], strict=True):
        value = ops[op](value, int(digit)) % 19
    return value


@pytest.mark.slow
def test_math_onehot_sweep_on_embedded_ray_stores_a_program_that_runs(tmp_path):
    store = tmp_path / "store"
    spec = Path(__file__).resolve().parents[1] / "search" / "math_onehot.toml"
    done = subprocess.run([BIN / "ntpt", "sweep", str(spec), "--store", str(store), "--plot"], env=ENV,
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "stopped by first verified program" in done.stdout
    plot = Path(tmp_path, re.search(r"wrote (\S+\.png)", done.stdout).group(1))
    assert plot.stat().st_size > 10_000
    first = re.search(r"first program stored this session: (\S+)", done.stdout).group(1)
    shown = subprocess.run([BIN / "ntpt", "programs", "show", first, "--store", str(store)],
                           env=ENV, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "block_0:" in shown.stdout and "APPLY" in shown.stdout
    expression = "7+3x9-4/2+8x6-1+5/0x3-9+2x4-6+1"  # 16 digits, a division by zero among them
    run = subprocess.run([BIN / "ntpt", "run", first, "--input", expression, "--store", str(store)],
                         env=ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    row = next(line for line in run.stdout.splitlines() if "7+3" in line.replace(" ", ""))
    cells = [cell.strip() for cell in row.split("│") if cell.strip()]
    assert cells[1:] == [str(_left_to_right(expression))] * 2 + ["yes"], row


@pytest.mark.slow
def test_killing_an_actor_reruns_its_restarts_and_loses_nothing(cluster, tmp_path):
    address, temp = cluster
    spec, store = _spec(tmp_path, name="kill-actor", total=8, seed=1, policy="all"), tmp_path / "s"
    sweep = _sweep(spec, store, "--address", address)
    _wait_for_outcomes(sweep, store, spec, 1)
    victims = _actor_pids(temp)
    assert len(victims) == 2, victims
    os.kill(victims[0], signal.SIGKILL)
    lost, rerun = _finishes_every_restart(sweep, store, spec, 8)
    assert lost == 1 and rerun >= 1


@pytest.mark.slow
def test_a_killed_driver_resumes_without_losing_or_duplicating(cluster, tmp_path):
    address, _ = cluster
    spec, store = _spec(tmp_path, name="kill-driver", total=8, seed=2, policy="all"), tmp_path / "s"
    sweep = _sweep(spec, store, "--address", address)
    _wait_for_outcomes(sweep, store, spec, 2)
    sweep.kill()  # SIGKILL: no cleanup, no final state write
    sweep.communicate(timeout=60)
    killed = _state(store, spec)
    assert killed["sessions"] == 1 and killed["seconds"] > 0  # saved as it ran
    before = killed["outcomes"]
    stored_before = _check_store(store, spec, _state(store, spec))
    again = subprocess.run([BIN / "ntpt", "sweep", str(spec), "--store", str(store), "--address",
                            address], env=ENV, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "pass --resume to continue it" in again.stderr
    resumed = _sweep(spec, store, "--address", address, "--resume")
    out, _ = resumed.communicate(timeout=400)
    assert resumed.returncode == 0, out
    state = _state(store, spec)
    assert sorted(map(int, state["outcomes"])) == list(range(8))
    assert {r: state["outcomes"][r] for r in before} == before
    assert re.search(rf"restarts done\W+8/8 \({8 - len(before)} this session\)", out), out
    assert set(stored_before) <= set(_check_store(store, spec, state))


@pytest.mark.slow
def test_losing_a_worker_node_finishes_on_the_head(two_nodes, tmp_path):
    address, _, node = two_nodes
    spec, store = _spec(tmp_path, name="kill-node", total=8, seed=3, policy="all"), tmp_path / "s"
    sweep = _sweep(spec, store, "--address", address)
    _wait_for_outcomes(sweep, store, spec, 1)
    os.killpg(node.pid, signal.SIGKILL)  # the node's raylet and the actor on it
    lost, rerun = _finishes_every_restart(sweep, store, spec, 8)
    assert lost >= 1 and rerun >= 1


@pytest.mark.slow
def test_a_perceptual_sweep_shares_better_libraries_with_later_restarts(tmp_path):
    """ADD2X2 on MNIST: each verified restart whose net_0 beats the current library becomes a
    new library version, later restarts start from it, and each record names its version."""
    spec, store = tmp_path / "share.toml", tmp_path / "store"
    spec.write_text('name = "share"\n[problem]\ntask = "add2x2:top"\nperceptual = true\n'
                    "[restarts]\ntotal = 8\nper_actor = 2\nactors = 2\n[train]\nsteps = 400\n"
                    "[convergence]\nval_every = 50\nval_size = 50\njump = 0.1\nmin_accuracy = 0.3\n"
                    '[verify]\nbeam = 64\ntest_size = 50\n[stop]\npolicy = "programs"\nprograms = 6\n')
    done = subprocess.run([BIN / "ntpt", "sweep", str(spec), "--store", str(store)], env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    state = _state(store, spec)
    versions = state["libraries"]
    assert len(versions) >= 2 and versions[0]["source"] == "fresh"
    assert [v["score"] for v in versions] == sorted({v["score"] for v in versions})  # each better
    sweep = store / "sweeps" / state["sweep"]
    assert all((sweep / v["file"]).is_file() for v in versions[1:])
    records = {r.id: r for r in ProgramStore(store).list()}
    assert any(r.library_version >= 1 for r in records.values())
    for r in records.values():
        if r.library_version >= 1:  # it started after the program its library came from was found
            source = records[versions[r.library_version]["source"]]
            assert source.found_at <= r.started_at
            assert (store / "programs" / r.id / "library.pt").is_file()


@pytest.mark.slow
def test_a_user_task_sweeps_on_ray_stores_its_source_and_runs_after_its_files_are_gone(tmp_path):
    """The larger-digit example (a user's model and data files, perceptual) through a sweep on
    an embedded Ray, the store, export to another folder, and `ntpt run --json` from there."""
    import numpy as np

    repo = Path(__file__).resolve().parents[1]
    task_dir = tmp_path / "task"
    shutil.copytree(repo / "search" / "tasks" / "larger_digit", task_dir)
    made = subprocess.run([sys.executable, str(task_dir / "make_data.py"), str(task_dir), "--train", "240",
                           "--check", "80"], env=ENV, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    spec, store = task_dir / "larger.toml", tmp_path / "store"
    spec.write_text('name = "larger"\n[problem]\nmodel = "model.py"\ndata = "larger_digit.json"\n'
                    "[restarts]\ntotal = 4\nper_actor = 2\nactors = 2\n[train]\nsteps = 200\n"
                    '[convergence]\nval_every = 50\n[verify]\nbeam = 16\n[stop]\npolicy = "first"\n')
    done = subprocess.run([BIN / "ntpt", "sweep", str(spec), "--store", str(store)], env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    first = re.search(r"first program stored this session: (\S+)", done.stdout).group(1)
    exported = subprocess.run([BIN / "ntpt", "programs", "export", first, str(tmp_path / "copy"),
                               "--store", str(store)], env=ENV, capture_output=True, text=True, timeout=120)
    assert exported.returncode == 0, exported.stderr
    arrays = np.load(task_dir / "larger_digit.npz")
    images = arrays["check.digits"][:1] / 255.0
    shutil.rmtree(task_dir)
    shutil.rmtree(store)
    record = json.loads((tmp_path / "copy" / "record.json").read_text())
    assert record["program"]["data_fingerprint"] and "larger.set_to" in (tmp_path / "copy" / "model.py").read_text()
    run = subprocess.run([BIN / "ntpt", "run", str(tmp_path / "copy"), "--json",
                          json.dumps({"digits": images[0].tolist()})], env=ENV, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(answer) == {"larger"} and 0 <= answer["larger"] <= 9
    assert record["program"]["values"]["op"] == 0  # MAX
