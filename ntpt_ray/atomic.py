"""Crash-safe file writes: readers see the old file or the whole new one, never a part."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import secrets
import sys
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


def fsync_paths(paths: Iterable[Path]) -> None:
    """Make files (their data) and directories (their entries) durable, one after another:
    written first, then synced together, a batch's data reach the disk in few journal commits."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@functools.cache
def _syncfs():
    """libc's ``syncfs`` (Linux), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        syncfs = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    syncfs.argtypes = (ctypes.c_int,)
    return syncfs


def sync_filesystem(root: Path, paths: Iterable[Path]) -> None:
    """Make ``paths`` (files and directories on the file system of ``root``) durable: one
    ``syncfs`` of that file system on Linux (a batch of many small files in one flush), else
    :func:`fsync_paths`."""
    syncfs = _syncfs()
    if syncfs is None:
        fsync_paths(paths)
        return
    fd = os.open(root, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"syncfs: {os.strerror(error)}", str(root))
    finally:
        os.close(fd)
