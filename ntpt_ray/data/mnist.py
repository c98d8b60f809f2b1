"""MNIST digits, read from torchvision's ``MNIST/raw`` layout in the data directory."""

from __future__ import annotations

import gzip
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import paths
from .paths import DataError

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_HOW_TO_GET = "Run `ntpt data --download` (torchvision's MNIST download) to fetch it."


def _raw(root: Path) -> Path:
    return root / "MNIST" / "raw"


def _locate(root: Path, name: str) -> Path | None:
    """The gzipped IDX file ``name``, else its extracted copy (torchvision keeps both), else None."""
    return next((path for path in (_raw(root) / f"{name}.gz", _raw(root) / name) if path.is_file()), None)


def _find(root: Path, name: str) -> Path:
    return _locate(root, name) or paths.require_file(_raw(root) / f"{name}.gz", _HOW_TO_GET)


def _read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte IDX array (the MNIST file format)."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":
        raise DataError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    shape = np.frombuffer(data, ">u4", count=ndim, offset=4).astype(int)
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != shape.prod():
        raise DataError(f"{path} is truncated: header says {tuple(shape)}, found {body.size} bytes")
    return body.reshape(shape)


def missing_files(data_dir: str | Path | None = None) -> list[Path]:
    """The MNIST files not in the data directory, each as the ``.gz`` path it is sought at."""
    root = paths.data_dir(data_dir)
    return [_raw(root) / f"{name}.gz" for name in FILES if _locate(root, name) is None]


def ensure_mnist(data_dir: str | Path | None = None, download: bool = False) -> Path:
    """Check the MNIST files are in ``data_dir``; with ``download``, fetch missing ones via torchvision."""
    root = paths.data_dir(data_dir)
    if download and missing_files(root):
        _download(root)
    missing = missing_files(root)
    if missing:
        raise paths.missing_data(missing, _HOW_TO_GET)
    return root


def _download(root: Path) -> None:
    """Fetch MNIST with torchvision into a temporary folder, then move its files into ``root``:
    a failed download leaves nothing behind, not even empty folders."""
    from torchvision.datasets import MNIST

    with tempfile.TemporaryDirectory(prefix="ntpt-mnist-") as tmp:
        try:
            MNIST(tmp, train=False, download=True)  # fetches all four files
        except (OSError, RuntimeError) as err:
            raise DataError(f"could not download MNIST into {root}: {err}") from err
        try:
            _raw(root).mkdir(parents=True, exist_ok=True)
            for file in _raw(Path(tmp)).iterdir():
                if not (_raw(root) / file.name).exists():
                    shutil.move(file, _raw(root) / file.name)
        except OSError as err:
            raise DataError(f"could not write MNIST into {_raw(root)}: {err.strerror or err}") from err


def load_mnist(data_dir: str | Path | None, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's train (60,000) or test (10,000) set: uint8 images ``[N, 28, 28]``, int64 labels ``[N]``."""
    return _load(paths.data_dir(data_dir).resolve(), train)


@lru_cache(maxsize=4)
def _load(root: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if train else "t10k"
    images = _read_idx(_find(root, f"{prefix}-images-idx3-ubyte"))
    labels = _read_idx(_find(root, f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise DataError(f"MNIST {prefix} files in {_raw(root)} disagree: {images.shape} images, "
                        f"{labels.shape} labels")
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels
