"""Handwritten operators (+ - × ÷) from the MDAS symbol zip, split train/test by handwritten original.

The zip's images are augmented by rotations and reflections, so copies of one original sit in
its train, val and test folders alike. We pool them, group each image with its dihedral orbit
(the 8 rotations/reflections) and, per class, send 25% of the orbits to test.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from . import paths
from .paths import DataError

ZIP_NAME = "mdas_symbols_v1.zip"
ZIP_SHA256 = "c779edb082fbe932e02ba129d4a0f7eee5e539873f988b587284d46a947d8791"
CLASS_FOLDERS = {"addition_plus": 0, "subtraction_minus": 1,
                 "multiplication_cross": 2, "division_obelus": 3}
TEST_FRACTION = 0.25
SPLIT_SEED = 0


@dataclass(frozen=True)
class OperatorSplit:
    """Operator images (uint8 ``[N, 28, 28]``, white on black), labels 0..3 (+ - × ÷), orbit group ids."""

    x_train: np.ndarray
    y_train: np.ndarray
    group_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    group_test: np.ndarray


def ensure_operators(data_dir: str | Path | None = None, download: bool = False,
                     url: str = paths.OPERATORS_URL) -> Path:
    """The path of the operator zip in ``data_dir``; with ``download``, fetch it from ``url`` first
    when missing (checked by sha256 and written atomically)."""
    target = zip_path(data_dir)
    if download and not target.is_file():
        try:
            with urllib.request.urlopen(url, timeout=120) as response:
                data = response.read()
        except OSError as err:
            raise DataError(f"could not download {url}: {err}") from err
        digest = hashlib.sha256(data).hexdigest()
        if digest != ZIP_SHA256:
            raise DataError(f"{url} gave a file with sha256 {digest}, expected {ZIP_SHA256}")
        partial = target.with_name(target.name + ".part")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(data)
            os.replace(partial, target)
        except OSError as err:
            raise DataError(f"could not write {target}: {err.strerror or err}") from err
    return paths.require_file(target, f"Run `ntpt data --download`, or download {paths.OPERATORS_URL} "
                                      f"into {target.parent}.")


def zip_path(data_dir: str | Path | None = None) -> Path:
    """Where the operator zip belongs in the data directory."""
    return paths.data_dir(data_dir) / "operators" / ZIP_NAME


def missing_files(data_dir: str | Path | None = None) -> list[Path]:
    """The operator zip, if it is not in the data directory."""
    return [file for file in [zip_path(data_dir)] if not file.is_file()]


def load_operators(data_dir: str | Path | None = None) -> OperatorSplit:
    """The operator train/test split built from ``operators/mdas_symbols_v1.zip`` in the data directory.

    The zip's sha256 is checked; the decoded split is cached in :func:`paths.cache_dir`.
    """
    return _load(paths.data_dir(data_dir).resolve())


@lru_cache(maxsize=2)
def _load(root: Path) -> OperatorSplit:
    zip_path = paths.require_file(
        root / "operators" / ZIP_NAME,
        f"Download it from {paths.OPERATORS_URL} into {root / 'operators'}.")
    digest = hashlib.sha256(zip_path.read_bytes()).hexdigest()
    if digest != ZIP_SHA256:
        raise DataError(f"{zip_path} is not the expected file: sha256 {digest}, "
                        f"expected {ZIP_SHA256}. Download it again from {paths.OPERATORS_URL}.")
    cached = paths.cache_dir() / f"operators-{digest}.npz"
    if cached.is_file():
        with np.load(cached) as arrays:
            return OperatorSplit(**{f.name: arrays[f.name] for f in fields(OperatorSplit)})
    split = _split(*_decode(zip_path))
    _save(cached, split)
    return split


def _decode(zip_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """All images of the four classes (the zip's own partitions pooled) and their labels."""
    images, labels = [], []
    with zipfile.ZipFile(zip_path) as archive:
        for name in sorted(archive.namelist()):
            folder = PurePosixPath(name).parent.name
            if name.endswith(".png") and folder in CLASS_FOLDERS:
                image = Image.open(io.BytesIO(archive.read(name))).convert("L")
                images.append(np.asarray(image, dtype=np.uint8))
                labels.append(CLASS_FOLDERS[folder])
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def _orbit_keys(images: np.ndarray) -> list[bytes]:
    """A key shared by exactly the images of one dihedral orbit: the least of its 8 transforms' bytes."""
    variants = [np.rot90(images, k, axes=(1, 2)) for k in range(4)]
    variants += [v[:, :, ::-1] for v in variants]
    return [min(v[i].tobytes() for v in variants) for i in range(len(images))]


def _split(images: np.ndarray, labels: np.ndarray) -> OperatorSplit:
    """Per class, a RandomState(0) permutation of the sorted orbits sends 25% of them to test."""
    keys = _orbit_keys(images)
    rng = np.random.RandomState(SPLIT_SEED)
    group = np.empty(len(images), np.int64)
    test = np.zeros(len(images), bool)
    n_groups = 0
    for c in range(len(CLASS_FOLDERS)):
        rows = np.flatnonzero(labels == c)
        orbits = sorted({keys[i] for i in rows})
        index = {key: n_groups + j for j, key in enumerate(orbits)}
        n_groups += len(orbits)
        n_test = round(TEST_FRACTION * len(orbits))
        test_orbits = {orbits[j] for j in rng.permutation(len(orbits))[:n_test]}
        group[rows] = [index[keys[i]] for i in rows]
        test[rows] = [keys[i] in test_orbits for i in rows]
    train = ~test
    return OperatorSplit(images[train], labels[train], group[train],
                         images[test], labels[test], group[test])


def _save(path: Path, split: OperatorSplit) -> None:
    """Write the split atomically; a cache that cannot be written only costs decoding time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as tmp:
            np.savez(tmp, **{f.name: getattr(split, f.name) for f in fields(split)})
        os.replace(tmp.name, path)
    except OSError as err:
        warnings.warn(f"could not cache the operator split in {path.parent}: {err}", stacklevel=3)
