"""``ntpt plot``: validation curves of a run, a stored program or a sweep, as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import DataDir, Store, console, fail, is_path, locate_program, note


def plot(
    ref: Annotated[str, typer.Argument(
        metavar="RUN_OR_ID", help="A run directory of `ntpt train`, a stored program's id (or a unique "
                                  "prefix) or folder, or a sweep's id or folder (<store>/sweeps/ID).")],
    out: Annotated[Path | None, typer.Option(help="The PNG (default: runs/plots/<name>.png).")] = None,
    store: Store = None,
    data_dir: DataDir = None,
) -> None:
    """Draw the validation curve of every restart (verified ones marked) and, for perceptual
    runs, the accuracy of the learned nets; a sweep also gets its verified programs over time."""
    from ..jsonfile import BadFile
    from ..plots import default_out, draw_curves, plot_sweep, program_curves, run_curves
    from ..store import RECORD, default_store

    sweep = Path(ref) if is_path(ref) else default_store(store) / "sweeps" / ref
    try:
        if (sweep / "state.json").is_file():
            saved = plot_sweep(sweep, out)
        else:
            path, _ = locate_program(ref, store)
            folder = path if path.is_dir() else path.parent
            if (folder / "run.json").is_file():
                curves = run_curves(folder)
            elif (folder / RECORD).is_file():
                curves = program_curves(folder)
            else:
                fail(f"{path}: not a run directory (run.json), a stored program (record.json) or a "
                     "sweep (state.json)")
            if curves.perceptual and (folder / "library.pt").is_file():
                curves.net_accuracy = _net_accuracy(folder, data_dir)
            saved = draw_curves(curves, out or default_out(folder.name))
    except (BadFile, OSError) as exc:
        fail(str(exc))
    console.print(f"wrote {saved}", markup=False, highlight=False)


def _net_accuracy(folder: Path, data_dir: Path | None) -> dict[str, float]:
    """The test-set accuracy of each net saved in ``folder``; none (with a note) without the data."""
    from ..data import DataError
    from ..evaluate import net_accuracy
    from ..train.run import load_program

    program, library = load_program(folder)
    try:
        return net_accuracy(library, program, data_dir=data_dir)
    except DataError as exc:
        note(f"net accuracy not drawn: {exc}")
        return {}
