"""Image pools of the 14 symbols (digits 0-9 = ids 0..9, operators + - × ÷ = ids 10..13) per split.

The splits never share an image: 'train' and 'val' divide MNIST's training set (50,000 / 10,000
after a seeded permutation) and the operator train split (by handwritten original, ~15% of
the originals of each class to 'val'); 'test' is MNIST's test set and the operator test split.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from . import paths
from .mnist import load_mnist
from .operators import load_operators

SYMBOLS = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "+", "-", "×", "÷")
OPERATOR_OFFSET = 10  # symbol id of operator k is OPERATOR_OFFSET + k
NET_SYMBOLS = {"net_0": (0, 10), "net_1": (10, 14)}
"""The symbol ids each library net classifies: net_0 digits, net_1 operators."""
SPLITS = ("train", "val", "test")
MNIST_TRAIN_SIZE = 50_000  # the rest of MNIST's training set is 'val'
OPERATOR_VAL_FRACTION = 0.15
SPLIT_SEED = 0


def check_split(split: str) -> None:
    """Raise ValueError unless ``split`` is one of :data:`SPLITS`."""
    if split not in SPLITS:
        raise ValueError(f"unknown split '{split}'; known: {', '.join(SPLITS)}")


@dataclass(frozen=True)
class SymbolPools:
    """The images of one split, ordered by symbol id.

    ``origin[i]`` is the row of ``images[i]`` in its source: MNIST's train or test arrays for
    digits (:func:`load_mnist`), the operator split's ``x_train`` or ``x_test`` for operators.
    """

    split: str
    images: np.ndarray  # uint8 [M, 28, 28]
    symbols: np.ndarray  # int64 [M], sorted
    origin: np.ndarray  # int64 [M]

    @classmethod
    def load(cls, data_dir: str | Path | None = None, split: str = "train") -> SymbolPools:
        """The pools of ``split`` ('train' | 'val' | 'test'), built once per process."""
        check_split(split)
        return _load(paths.data_dir(data_dir).resolve(), split)

    @cached_property
    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        counts = np.bincount(self.symbols, minlength=len(SYMBOLS))
        return np.cumsum(counts) - counts, counts

    def sample_indices(self, symbol_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Rows of :attr:`images` holding one uniformly drawn image of each requested symbol."""
        starts, counts = self._bounds
        ids = np.asarray(symbol_ids, dtype=np.int64)
        return starts[ids] + rng.integers(counts[ids])

    def sample(self, symbol_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Float32 images in [0, 1], shape ``[*symbol_ids.shape, 28, 28]``, one per requested symbol."""
        return self.images[self.sample_indices(symbol_ids, rng)].astype(np.float32) / 255.0


@lru_cache(maxsize=None)
def _load(root: Path, split: str) -> SymbolPools:
    digits, digit_labels = load_mnist(root, train=split != "test")
    digit_rows = np.arange(len(digits))
    if split != "test":
        permuted = np.random.default_rng(SPLIT_SEED).permutation(len(digits))
        digit_rows = permuted[:MNIST_TRAIN_SIZE] if split == "train" else permuted[MNIST_TRAIN_SIZE:]

    ops = load_operators(root)
    op_images, op_labels, op_groups = ((ops.x_test, ops.y_test, ops.group_test) if split == "test"
                                       else (ops.x_train, ops.y_train, ops.group_train))
    op_rows = np.arange(len(op_images))
    if split != "test":
        in_val = np.isin(op_groups, _val_groups(op_labels, op_groups))
        op_rows = op_rows[in_val if split == "val" else ~in_val]

    images = np.concatenate([digits[digit_rows], op_images[op_rows]])
    symbols = np.concatenate([digit_labels[digit_rows], OPERATOR_OFFSET + op_labels[op_rows]])
    origin = np.concatenate([digit_rows, op_rows])
    order = np.argsort(symbols, kind="stable")
    return SymbolPools(split, images[order], symbols[order], origin[order])


def _val_groups(labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """About 15% of the groups of each operator class, drawn with a fixed seed."""
    rng = np.random.default_rng(SPLIT_SEED)
    chosen = []
    for c in np.unique(labels):
        class_groups = np.unique(groups[labels == c])
        chosen.append(rng.permutation(class_groups)[:round(OPERATOR_VAL_FRACTION * len(class_groups))])
    return np.concatenate(chosen)
