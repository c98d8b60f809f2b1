"""The wheel holds what the package reads at run time, and shipped specs are found by name."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ntpt_ray.cli import app
from ntpt_ray.specs import UnknownSpec, resolve_spec, shipped_specs

ROOT = Path(__file__).resolve().parents[1]
NOT_SHIPPED = {"terpret_basic_block.toml"}  # reads TerpreT's files from beside the checkout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built offline from a copy of the sources (the checkout gets no build/ folder)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    for folder in ("ntpt_ray", "search"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-index",
                            "--no-build-isolation", "-q", "-w", str(out)],
                           capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stderr
    return next(out.glob("ntpt_ray-*.whl"))


def test_the_wheel_holds_every_module_the_specs_the_model_sources_and_the_license(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "ntpt_ray").rglob("*.py")}
    assert modules <= names, f"not in the wheel (list the package in pyproject.toml): {modules - names}"
    specs = {f"ntpt_ray/search/{p.name}" for p in (ROOT / "search").glob("*.toml") if p.name not in NOT_SHIPPED}
    assert specs and specs <= names
    assert not any(n.endswith(tuple(NOT_SHIPPED)) or n.startswith("ntpt_ray/search/tasks/") for n in names)
    assert {"ntpt_ray/models/sources/math.py", "ntpt_ray/models/sources/grid2x2.py"} <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_an_installed_wheel_finds_its_specs_and_model_sources(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (f"import sys; sys.path.insert(0, {str(site)!r})\n"
            "from importlib import resources\n"
            "from ntpt_ray.specs import resolve_spec, shipped_specs\n"
            "print(' '.join(s.name for s in shipped_specs()))\n"
            "print(resolve_spec('math_onehot'), resolve_spec('search/lifelong.toml'))\n"
            "print(sorted(p.name for p in (resources.files('ntpt_ray.models') / 'sources').iterdir()"
            " if p.name.endswith('.py')))\n")
    # -S: no site-packages, so the checkout's editable install cannot answer instead
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    names, resolved, sources = done.stdout.splitlines()
    assert "math_onehot" in names.split() and "terpret_basic_block" not in names.split()
    assert resolved.split() == [str(site / "ntpt_ray/search/math_onehot.toml"),
                                str(site / "ntpt_ray/search/lifelong.toml")]
    assert sources == "['grid2x2.py', 'math.py']"


def test_ntpt_specs_lists_the_shipped_specs_with_their_kind_and_description():
    result = CliRunner().invoke(app, ["specs"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1] for line in result.output.splitlines()[2:] if line.strip()
            and not line.startswith("files in")}
    assert rows["math_onehot"] == "sweep" and rows["lifelong"] == "lifelong"
    assert "Symbolic MATH: learn the loop" in result.output
    assert {s.name: s.kind for s in shipped_specs()} == rows


def test_a_spec_argument_is_a_file_or_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped = resolve_spec("math_onehot")
    assert shipped.is_file() and shipped.name == "math_onehot.toml"
    assert resolve_spec("math_onehot.toml") == resolve_spec("search/math_onehot.toml") == shipped
    (tmp_path / "lifelong").mkdir()  # a folder of that name is not a spec
    assert resolve_spec("lifelong").name == "lifelong.toml"
    own = tmp_path / "math_onehot.toml"
    own.write_text('name = "mine"\n')
    assert resolve_spec("math_onehot.toml") == Path("math_onehot.toml")  # a file wins
    with pytest.raises(UnknownSpec, match="nosuch: no such spec file.*shipped: .*math_onehot"):
        resolve_spec("nosuch")
    with pytest.raises(UnknownSpec):
        resolve_spec("elsewhere/math_onehot.toml")  # a path elsewhere is never a shipped name


def test_the_commands_that_take_a_spec_accept_a_shipped_name():
    runner = CliRunner()
    for command in (["sweep"], ["lifelong"], ["tune"], ["bench-sweep"]):
        missing = runner.invoke(app, [*command, "nosuch"])
        assert missing.exit_code == 1 and "`ntpt specs` lists them" in missing.output, command
    bad_kind = runner.invoke(app, ["lifelong", "math_onehot"])  # found by name, then validated
    assert bad_kind.exit_code == 1 and "math_onehot.toml" in bad_kind.output
