"""What every command shares: the consoles, one-line errors, tables and progress displays that
lose no text, finding a program by store id or path, and option parsers.

Nothing heavy (torch, optuna, ray, matplotlib) is imported here or at the top of a command
module: ``ntpt --help`` loads none of them.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich import box
from rich.console import Console, JustifyMethod
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

if TYPE_CHECKING:
    from ..library import LibrarySnapshot
    from ..program import LearnedProgram
    from ..store import StoredProgram

console = Console(emoji=False)
errors = Console(stderr=True, emoji=False, soft_wrap=True)  # one error, one line

DataDir = Annotated[Path | None, typer.Option(
    "--data-dir", help="MNIST and operator data (default: $NTPT_DATA_DIR, else the user cache).")]
HypersFile = Annotated[str | None, typer.Option(
    "--hypers", help="A hypers file, TerpreT's {set: {Hyper: value}}; FILE:SET picks one set.")]
Hypers = Annotated[list[str] | None, typer.Option(
    "--hyper", "-H", help="Override a model hyper-parameter, NAME=VALUE (repeatable).")]
Store = Annotated[Path | None, typer.Option(
    "--store", help="Program store that program ids refer to (default: $NTPT_STORE, else runs/store).")]
ProgramRef = Annotated[str, typer.Argument(
    metavar="PROGRAM", help="A stored program's id (or a unique prefix of one), or a run directory, "
                            "program folder or program.json.")]


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on one line of stderr and exit with status 1."""
    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(1)


def note(message: str) -> None:
    """Print ``message`` as one plain line of stderr (what was skipped, and why)."""
    errors.print(message, markup=False, highlight=False)


def file_error(exc: OSError) -> str:
    """An OSError as one line that names its file: ``runs/store/sweeps: Permission denied``."""
    return f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc)


def plural(count: int, noun: str) -> str:
    """``1 program``, ``2 programs``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


COMPACT = {"box": box.SIMPLE_HEAD, "show_edge": False, "pad_edge": False, "collapse_padding": True}
"""Table options for wide tables: a rule under the header, two spaces between columns."""


def new_table(*columns: str, wrap: tuple[str, ...] | None = None, justify: JustifyMethod = "left",
              **options) -> Table:
    """A table that never cuts a cell: the ``wrap`` columns (default: all) wrap when the table
    is too wide, the others keep their width; a word longer than its column folds."""
    out = Table(**options)
    for name in columns:
        out.add_column(name, justify=justify, overflow="fold", no_wrap=wrap is not None and name not in wrap)
    return out


def print_table(table: Table) -> None:
    """Print a table whole: on a terminal (or with $COLUMNS set) in that width, cells wrapping
    between words; piped, as wide as its rows, one line each."""
    if console.is_terminal or os.environ.get("COLUMNS", "").isdigit():
        table = copy.deepcopy(table)  # the caller's table keeps its own column widths
        width = _fit(table, console.width)
    else:
        width = console.measure(table, options=console.options.update_width(100_000)).maximum
    Console(file=console.file, emoji=False, width=width, force_terminal=console.is_terminal).print(table)


def _fit(table: Table, width: int) -> int:
    """Narrow the wrapping columns of ``table`` to fit ``width``, the one with the most room
    above its longest word first (rich alone shrinks the widest, breaking its words); the
    width to print at: ``width``, or the least that breaks no word."""
    options = console.options.update_width(100_000)
    spans = [Measurement.get(console, options, column.header) for column in table.columns]
    for k, column in enumerate(table.columns):
        for cell in column.cells:
            cell_span = Measurement.get(console, options, cell)
            spans[k] = Measurement(max(spans[k].minimum, cell_span.minimum),
                                   max(spans[k].maximum, cell_span.maximum))
    widths = [span.maximum for span in spans]
    floors = [span.maximum if column.no_wrap else span.minimum for span, column in zip(spans, table.columns)]
    overhead = console.measure(table, options=options).maximum - sum(widths)
    excess = sum(widths) + overhead - width
    while excess > 0 and widths != floors:
        k = max(range(len(widths)), key=lambda i: widths[i] - floors[i])
        widths[k] -= 1
        excess -= 1
    for column, span, w in zip(table.columns, spans, widths):
        if w < span.maximum:
            column.max_width = w
    return width + max(excess, 0)


def progress_display() -> Progress:
    """A live display of tasks that have a ``status`` field. On a terminal: description, bar,
    count, elapsed time, status; piped: each task's final line (no bar). Long text wraps, so
    nothing is cut."""
    wrapping = Column(overflow="fold")
    if not console.is_terminal:
        return Progress(TextColumn("{task.description}  {task.completed:.0f}/{task.total:.0f}  "
                                   "{task.elapsed:.0f} s  {task.fields[status]}", markup=False,
                                   table_column=wrapping), console=console)
    return Progress(TextColumn("{task.description}", markup=False, table_column=wrapping),
                    BarColumn(bar_width=None, table_column=Column(min_width=10)),
                    MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[status]}", markup=False, table_column=Column(overflow="fold")),
                    console=console)


def is_path(ref: str) -> bool:
    """Whether a PROGRAM argument is a path (it exists, has a '/' or ends in .json), not a store id."""
    return Path(ref).exists() or "/" in ref or os.sep in ref or ref.endswith(".json")


def locate_program(ref: str, store: Path | None) -> tuple[Path, StoredProgram | None]:
    """Program ``ref``'s folder (or program.json) and, for a store id, its store entry."""
    if is_path(ref):
        return Path(ref), None
    from ..jsonfile import BadFile
    from ..store import ProgramStore, UnknownProgram, default_store

    try:
        stored = ProgramStore(default_store(store)).get(ref)
    except (UnknownProgram, BadFile) as exc:
        fail(str(exc))
    return stored.path, stored


def load_program_ref(ref: str, store: Path | None) -> tuple[LearnedProgram, LibrarySnapshot, str]:
    """Program ``ref`` (a store id or a path), its nets, and its label (the id, or the path)."""
    path, stored = locate_program(ref, store)
    return (*load_program_at(path), stored.record.id if stored else ref)


def load_program_at(path: Path) -> tuple[LearnedProgram, LibrarySnapshot]:
    """The program saved in a folder or program.json, and its nets; one-line errors."""
    from ..train.run import load_program

    try:
        return load_program(path)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))


def by_length(accuracy: dict[int, float]) -> str:
    return ", ".join(f"{length}: {acc:.4f}" for length, acc in accuracy.items())


def parse_hypers(items: list[str] | None) -> dict[str, int]:
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not value.strip().lstrip("-").isdigit():
            fail(f"--hyper expects NAME=INTEGER, got '{item}'")
        out[name.strip()] = int(value)
    return out


def read_hyper_sets(spec: str) -> dict[str, dict[str, int]]:
    """The sets of a hypers file ``FILE`` (all of them) or ``FILE:SET`` (that one)."""
    import json

    path, _, wanted = spec.partition(":") if not Path(spec).exists() else (spec, "", "")
    try:
        sets = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"--hypers {path}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"--hypers {path}: not valid JSON: {exc}") from None
    if not isinstance(sets, dict) or not all(isinstance(v, dict) for v in sets.values()):
        raise ValueError(f"--hypers {path}: expected {{set name: {{Hyper name: value}}}}")
    if wanted and wanted not in sets:
        raise ValueError(f"--hypers {path}: no set '{wanted}' (sets: {', '.join(sets)})")
    return {wanted: sets[wanted]} if wanted else sets


def parse_lengths(text: str) -> list[int]:
    """Input lengths from "2,4,8" or "2-16"."""
    out = []
    for part in text.split(","):
        low, sep, high = part.partition("-")
        if not low.strip().isdigit() or (sep and not high.strip().isdigit()):
            raise ValueError(f"--lengths expects '2,4,8' or '2-16', got '{text}'")
        out.extend(range(int(low), int(high) + 1) if sep else [int(low)])
    return out


def spec_file(ref: Path) -> Path:
    """The spec a SPEC argument names: a file, else a shipped spec (``ntpt specs``); one-line errors."""
    from ..specs import UnknownSpec, resolve_spec

    try:
        return resolve_spec(ref)
    except UnknownSpec as exc:
        fail(f"{exc}; `ntpt specs` lists them")
