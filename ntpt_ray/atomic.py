"""Crash-safe file writes: readers see the old file or the whole new one, never a part."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def write_new(path: Path, write: Callable[[Any], None], binary: bool = False) -> None:
    """Create ``path`` (it must not exist yet) and fill it with ``write(file)``, unsynced: make it
    durable with :func:`fsync_paths` (after writing the rest of a batch)."""
    with open(path, "xb" if binary else "x", **({} if binary else {"encoding": "utf-8"})) as f:
        write(f)


def write_synced(path: Path, write: Callable[[Any], None], binary: bool = False) -> None:
    """Create ``path`` (it must not exist yet), fill it with ``write(file)`` and fsync it."""
    with open(path, "xb" if binary else "x", **({} if binary else {"encoding": "utf-8"})) as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def atomic_write(path: Path, write: Callable[[Any], None], binary: bool = False) -> None:
    """Write ``path`` by calling ``write(file)`` on a temporary file in the same directory,
    then fsync it and rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}"
    try:
        write_synced(tmp, write, binary)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fsync_dir(path: Path) -> None:
    """Make the entries of directory ``path`` (new names, renames) durable."""
    fsync_paths([path])


def fsync_paths(paths: Iterable[Path]) -> None:
    """Make files (their data) and directories (their entries) durable, one after another:
    written first, then synced together, a batch's data reach the disk in few journal commits."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
