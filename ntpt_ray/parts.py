"""An experiment's parts as Ray tasks: workers report progress to one board, the driver collects
each part as it finishes (``ntpt lifelong`` and ``ntpt generalise`` both run this way)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from .atomic import atomic_write
from .jsonfile import read_json

Progress = Callable[[int, int], None]
"""``progress(done, total)``, called by a part as it works."""


def progress_board():
    """A Ray actor holding ``(done, total)`` per part key, reported by the workers."""
    import ray

    @ray.remote(num_cpus=0)
    class ProgressBoard:
        def __init__(self):
            self.done: dict[str, tuple[int, int]] = {}

        def report(self, key: str, done: int, total: int) -> None:
            self.done[key] = (done, total)

        def snapshot(self) -> dict[str, tuple[int, int]]:
            return self.done

    return ProgressBoard.remote()


def reporter(board, key: str, every: float = 2.0) -> Progress:
    """A :data:`Progress` that tells ``board`` about part ``key`` at most every ``every`` seconds
    (and always at the end)."""
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.monotonic() - last[0] > every or done >= total:
            last[0] = time.monotonic()
            board.report.remote(key, done, total)

    return progress


def run_parts(first: Sequence[str], submit: Callable[[str, Any], Any],
              on_done: Callable[[str, Any], Iterable[str]], display, *, shown: Sequence[str],
              error: Callable[[str, str], Exception]) -> None:
    """Run parts until none is left.

    ``submit(key, board)`` starts part ``key`` (a Ray object ref); ``on_done(key, result)``
    takes each finished part and returns the keys to start next. ``display(keys=shown)`` is a
    context manager giving ``update(snapshot)``; a part that fails for good raises
    ``error(key, last line of its error)``.
    """
    import ray

    board = progress_board()
    pending = {submit(key, board): key for key in first}
    with display(keys=list(shown)) as update:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            update(ray.get(board.snapshot.remote()))
            for ref in ready:
                key = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    raise error(key, str(exc).strip().splitlines()[-1]) from None
                for follow in on_done(key, result):
                    pending[submit(follow, board)] = follow


def add_wall_time(out: Path, seconds: float) -> float:
    """Add ``seconds`` to the experiment's wall time in ``out/timing.json`` (kept across
    resumes); returns the total."""
    path = out / "timing.json"
    timing = read_json(path) if path.is_file() else {"wall_s": 0.0}
    timing["wall_s"] += seconds
    atomic_write(path, lambda f: json.dump(timing, f, indent=1))
    return timing["wall_s"]


class QuietDisplay:
    """A ``display`` for :func:`run_parts` that shows nothing (the default outside the CLI)."""

    def __init__(self, keys):
        pass

    def __enter__(self):
        return lambda snapshot: None

    def __exit__(self, *exc):
        return False
