"""What every command shares: the consoles, one-line errors and option parsers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

console = Console(emoji=False)
errors = Console(stderr=True, emoji=False, soft_wrap=True)  # one error, one line

DataDir = Annotated[Path | None, typer.Option(
    "--data-dir", help="MNIST and operator data (default: $NTPT_DATA_DIR, else the user cache).")]
HypersFile = Annotated[str | None, typer.Option(
    "--hypers", help="A hypers file, TerpreT's {set: {Hyper: value}}; FILE:SET picks one set.")]
Hypers = Annotated[list[str] | None, typer.Option(
    "--hyper", "-H", help="Override a model hyper-parameter, NAME=VALUE (repeatable).")]


def print_table(table) -> None:
    """Print a wide table whole: on a terminal as wide as the terminal, else 160 columns."""
    (console if console.is_terminal else Console(emoji=False, width=160)).print(table)


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on one line of stderr and exit with status 1."""
    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(1)


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
