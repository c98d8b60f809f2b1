"""The command line as a whole: fast to start, tables and progress that lose no text, `ntpt data`."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from ntpt_ray.cli import app, common
from ntpt_ray.data import data_dir

HEAVY = ("torch", "optuna", "ray", "matplotlib")


def test_importing_the_command_line_loads_no_heavy_library():
    code = f"import sys, ntpt_ray.cli; print(sorted(set({HEAVY!r}) & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


STATUS = "running 2  best val acc 0.50  verified 1  12.3 restarts/min  library v0  actors 2 (lost 1)"


@pytest.mark.parametrize("terminal", [False, True])
def test_progress_at_80_columns_or_piped_keeps_every_word(monkeypatch, terminal):
    out = io.StringIO()
    monkeypatch.setattr(common, "console", Console(file=out, width=80, force_terminal=terminal,
                                                   color_system=None))
    with common.progress_display() as progress:
        task = progress.add_task("terpret-basic-block-abcdef: restarts", total=1024, status="")
        progress.update(task, completed=300, status=STATUS)
    final = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue().split("\r")[-1])  # the last redraw
    lines = final.splitlines()
    words = " ".join(final.split())
    assert "…" not in final and max(map(len, lines)) <= 80
    assert "300/1024" in words
    if terminal:  # the status column wraps beside the description's
        assert set(STATUS.split()) <= set(words.split())
    else:  # one paragraph
        assert " ".join(STATUS.split()) in words
    assert ("━" in final) == terminal  # no bar in a log


def test_the_trials_table_fits_80_columns_and_is_one_line_a_row_when_piped(monkeypatch):
    from ntpt_ray.tune.report import TRIAL_COLUMNS

    row = ["12 (retry of 3)", "complete", "31/32", "96.9%", "12.3", "140",
           "lr=0.1234, library_lr=0.001234, entropy_start=-0.05, entropy_end=0.05, batch_size=16"]
    table = common.new_table(*TRIAL_COLUMNS, **common.COMPACT)
    table.add_row(*row)
    for columns in ("80", ""):
        out = io.StringIO()
        monkeypatch.setattr(common, "console", Console(file=out, color_system=None))
        monkeypatch.setenv("COLUMNS", columns)
        common.print_table(table)
        text = out.getvalue()
        assert "…" not in text
        if columns:
            assert max(map(len, text.splitlines())) <= 80
            assert set(" ".join(row).split()) <= set(text.split())  # every word whole
        else:
            assert text.splitlines()[2].split("  ")[0] == row[0] and text.count("\n") == 3


# ---- ntpt data

def test_data_names_every_missing_file(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-images-idx3-ubyte.gz").symlink_to(data_dir() / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz")
    result = CliRunner().invoke(app, ["data", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(
        "error: missing data files 'MNIST/raw/train-images-idx3-ubyte.gz', "
        "'MNIST/raw/train-labels-idx1-ubyte.gz', "
        f"'MNIST/raw/t10k-labels-idx1-ubyte.gz', 'operators/mdas_symbols_v1.zip' in {tmp_path}. ")
    assert CliRunner().invoke(app, ["data"]).exit_code == 0  # the shared data directory is whole


@pytest.fixture
def offline(monkeypatch):
    """No network: torchvision's MNIST makes its folders, then fails, as it does offline."""
    import torchvision.datasets

    class OfflineMNIST:
        def __init__(self, root, train, download):
            (Path(root) / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(torchvision.datasets, "MNIST", OfflineMNIST)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)


def test_a_failed_download_leaves_no_folders(tmp_path, offline):
    target = tmp_path / "data"
    result = CliRunner().invoke(app, ["data", "--download", "--data-dir", str(target)])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: could not download MNIST into {target}: Error downloading")
    assert not target.exists()
    (target / "MNIST").mkdir(parents=True)  # MNIST present, the operators' download fails
    (target / "MNIST" / "raw").symlink_to(data_dir() / "MNIST" / "raw")
    result = CliRunner().invoke(app, ["data", "--download", "--data-dir", str(target)])
    assert result.exit_code == 1 and "could not download https://github.com/" in result.stderr
    assert sorted(p.name for p in target.iterdir()) == ["MNIST"]
