"""Where data lives: the (possibly read-only) data directory and a writable cache directory."""

from __future__ import annotations

import os
from pathlib import Path

# Upstream of the operator images (MIT License), pinned to the commit our split was checked on.
OPERATORS_URL = ("https://github.com/jdmacleod/handwritten-calculator/raw/"
                 "c00b70f1dfafe54c17de6ed7fc49b9598d134e2c/mdas_symbol_dataset/mdas_symbols_v1.zip")


class DataError(ValueError):
    """A data file is missing or not what it should be."""


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ntpt-ray"


def data_dir(explicit: str | Path | None = None) -> Path:
    """The data directory: ``explicit``, else ``$NTPT_DATA_DIR``, else ``~/.cache/ntpt-ray/data``.

    It holds ``MNIST/raw/*.gz`` (torchvision's layout) and ``operators/mdas_symbols_v1.zip``;
    it may be read-only, nothing here writes into it.
    """
    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get("NTPT_DATA_DIR")
    return Path(env).expanduser() if env else _user_cache() / "data"


def cache_dir() -> Path:
    """Writable directory for derived files: ``$NTPT_CACHE_DIR``, else ``~/.cache/ntpt-ray``."""
    env = os.environ.get("NTPT_CACHE_DIR")
    return Path(env).expanduser() if env else _user_cache()


def require_file(path: Path, how_to_get: str) -> Path:
    """``path`` if it is a file, else a :class:`DataError` naming where it was sought and how to get it."""
    if path.is_file():
        return path
    raise missing_data([path], how_to_get)


def missing_data(files: list[Path], how_to_get: str) -> DataError:
    """The error for data files not found: all of them, the folder sought in, how to get them."""
    folder = Path(os.path.commonpath(files)) if len(files) > 1 else files[0].parent
    names = ", ".join(f"'{file.relative_to(folder)}'" for file in files)
    where = folder if folder.is_dir() else f"{folder} (no such directory)"
    return DataError(f"missing data file{'s' if len(files) > 1 else ''} {names} in {where}. {how_to_get} "
                     "To use another data directory, set NTPT_DATA_DIR or pass --data-dir.")
