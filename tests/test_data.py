"""Data layer: MNIST and operator loading, disjoint split pools, task generators."""

import gzip
import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ntpt_ray.data import (SPLITS, TASKS, DataError, SymbolPools, apply_op, cache_dir, data_dir,
                           ensure_mnist, load_mnist, load_operators, make_batch)
from ntpt_ray.data.operators import ZIP_NAME, ZIP_SHA256

# From shared/data/SOURCES.md.
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
OPERATOR_TRAIN_COUNTS = [750, 752, 750, 752]
OPERATOR_TEST_COUNTS = [252, 248, 252, 248]
OPERATOR_ORBITS = [(125, 42), (187, 62), (125, 42), (188, 62)]  # (train, test) per class


# ---- MNIST and operators

@pytest.mark.parametrize("train, counts", [(True, MNIST_TRAIN_COUNTS), (False, MNIST_TEST_COUNTS)])
def test_mnist_loads_offline(train, counts):
    images, labels = load_mnist(None, train)
    assert images.shape == (sum(counts), 28, 28) and images.dtype == np.uint8
    assert labels.dtype == np.int64
    assert np.bincount(labels).tolist() == counts


def test_ensure_mnist_finds_files_or_explains(tmp_path):
    assert ensure_mnist() == ensure_mnist(download=True) == data_dir()  # present: no download
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz.*NTPT_DATA_DIR"):
        ensure_mnist(tmp_path, download=False)


def test_mnist_reads_extracted_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(Path(data_dir()) / "MNIST" / "raw" / f"{name}.gz") as packed:
            (raw / name).write_bytes(packed.read())
    for ours, shared in zip(load_mnist(tmp_path, train=False), load_mnist(None, train=False)):
        assert np.array_equal(ours, shared)


def test_operator_split_reproduces_sources():
    ops = load_operators()
    assert ops.x_train.shape[1:] == (28, 28) and ops.x_train.dtype == np.uint8
    assert ops.y_train.dtype == ops.group_train.dtype == np.int64
    assert np.bincount(ops.y_train).tolist() == OPERATOR_TRAIN_COUNTS
    assert np.bincount(ops.y_test).tolist() == OPERATOR_TEST_COUNTS
    assert not set(ops.group_train.tolist()) & set(ops.group_test.tolist())
    for c, (train_orbits, test_orbits) in enumerate(OPERATOR_ORBITS):
        assert len(np.unique(ops.group_train[ops.y_train == c])) == train_orbits
        assert len(np.unique(ops.group_test[ops.y_test == c])) == test_orbits
    groups = np.concatenate([ops.group_train, ops.group_test])
    labels = np.concatenate([ops.y_train, ops.y_test])
    assert all(len(np.unique(labels[groups == g])) == 1 for g in np.unique(groups))
    # white ink on a black background, like MNIST
    assert ops.x_train[:, 0, :].mean() < 5 and ops.x_train.max() == 255


def test_operator_split_agrees_with_shipped_npz():
    ops = load_operators()
    shipped = np.load(Path(data_dir()) / "operators" / "operators.npz")
    for part in ("train", "test"):
        ours = zip((x.tobytes() for x in getattr(ops, f"x_{part}")), getattr(ops, f"y_{part}").tolist())
        theirs = zip((x.tobytes() for x in shipped[f"x_{part}"]), shipped[f"y_{part}"].tolist())
        assert sorted(ours) == sorted(theirs)


def test_operator_zip_checksum(tmp_path):
    corrupted = tmp_path / "operators" / ZIP_NAME
    corrupted.parent.mkdir()
    shutil.copyfile(Path(data_dir()) / "operators" / ZIP_NAME, corrupted)
    content = bytearray(corrupted.read_bytes())
    content[len(content) // 2] ^= 0xFF
    corrupted.write_bytes(bytes(content))
    with pytest.raises(DataError) as err:
        load_operators(tmp_path)
    message = str(err.value)
    assert ZIP_NAME in message and ZIP_SHA256 in message
    assert hashlib.sha256(bytes(content)).hexdigest() in message


def test_missing_data_dir_is_named(tmp_path):
    missing = tmp_path / "nowhere"
    loaders = [lambda: load_mnist(missing, True), lambda: load_operators(missing),
               lambda: SymbolPools.load(missing, "train"),
               lambda: make_batch("math", 2, perceptual=True, data_dir=missing)]
    for load in loaders:
        with pytest.raises(DataError, match=re.escape(str(missing))):
            load()
    with pytest.raises(DataError, match="mdas_symbols_v1.zip.*github.com/jdmacleod/handwritten-calculator"):
        load_operators(missing)


def test_directories_resolve(monkeypatch, tmp_path):
    monkeypatch.setenv("NTPT_DATA_DIR", str(tmp_path / "env"))
    assert data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert data_dir() == tmp_path / "env"
    monkeypatch.delenv("NTPT_DATA_DIR")
    monkeypatch.delenv("NTPT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_dir() == tmp_path / "xdg" / "ntpt-ray" / "data"
    assert cache_dir() == tmp_path / "xdg" / "ntpt-ray"


# ---- symbol pools

def test_pools_are_disjoint_and_faithful():
    pools = {split: SymbolPools.load(None, split) for split in SPLITS}
    ops = load_operators()
    for split, pool in pools.items():
        assert np.bincount(pool.symbols, minlength=14).min() > 0, f"a symbol is missing from {split}"
        digit, op = pool.symbols < 10, pool.symbols >= 10
        mnist_images, mnist_labels = load_mnist(None, train=split != "test")
        assert np.array_equal(pool.images[digit], mnist_images[pool.origin[digit]])
        assert np.array_equal(pool.symbols[digit], mnist_labels[pool.origin[digit]])
        op_images, op_labels = (ops.x_test, ops.y_test) if split == "test" else (ops.x_train, ops.y_train)
        assert np.array_equal(pool.images[op], op_images[pool.origin[op]])
        assert np.array_equal(pool.symbols[op], 10 + op_labels[pool.origin[op]])

    def digit_rows(split):
        return set(pools[split].origin[pools[split].symbols < 10].tolist())

    def op_groups(split):
        pool = pools[split]
        return set(ops.group_train[pool.origin[pool.symbols >= 10]].tolist())

    assert not digit_rows("train") & digit_rows("val")
    assert (len(digit_rows("train")), len(digit_rows("val"))) == (50_000, 10_000)
    assert digit_rows("test") == set(range(10_000))
    assert not op_groups("train") & op_groups("val")
    assert len(op_groups("train") | op_groups("val")) == len(np.unique(ops.group_train))
    assert 0.1 < len(op_groups("val")) / len(np.unique(ops.group_train)) < 0.2
    assert np.array_equal(np.sort(pools["test"].origin[pools["test"].symbols >= 10]), np.arange(1000))


def test_sample_draws_the_requested_symbols():
    pool = SymbolPools.load(None, "val")
    ids = np.random.default_rng(0).integers(0, 14, (50, 3))
    rows = pool.sample_indices(ids, np.random.default_rng(1))
    images = pool.sample(ids, np.random.default_rng(1))
    assert images.shape == (50, 3, 28, 28) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert np.array_equal(pool.symbols[rows], ids)
    assert np.array_equal(images, pool.images[rows] / np.float32(255))


# ---- tasks

LINE_CELLS = {"top": (0, 1), "left": (0, 2), "bottom": (2, 3), "right": (1, 3)}


def expected_op(a, b, op):
    if op == 0:
        return (a + b) % 19
    if op == 1:
        return (a - b) % 19
    if op == 2:
        return (a * b) % 19
    return 18 if b == 0 else a // b


def expected_target(task, symbols, ints):
    family, _, line = task.partition(":")
    if family == "add2x2":
        first, second = LINE_CELLS[line]
        return (symbols[first] + symbols[second]) % 19
    if family == "apply2x2":
        first, second = LINE_CELLS[line]
        d1, d2, d3 = ints
        return expected_op(expected_op(d1, d2, symbols[first] - 10), d3, symbols[second] - 10)
    value = symbols[0]
    for k in range(1, len(symbols), 2):
        value = expected_op(value, symbols[k + 1], symbols[k] - 10)
    return value


def test_apply_op_examples():
    assert apply_op(3, 5, 1) == 17
    assert apply_op(7, 0, 3) == 18 and apply_op(0, 0, 3) == 18
    assert apply_op(7, 2, 3) == 3 and apply_op(18, 18, 3) == 1
    assert apply_op(5, 4, 2) == 1 and apply_op(9, 9, 0) == 18
    assert apply_op(np.arange(4), 2, np.arange(4)).tolist() == [2, 18, 4, 1]


@pytest.mark.parametrize("task", TASKS)
def test_symbolic_targets(task):
    batch = make_batch(task, 400, digits=4, seed=3)
    name = "tape" if task == "math" else "grid"
    symbols = batch.symbols[name]
    assert len(batch) == 400 and batch.target.dtype == symbols.dtype == torch.int64
    assert torch.equal(batch.inputs[name], symbols)
    assert symbols.shape == ((400, 7) if task == "math" else (400, 4))
    if task.startswith("add2x2"):
        assert symbols.max() <= 9
    elif task.startswith("apply2x2"):
        assert symbols.min() >= 10 and symbols.max() <= 13
        assert batch.inputs["ints"].shape == (400, 3) and 0 <= batch.inputs["ints"].min()
        assert batch.inputs["ints"].max() <= 9
    else:
        assert symbols[:, 0::2].max() <= 9 and symbols[:, 1::2].min() >= 10
    ints = batch.inputs.get("ints", torch.zeros(400, 0, dtype=torch.int64))
    for row, aux, target in zip(symbols.tolist(), ints.tolist(), batch.target.tolist()):
        assert target == expected_target(task, row, aux)
    assert len(set(batch.target.tolist())) > 5


def test_math_lengths():
    single = make_batch("math", 20, digits=1, seed=0)
    assert single.inputs["tape"].shape == (20, 1)
    assert torch.equal(single.target, single.symbols["tape"][:, 0])
    assert make_batch("math", 3, digits=16, seed=0).inputs["tape"].shape == (3, 31)


@pytest.mark.parametrize("task", ["add2x2:right", "apply2x2:left", "math"])
def test_perceptual_images_show_their_symbols(task):
    symbolic = make_batch(task, 64, digits=3, seed=5)
    batch = make_batch(task, 64, digits=3, seed=5, perceptual=True, split="test")
    name = "tape" if task == "math" else "grid"
    symbols = batch.symbols[name]
    assert torch.equal(symbols, symbolic.symbols[name]) and torch.equal(batch.target, symbolic.target)
    images = batch.inputs[name]
    assert images.shape == (*symbols.shape, 28, 28) and images.dtype == torch.float32
    if task.startswith("apply2x2"):
        assert torch.equal(batch.inputs["ints"], symbolic.inputs["ints"])

    mnist_images, mnist_labels = load_mnist(None, train=False)
    ops = load_operators()
    classes_of = {}  # test-set image bytes -> symbol ids it is an image of
    for image, symbol in zip(np.concatenate([mnist_images, ops.x_test]),
                             np.concatenate([mnist_labels, 10 + ops.y_test]).tolist()):
        classes_of.setdefault(image.tobytes(), set()).add(symbol)
    pixels = (images.numpy() * 255).round().astype(np.uint8).reshape(-1, 28, 28)
    for image, symbol in zip(pixels, symbols.reshape(-1).tolist()):
        assert symbol in classes_of.get(image.tobytes(), set())


def test_symbolic_mode_needs_no_data(monkeypatch, tmp_path):
    monkeypatch.setenv("NTPT_DATA_DIR", str(tmp_path))
    for task in TASKS:
        for split in SPLITS:
            assert len(make_batch(task, 8, split=split, digits=3)) == 8
    with pytest.raises(DataError, match=re.escape(str(tmp_path))):
        make_batch("math", 8, perceptual=True)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="'add3x3'.*math"):
        make_batch("add3x3", 4)
    with pytest.raises(ValueError, match="'dev'.*train, val, test"):
        make_batch("math", 4, split="dev")
    with pytest.raises(ValueError, match="digits.*0"):
        make_batch("math", 4, digits=0)
    with pytest.raises(ValueError, match="'dev'"):
        SymbolPools.load(None, "dev")


def test_ensure_operators_downloads_checks_and_writes_atomically(tmp_path):
    """The download path, fed from a local file:// URL (no network in tests)."""
    from ntpt_ray.data import ensure_operators

    source = data_dir() / "operators" / ZIP_NAME
    target = ensure_operators(tmp_path, download=True, url=source.resolve().as_uri())
    assert target == tmp_path / "operators" / "mdas_symbols_v1.zip"
    assert target.read_bytes() == source.read_bytes()
    assert not list(target.parent.glob("*.part"))
    corrupt = tmp_path / "bad.zip"
    corrupt.write_bytes(b"not the zip")
    with pytest.raises(DataError, match="sha256"):
        ensure_operators(tmp_path / "other", download=True, url=corrupt.as_uri())
    with pytest.raises(DataError, match="ntpt data --download"):
        ensure_operators(tmp_path / "empty")
