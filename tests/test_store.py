"""The verified-program store: atomic adds, no duplicates, prefix look-up, export, and its CLI."""

from __future__ import annotations

import json
import multiprocessing
import re

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ntpt_ray.cli import app
from ntpt_ray.library import NeuralLibrary
from ntpt_ray.problems import problem
from ntpt_ray.program import LearnedProgram
from ntpt_ray.store import ProgramRecord, ProgramStore, UnknownProgram, default_store, program_id
from ntpt_ray.train.run import load_program

# The paper's MATH loop (as in test_models): read an operator into R1, a digit into R2,
# R0 = APPLY(R0, R2, R1); unlisted Params are 0.
MATH = {"instr": [0, 0, 1], "net_choice": [1, 0, 0], "arg_a": [0, 0, 0], "arg_b": [0, 0, 2],
        "arg_op": [0, 0, 1], "out_reg": [1, 2, 0], "goto": [1, 2, 0], "return_reg": 0}
WRONG_MATH = {**MATH, "return_reg": 2}  # returns the last digit read

EXPRESSION = "7+8x9-3/0+5x6-2/4+9x1-0/3+8x7-6"  # 16 digits, a division by zero among them
ROW = r"│\s*(\d+)\s*│\s*(\d+)\s*│\s*(yes|NO)\s*│"  # input │ program │ answer │ agree


def math_program(values: dict, perceptual: bool = False) -> LearnedProgram:
    prob = problem("math", perceptual=perceptual)
    params = prob.compile().params
    full = {name: np.zeros(decl.shape, dtype=np.int64) for name, decl in params.items()}
    full.update({k: np.asarray(v) for k, v in values.items() if k in params})
    return LearnedProgram(prob, full)


def make_record(sweep: str = "math-t", restart: int = 3, values: dict = MATH,
                found_at: str = "2026-01-01T00:00:10Z", perceptual: bool = False) -> ProgramRecord:
    return ProgramRecord(
        id=program_id(sweep, restart), sweep=sweep, restart=restart, seed=1000 + restart,
        library_version=2, program=math_program(values, perceptual).to_dict(),
        verification={"test_accuracy": {"2": 1.0, "3": 1.0, "16": 1.0}, "perceptual_accuracy": {},
                      "val_accuracy": 1.0, "rank": 4, "argmax_verified": False},
        val_curve=[(512, 0.25), (1024, 0.5), (1536, 1.0)], spec={"task": "math", "restarts": 8},
        started_at="2026-01-01T00:00:00Z", found_at=found_at, seconds_into_sweep=10.5)


def left_to_right(expression: str) -> int:
    """Independent reference: integers mod 19, x / 0 = 18, no precedence."""
    value = int(expression[0])
    for op, digit in zip(expression[1::2], expression[2::2]):
        d = int(digit)
        if op == "+":
            value = (value + d) % 19
        elif op == "-":
            value = (value - d) % 19
        elif op == "x":
            value = (value * d) % 19
        else:
            value = 18 if d == 0 else value // d
    return value


def test_add_then_get_round_trips_record_program_and_library(tmp_path):
    store = ProgramStore(tmp_path / "store")
    library = {"net_0": {"w0": torch.randn(4, 3), "b0": torch.randn(1, 3)}}
    record = make_record()
    assert len(store) == 0 and record.id not in store
    assert store.add(record, library) is True
    assert record.id in store and len(store) == 1
    stored = store.get(record.id)
    assert stored.path == tmp_path / "store" / "programs" / "math-t-r00003"
    assert {p.name for p in stored.path.iterdir()} == {
        "record.json", "program.json", "program.ntpt", "model.py", "library.pt"}
    got = stored.record
    assert re.fullmatch(r"[0-9a-f]{12}", got.program_hash)
    assert got.verification["test_accuracy"] == {"2": 1.0, "3": 1.0, "16": 1.0}
    assert got.val_curve == [(512, 0.25), (1024, 0.5), (1536, 1.0)]
    assert got == ProgramRecord(**{**record.__dict__, "program_hash": got.program_hash})
    for name, value in math_program(MATH).values.items():
        np.testing.assert_array_equal(stored.program.values[name], value)
    torch.testing.assert_close(stored.library, library)
    assert store.list() == [got]


def test_a_batch_added_together_is_all_readable_after_reopening_the_store(tmp_path):
    store = ProgramStore(tmp_path)
    assert store.add(make_record(restart=2))
    library = {"net_0": {"w0": torch.randn(4, 3)}}
    batch = [(make_record(restart=1), library), (make_record(restart=2), None),
             (make_record(restart=5, values=WRONG_MATH), None), (make_record(restart=1), None)]
    assert store.add_many(batch) == [True, False, True, False]  # 2 was stored, 1 is in the batch twice
    reopened = ProgramStore(tmp_path)
    assert [r.id for r in reopened.list()] == [program_id("math-t", r) for r in (1, 2, 5)]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    torch.testing.assert_close(reopened.get(program_id("math-t", 1)).library, library)
    assert reopened.get(program_id("math-t", 5)).program.values["return_reg"] == 2


def test_a_batch_is_made_durable_in_two_flushes_whatever_its_size(tmp_path, monkeypatch):
    """One flush of the file system for every file and folder of the batch, one for the
    renames (``syncfs`` on Linux); where there is none, every path is fsynced instead."""
    import ntpt_ray.atomic as atomic

    flushed, fsynced = [], []
    real_fsync_paths = atomic.fsync_paths
    monkeypatch.setattr(atomic, "fsync_paths", lambda paths: fsynced.append(list(paths)) or real_fsync_paths(paths))
    if atomic._syncfs() is not None:
        real = atomic._syncfs()
        monkeypatch.setattr(atomic, "_syncfs", lambda: lambda fd: flushed.append(fd) or real(fd))
        assert ProgramStore(tmp_path / "a").add_many([(make_record(restart=r), None) for r in range(5)]) == [True] * 5
        assert len(flushed) == 2 and not fsynced
    monkeypatch.setattr(atomic, "_syncfs", lambda: None)
    assert ProgramStore(tmp_path / "b").add_many([(make_record(restart=r), None) for r in range(5)]) == [True] * 5
    files, renames = fsynced
    assert len(files) == 5 * 4 + 5 and renames == [tmp_path / "b" / "programs"]  # 4 files and a folder each
    monkeypatch.setattr(atomic, "_syncfs", lambda: lambda fd: -1)
    with pytest.raises(OSError, match="syncfs"):
        ProgramStore(tmp_path / "c").add(make_record(restart=1))
    assert not (tmp_path / "c" / "programs" / program_id("math-t", 1)).exists()


def test_identical_programs_share_a_hash_and_others_do_not(tmp_path):
    store = ProgramStore(tmp_path)
    store.add(make_record(restart=1))
    store.add(make_record(restart=2))
    store.add(make_record(restart=3, values=WRONG_MATH))
    hashes = [r.program_hash for r in store.list()]
    assert hashes[0] == hashes[1] != hashes[2]


def test_adding_an_id_twice_keeps_the_first_and_no_duplicate(tmp_path):
    store = ProgramStore(tmp_path)
    assert store.add(make_record(found_at="2026-01-01T00:00:10Z"))
    assert store.add(make_record(values=WRONG_MATH, found_at="2026-01-02T00:00:00Z")) is False
    assert len(store) == 1 and len(list((tmp_path / "programs").iterdir())) == 1
    assert store.get("math-t-r00003").record.found_at == "2026-01-01T00:00:10Z"
    assert store.get("math-t-r00003").program.values["return_reg"] == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def _race(root, barrier, results) -> None:
    barrier.wait()
    results.put(ProgramStore(root).add(make_record()))


def test_processes_racing_to_add_one_id_store_it_exactly_once(tmp_path):
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    workers = [ctx.Process(target=_race, args=(tmp_path, barrier, results)) for _ in range(4)]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=60) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert sorted(outcomes) == [False, False, False, True]
    assert [p.name for p in (tmp_path / "programs").iterdir()] == ["math-t-r00003"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    assert ProgramStore(tmp_path).get("math-t").record.id == "math-t-r00003"


def test_leftovers_of_a_crash_are_ignored(tmp_path):
    store = ProgramStore(tmp_path)
    store.add(make_record(restart=1))
    leftover = tmp_path / ".tmp-abc123"  # crashed before its rename
    leftover.mkdir()
    (leftover / "program.json").write_text("{")
    half = tmp_path / "programs" / "math-t-r00002"  # a program folder without its record
    half.mkdir()
    (half / "program.json").write_text(json.dumps(make_record().program))
    assert [r.id for r in store.list()] == ["math-t-r00001"]
    assert len(store) == 1 and "math-t-r00002" not in store
    assert store.get("math-t").record.id == "math-t-r00001"
    with pytest.raises(UnknownProgram):
        store.get("math-t-r00002")
    assert store.add(make_record(restart=4)) and len(store) == 2


def test_an_add_that_fails_midway_leaves_nothing(tmp_path, monkeypatch):
    store = ProgramStore(tmp_path)

    def broken_save(obj, f):
        f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        store.add(make_record(), {"net_0": {"w0": torch.ones(1)}})
    assert len(store) == 0 and list((tmp_path / "programs").iterdir()) == []
    assert [p.name for p in tmp_path.iterdir()] == ["programs"]
    monkeypatch.undo()
    assert store.add(make_record(), {"net_0": {"w0": torch.ones(1)}})


def test_lookup_by_unique_prefix_with_clear_errors(tmp_path):
    store = ProgramStore(tmp_path)
    for sweep, restart, found in [("math-a", 2, "2026-01-01T00:00:03Z"),
                                  ("math-a", 1, "2026-01-01T00:00:02Z"),
                                  ("math-b", 1, "2026-01-01T00:00:01Z")]:
        store.add(make_record(sweep, restart, found_at=found))
    assert [r.id for r in store.list()] == ["math-b-r00001", "math-a-r00001", "math-a-r00002"]
    assert [r.id for r in store.list(sweep="math-a")] == ["math-a-r00001", "math-a-r00002"]
    assert store.get("math-b").record.id == "math-b-r00001"
    assert store.get("math-a-r00002").record.restart == 2
    with pytest.raises(UnknownProgram) as ambiguous:
        store.get("math-a")
    assert str(ambiguous.value) == "'math-a' matches 2 programs: math-a-r00001, math-a-r00002"
    with pytest.raises(UnknownProgram) as unknown:
        store.get("zzz")
    assert str(unknown.value) == f"no program 'zzz' in store {tmp_path} (3 programs; `ntpt programs list`)"
    store.add(make_record("math-a-r00001x", 0))  # an id that extends another id
    assert store.get("math-a-r00001").record.id == "math-a-r00001"


def test_export_gives_a_folder_that_load_program_reads(tmp_path):
    store = ProgramStore(tmp_path / "store")
    library = {"net_0": {"w0": torch.ones(2, 2), "b0": torch.zeros(1, 2)}}
    store.add(make_record(), library)
    copy = store.export("math-t", tmp_path / "copy")
    assert copy == tmp_path / "copy"
    program, snapshot = load_program(copy)
    assert program.values["return_reg"] == 0 and program.problem.task.name == "math"
    torch.testing.assert_close(snapshot, library)
    (tmp_path / "dir").mkdir()
    assert store.export("math-t-r00003", tmp_path / "dir") == tmp_path / "dir" / "math-t-r00003"
    assert json.loads((tmp_path / "dir" / "math-t-r00003" / "record.json").read_text())["seed"] == 1003


def test_default_store(monkeypatch, tmp_path):
    monkeypatch.delenv("NTPT_STORE", raising=False)
    assert str(default_store()) == "runs/store"
    monkeypatch.setenv("NTPT_STORE", str(tmp_path))
    assert default_store() == tmp_path
    assert str(default_store("elsewhere")) == "elsewhere"


@pytest.fixture
def store_dir(tmp_path):
    store = ProgramStore(tmp_path / "store")
    store.add(make_record(restart=3))
    store.add(make_record(restart=4, values=WRONG_MATH, found_at="2026-01-01T00:00:20Z"))
    return str(store.root)


def test_cli_programs_list_and_show(store_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # room for every column of the table
    runner = CliRunner()
    listed = runner.invoke(app, ["programs", "list", "--store", store_dir])
    assert listed.exit_code == 0, listed.output
    assert "math-t-r00003" in listed.output and "math-t-r00004" in listed.output
    assert "2-3,16" in listed.output
    shown = runner.invoke(app, ["programs", "show", "math-t-r00003", "--store", store_dir])
    assert shown.exit_code == 0, shown.output
    assert "sweep math-t, restart 3, seed 1003" in shown.output
    assert "16: 1.0000" in shown.output and "1536: 1.000" in shown.output
    for line in math_program(MATH).listing().splitlines():
        assert line in shown.output
    missing = runner.invoke(app, ["programs", "list", "--store", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1 and "no program store at" in missing.output
    (tmp_path / "empty").mkdir()
    empty = runner.invoke(app, ["programs", "list", "--store", str(tmp_path / "empty")])
    assert empty.exit_code == 0 and "is empty" in empty.output
    ambiguous = runner.invoke(app, ["programs", "show", "math-t", "--store", store_dir])
    assert ambiguous.exit_code == 1 and "'math-t' matches 2 programs" in ambiguous.output


def test_cli_run_a_stored_math_program_on_a_16_digit_expression(store_dir):
    expected = left_to_right(EXPRESSION)
    spaced = " ".join(EXPRESSION).replace("x", "×").replace("/", "÷")
    result = CliRunner().invoke(app, ["run", "math-t-r00003", "--input", EXPRESSION, "-i", spaced,
                                      "--store", store_dir])
    assert result.exit_code == 0, result.output
    rows = re.findall(r"│\s*(\d+)\s*│\s*(\d+)\s*│\s*(yes|NO)\s*│", result.output)
    assert rows == [(str(expected), str(expected), "yes")] * 2
    wrong = CliRunner().invoke(app, ["run", "math-t-r00004", "-i", EXPRESSION, "--store", store_dir])
    assert wrong.exit_code == 0
    assert re.findall(r"│\s*(\d+)\s*│\s*(\d+)\s*│\s*(yes|NO)\s*│", wrong.output) == [
        (EXPRESSION[-1], str(expected), "NO")]


@pytest.mark.parametrize("args, message", [
    (["-i", "3+"], "--input '3+': an expression alternates digits and operators, e.g. 3+4x2"),
    (["-i", "3+12"], "--input '3+12': an expression alternates digits and operators"),
    (["-i", "3?4"], "--input '3?4': '?' is neither a digit 0-9 nor an operator + - x /"),
    (["-i", "3+4", "--ints", "1 2 3"], "--ints is for APPLY2X2 programs"),
    (["-i", "3+4", "--images"], "has no stored nets to read images with; run it without --images"),
])
def test_cli_run_rejects_bad_input_in_one_line(store_dir, args, message):
    result = CliRunner().invoke(app, ["run", "math-t-r00003", *args, "--store", store_dir])
    assert result.exit_code == 1
    assert message in result.output and result.output.strip().count("\n") == 0


def test_cli_run_a_perceptual_program_on_images(tmp_path):
    store = ProgramStore(tmp_path)
    record = make_record(perceptual=True)
    nets = problem("math", perceptual=True).compile().nets
    store.add(record, NeuralLibrary(nets, [0]).snapshot(0))  # untrained nets: any output will do
    result = CliRunner().invoke(app, ["run", "math-t", "-i", "3+4x2", "--images", "--seed", "5",
                                      "--store", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "its nets on test-set images (seed 5)" in result.output
    exact = CliRunner().invoke(app, ["run", "math-t", "-i", "3+4x2", "--store", str(tmp_path)])
    assert re.findall(r"│\s*(\d+)\s*│\s*(\d+)\s*│\s*(yes|NO)\s*│", exact.output) == [("14", "14", "yes")]


# ---- a bad file names itself and spoils nothing else

GARBAGE = {"ab12": "{'x", "ab13": "[]", "ab14": "{}"}


def _spoil(store_dir: str) -> dict[str, bytes]:
    """Programs whose record.json is garbage, beside the good ones; every file's bytes."""
    for name, text in GARBAGE.items():
        folder = ProgramStore(store_dir).path(name)
        folder.mkdir()
        (folder / "record.json").write_text(text)
    return {str(p): p.read_bytes() for p in sorted(ProgramStore(store_dir).root.rglob("*")) if p.is_file()}


def test_cli_lists_past_unreadable_records_naming_each_and_touching_nothing(store_dir, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    before = _spoil(store_dir)
    listed = CliRunner().invoke(app, ["programs", "list", "--store", store_dir])
    assert listed.exit_code == 0, listed.output
    assert "2 verified programs" in listed.stdout and "math-t-r00004" in listed.stdout
    programs = ProgramStore(store_dir).programs
    assert listed.stderr.splitlines() == [
        (f"skipped {programs}/ab12/record.json: not valid JSON: Expecting property name enclosed in "
         "double quotes (line 1, column 2)"),
        f"skipped {programs}/ab13/record.json: expected a JSON object {{...}}, found an array",
        (f"skipped {programs}/ab14/record.json: missing 'id', 'sweep', 'restart', 'seed', 'library_version', "
         "'program', 'verification', 'val_curve', 'spec', 'started_at', 'found_at', 'seconds_into_sweep'")]
    shown = CliRunner().invoke(app, ["programs", "show", "ab12", "--store", store_dir])
    assert shown.exit_code == 1 and shown.stdout == ""
    assert shown.stderr.startswith(f"error: {programs}/ab12/record.json: not valid JSON")
    assert shown.stderr.count("\n") == 1
    after = {str(p): p.read_bytes() for p in sorted(ProgramStore(store_dir).root.rglob("*")) if p.is_file()}
    assert after == before


def test_a_bad_program_json_is_named(store_dir):
    (ProgramStore(store_dir).path("math-t-r00003") / "program.json").write_text('{"task": "math"')
    result = CliRunner().invoke(app, ["run", "math-t-r00003", "-i", "3+4", "--store", store_dir])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert ("math-t-r00003/program.json: not valid JSON: Expecting ',' delimiter (line 1, column 16)"
            in result.stderr)


@pytest.mark.parametrize("text, says", [
    ('{"sweep": "s", "spec": {"name": "s"}, "outco',
     "not valid JSON: Unterminated string starting at (line 1, column 39)"),
    ("{}", "missing 'sweep', 'spec', 'outcomes', 'libraries', 'seconds', 'sessions'"),
    ("[]", "expected a JSON object {...}, found an array"),
    (b"\xff\xfe", "not valid JSON: not UTF-8 text"),
])
def test_read_json_gives_one_line_naming_the_file(tmp_path, text, says):
    """The reader a sweep's state.json (ntpt_ray/sweep/state.py) should go through."""
    from ntpt_ray.jsonfile import BadFile, read_json

    state = tmp_path / "state.json"
    state.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(BadFile) as caught:
        read_json(state, required=("sweep", "spec", "outcomes", "libraries", "seconds", "sessions"))
    assert str(caught.value) == f"{state}: {says}"
    with pytest.raises(BadFile, match=f"^{tmp_path}/none.json: cannot read it: No such file or directory$"):
        read_json(tmp_path / "none.json")


def test_a_store_that_is_a_file_or_cannot_be_written_gets_one_line(tmp_path, monkeypatch):
    from ntpt_ray.sweep import coordinator, state

    (tmp_path / "file").write_text("")
    listed = CliRunner().invoke(app, ["programs", "list", "--store", str(tmp_path / "file")])
    assert listed.exit_code == 1
    assert listed.stderr == f"error: {tmp_path}/file is a file, not a program store\n"
    monkeypatch.setattr(coordinator, "connect", lambda address=None: None)  # no Ray: it fails first
    spec = "search/math_onehot.toml"
    under_a_file = CliRunner().invoke(app, ["sweep", spec, "--store", str(tmp_path / "file" / "store")])
    assert under_a_file.exit_code == 1 and under_a_file.stderr.count("\n") == 1, under_a_file.output
    assert under_a_file.stderr.startswith(f"error: {tmp_path}/file/store/sweeps/")
    assert under_a_file.stderr.endswith(": Not a directory\n")

    def read_only(path, write, binary=False):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(state, "atomic_write", read_only)
    denied = CliRunner().invoke(app, ["sweep", spec, "--store", str(tmp_path / "store")])
    assert denied.exit_code == 1 and denied.stderr.count("\n") == 1, denied.output
    assert denied.stderr.startswith(f"error: {tmp_path}/store/sweeps/math-onehot-")
    assert denied.stderr.endswith("/state.json: Permission denied\n")


# ---- a store id or a run directory, alike

def test_run_show_evaluate_and_export_take_a_store_id_or_a_run_directory(store_dir, tmp_path):
    from ntpt_ray.train.run import save_program

    run_dir = tmp_path / "runs" / "math-20260101-120000"
    save_program(run_dir, math_program(MATH), None)
    runner = CliRunner()
    for k, ref in enumerate(["math-t-r00003", str(run_dir), str(run_dir / "program.json")]):
        ran = runner.invoke(app, ["run", ref, "-i", "3+4x2", "--store", store_dir])
        assert ran.exit_code == 0, ran.output
        assert re.findall(ROW, ran.output) == [("14", "14", "yes")]
        shown = runner.invoke(app, ["show", ref, "--store", store_dir])
        assert shown.exit_code == 0 and shown.output == math_program(MATH).listing() + "\n", shown.output
        detailed = runner.invoke(app, ["programs", "show", ref, "--store", store_dir])
        assert detailed.exit_code == 0 and "program hash " in detailed.output, detailed.output
        assert ("sweep math-t, restart 3" in detailed.output) == (k == 0)
        scored = runner.invoke(app, ["evaluate", ref, "--lengths", "2,4", "--examples", "20",
                                     "--store", store_dir])
        assert scored.exit_code == 0 and scored.output.count("1.0000") == 2, scored.output
        exported = runner.invoke(app, ["programs", "export", ref, str(tmp_path / f"copy{k}"),
                                       "--store", store_dir])
        assert exported.exit_code == 0, exported.output
        assert load_program(tmp_path / f"copy{k}")[0].values["return_reg"] == 0
    (tmp_path / "into").mkdir()
    assert runner.invoke(app, ["programs", "export", str(run_dir), str(tmp_path / "into")]).exit_code == 0
    assert (tmp_path / "into" / run_dir.name / "program.json").is_file()
    for command in (["run", "runs/add2x2-left-1", "-i", "1 2 3 4"], ["show", "runs/add2x2-left-1"],
                    ["evaluate", "runs/add2x2-left-1"], ["programs", "show", "runs/add2x2-left-1"]):
        missing = runner.invoke(app, command)
        assert missing.exit_code == 1 and missing.stderr == (
            "error: no verified program at runs/add2x2-left-1 (no such file or folder)\n"), command
    empty_run = tmp_path / "failed-run"
    empty_run.mkdir()
    exported = runner.invoke(app, ["programs", "export", str(empty_run), str(tmp_path / "x")])
    assert exported.stderr == f"error: no verified program at {empty_run}/program.json\n"


def test_listing_reads_at_80_columns_and_whole_when_piped(tmp_path, monkeypatch):
    store = ProgramStore(tmp_path)
    long_ids = [make_record("terpret-basic-block-abcdef", 12, found_at="2026-01-01T00:00:05Z"),
                make_record("math-onehot-3fa2c1", 3, perceptual=True)]
    for record in long_ids:
        store.add(record)
    monkeypatch.setenv("COLUMNS", "80")
    narrow = CliRunner().invoke(app, ["programs", "list", "--store", str(tmp_path)])
    assert narrow.exit_code == 0, narrow.output
    lines = narrow.stdout.splitlines()  # the first names the store: one line, however long
    assert max(map(len, lines[1:])) <= 80 and "…" not in narrow.stdout
    assert lines[1].split() == ["id", "task", "lib", "found", "at", "verified", "hash"]
    rows = [line for line in lines if line.startswith(("terpret", "math"))]
    assert [row.split()[0] for row in rows] == [r.id for r in long_ids]
    monkeypatch.delenv("COLUMNS")
    piped = CliRunner().invoke(app, ["programs", "list", "--store", str(tmp_path)])
    hash_of = {r.id: r.program_hash[:8] for r in store.list()}
    rows = [line.split() for line in piped.stdout.splitlines()[3:]]
    assert rows == [["terpret-basic-block-abcdef-r00012", "math", "v2", "10", "s", "2-3,16",
                     hash_of["terpret-basic-block-abcdef-r00012"]],
                    ["math-onehot-3fa2c1-r00003", "math", "(images)", "v2", "10", "s", "2-3,16",
                     hash_of["math-onehot-3fa2c1-r00003"]]]


def test_counts_are_singular_for_one(tmp_path):
    store = ProgramStore(tmp_path)
    store.add(make_record())
    listed = CliRunner().invoke(app, ["programs", "list", "--store", str(tmp_path)])
    assert listed.stdout.startswith(f"1 verified program in {tmp_path}\n")
    unknown = CliRunner().invoke(app, ["run", "zzz", "-i", "1+2", "--store", str(tmp_path)])
    assert f"no program 'zzz' in store {tmp_path} (1 program; `ntpt programs list`)" in unknown.stderr
