"""`ntpt plot` draws what runs, stored programs and sweeps saved; `ntpt evaluate` shows progress."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ntpt_ray.cli import app
from ntpt_ray.cli.plots import _net_accuracy
from ntpt_ray.library import NeuralLibrary
from ntpt_ray.plots import plot_sweep, run_curves, sweep_history
from ntpt_ray.problems import problem
from ntpt_ray.program import LearnedProgram
from ntpt_ray.store import ProgramRecord, ProgramStore, program_id
from ntpt_ray.train.run import save_program

# The paper's MATH loop (as in test_store); unlisted Params are 0.
MATH = {"instr": [0, 0, 1], "net_choice": [1, 0, 0], "arg_a": [0, 0, 0], "arg_b": [0, 0, 2],
        "arg_op": [0, 0, 1], "out_reg": [1, 2, 0], "goto": [1, 2, 0], "return_reg": 0}


def math_program(perceptual: bool = False) -> LearnedProgram:
    prob = problem("math", perceptual=perceptual)
    params = prob.compile().params
    values = {name: np.zeros(decl.shape, dtype=np.int64) for name, decl in params.items()}
    values.update({k: np.asarray(v) for k, v in MATH.items()})
    return LearnedProgram(prob, values)


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def restart(seed: int, verified: bool, perceptual: dict | None = None) -> dict:
    curve = [[400, 0.1], [800, 0.2 + 0.5 * verified], [1200, 0.3 + 0.6 * verified]]
    return {"seed": seed, "verified": verified, "val_curve": curve, "val_accuracy": 1.0 if verified else 0.5,
            "rank": seed, "perceptual_accuracy": perceptual or {}}


def write_run(folder: Path, perceptual: bool) -> Path:
    folder.mkdir(parents=True)
    results = [restart(0, False), restart(1, True, {"2": 0.9, "3": 0.8} if perceptual else None),
               restart(2, False)]
    (folder / "run.json").write_text(json.dumps({"task": "math", "perceptual": perceptual, "results": results}))
    if perceptual:
        program = math_program(perceptual=True)
        nets = program.problem.compile().nets
        save_program(folder, program, NeuralLibrary(nets, [0]).snapshot(0))  # untrained nets
    return folder


def record(sweep: str, k: int, seconds: float) -> ProgramRecord:
    return ProgramRecord(
        id=program_id(sweep, k), sweep=sweep, restart=k, seed=k, library_version=0,
        program=math_program().to_dict(), verification={"test_accuracy": {"2": 1.0}},
        val_curve=[(400, 0.2), (800, 0.6)], spec={}, started_at="2026-01-01T00:00:00Z",
        found_at=f"2026-01-01T00:00:{k:02d}Z", seconds_into_sweep=seconds)


@pytest.fixture
def sweep_store(tmp_path) -> Path:
    """A store with two programs of sweep ``math-t`` and its state: 5 of 8 restarts done in 30 s
    on two actors (restart 5 was still running)."""
    store = tmp_path / "store"
    for k, seconds in ((3, 12.5), (1, 20.0)):
        assert ProgramStore(store).add(record("math-t", k, seconds))
    folder = store / "sweeps" / "math-t"
    folder.mkdir(parents=True)
    libraries = [{"version": 0, "source": "fresh", "score": 0.0, "file": ""},
                 {"version": 1, "source": program_id("math-t", 3), "score": 0.7, "file": "library-v1.pt"}]
    (folder / "state.json").write_text(json.dumps({
        "sweep": "math-t", "spec": {"name": "math", "restarts": {"total": 8}},
        "outcomes": {"0": "failed", "1": "verified", "2": "failed", "3": "verified", "4": "failed"},
        "libraries": libraries, "seconds": 30.0, "sessions": 1,
        "times": {str(k): {"started": start, "finished": end, "actor": f"pid {11 + k % 2}", "session": 1}
                  for k, (start, end) in enumerate([(0, 6), (0, 20), (6, 12), (0.5, 13), (12, 28),
                                                    (13, None)])}}))
    return store


def test_a_run_gets_every_restart_curve_and_for_perceptual_runs_its_nets(tmp_path):
    runner = CliRunner()
    symbolic = write_run(tmp_path / "runs" / "math-1", perceptual=False)
    done = runner.invoke(app, ["plot", str(symbolic), "--out", str(tmp_path / "a.png")])
    assert done.exit_code == 0, done.output
    assert done.output == f"wrote {tmp_path / 'a.png'}\n"
    curves = run_curves(symbolic)
    assert [c.verified for c in curves.curves] == [False, True, False]
    assert curves.title == "math (symbolic): 1 of 3 restarts verified" and not curves.program_accuracy
    perceptual = write_run(tmp_path / "runs" / "math-2", perceptual=True)
    assert run_curves(perceptual).program_accuracy == {"2": 0.9, "3": 0.8}  # the winner's, its own nets
    assert set(_net_accuracy(perceptual, None)) == {"net_0", "net_1"}  # on MNIST and the operators
    done = runner.invoke(app, ["plot", str(perceptual), "--out", str(tmp_path / "b.png")])
    assert done.exit_code == 0, done.output
    width, _ = png_size(tmp_path / "b.png")
    assert width > png_size(tmp_path / "a.png")[0]  # a second panel: accuracy with the nets


def test_a_stored_program_and_a_sweep_by_id_with_default_file_names(sweep_store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    one = runner.invoke(app, ["plot", "math-t-r00003", "--store", str(sweep_store)])
    assert one.exit_code == 0, one.output
    assert png_size(tmp_path / "runs" / "plots" / "math-t-r00003.png")
    sweep = runner.invoke(app, ["plot", "math-t", "--store", str(sweep_store)])
    assert sweep.exit_code == 0, sweep.output
    assert sweep.output == "wrote runs/plots/math-t.png\n"
    history = sweep_history(sweep_store / "sweeps" / "math-t")
    assert (history.done, history.total, history.found) == (5, 8, [12.5, 20.0])
    assert history.libraries == [(12.5, 1, 0.7)]
    assert [c.label for c in history.curves] == ["restart 3", "restart 1"]
    assert (history.finished, history.actors) == ([6, 12, 13, 20, 28], 2)
    assert history.restarts_per_minute(bins=3) == ([5.0, 15.0, 25.0], [6.0, 12.0, 12.0])  # per 10 s
    out = plot_sweep(sweep_store / "sweeps" / "math-t", tmp_path / "sweep.png")  # the --plot hook
    assert out == tmp_path / "sweep.png" and png_size(out)


def test_what_cannot_be_drawn_is_one_line(tmp_path):
    runner = CliRunner()
    (tmp_path / "empty").mkdir()
    empty = runner.invoke(app, ["plot", str(tmp_path / "empty")])
    assert empty.exit_code == 1
    assert empty.stderr == (f"error: {tmp_path / 'empty'}: not a run directory (run.json), a stored "
                            "program (record.json) or a sweep (state.json)\n")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "run.json").write_text("{")
    broken = runner.invoke(app, ["plot", str(bad)])
    assert broken.exit_code == 1 and "run.json: not valid JSON" in broken.stderr
    unknown = runner.invoke(app, ["plot", "nosuch", "--store", str(tmp_path / "store")])
    assert unknown.exit_code == 1 and "no program 'nosuch'" in unknown.stderr


def test_evaluate_shows_its_progress_over_the_lengths(tmp_path):
    run_dir = tmp_path / "run"
    save_program(run_dir, math_program(), None)
    scored = CliRunner().invoke(app, ["evaluate", str(run_dir), "--lengths", "2,4,8", "--examples", "20"])
    assert scored.exit_code == 0, scored.output
    assert "math: evaluating  3/3" in scored.output and scored.output.count("1.0000") == 3
