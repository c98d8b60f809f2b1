"""Fixed example pools of the lifelong experiment: the paper's low-data regime.

Each task gets, once per experiment, ``train_size`` distinct training grids (MNIST-train digits
and the operators' train split; APPLY2X2 grids fix their d1..d3), ``val_size`` validation grids
from held-out training images (for choosing learning rates and decoding programs) and
``test_size`` test grids from test images. A pool stores rows into the split's image pool
(:class:`~ntpt_ray.data.symbols.SymbolPools`), not the images themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.symbols import SymbolPools
from ..data.tasks import make_batch
from .batch import N_AUX, GridBatch


@dataclass(frozen=True)
class GridPool:
    """``rows [N, 4]`` into ``SymbolPools(split).images``, the symbols behind them, d1..d3 and answers."""

    task: str
    split: str
    rows: np.ndarray
    symbols: np.ndarray
    ints: np.ndarray
    target: np.ndarray
    data_dir: str | None = None

    def __len__(self) -> int:
        return len(self.target)

    def batch(self, index: np.ndarray | slice) -> GridBatch:
        """The grids at ``index`` with their images (float32 in [0, 1])."""
        images = SymbolPools.load(self.data_dir, self.split).images[self.rows[index]]
        return GridBatch(torch.from_numpy(images.astype(np.float32) / 255.0),
                         torch.from_numpy(self.symbols[index]), torch.from_numpy(self.ints[index]),
                         torch.from_numpy(self.target[index]))

    def sample(self, n: int, rng: np.random.Generator) -> GridBatch:
        """``n`` grids drawn uniformly with replacement (a training batch)."""
        return self.batch(rng.integers(len(self), size=n))

    def chunks(self, size: int, limit: int | None = None):
        """The first ``limit`` grids (default all) in batches of ``size``."""
        end = len(self) if limit is None else min(limit, len(self))
        for start in range(0, end, size):
            yield self.batch(slice(start, min(start + size, end)))


def make_pool(task: str, n: int, split: str, seed: int, data_dir: str | None = None) -> GridPool:
    """``n`` distinct grids of ``task`` from ``split``'s images (distinct: no two share all four
    images and d1..d3)."""
    rng = np.random.default_rng(seed)
    images = SymbolPools.load(data_dir, split)
    rows, symbols, ints, target = [], [], [], []
    seen: set[bytes] = set()
    while len(seen) < n:
        drawn = make_batch(task, 2 * (n - len(seen)) + 16, seed=rng)
        grid = drawn.inputs["grid"].numpy()
        aux = drawn.inputs["ints"].numpy() if "ints" in drawn.inputs else np.zeros((len(grid), N_AUX), np.int64)
        picked = images.sample_indices(grid, rng)
        for i in range(len(grid)):
            key = picked[i].tobytes() + aux[i].tobytes()
            if key in seen or len(seen) == n:
                continue
            seen.add(key)
            rows.append(picked[i])
            symbols.append(grid[i])
            ints.append(aux[i])
            target.append(drawn.target[i].item())
    return GridPool(task, split, np.stack(rows), np.stack(symbols), np.stack(ints),
                    np.asarray(target, np.int64), None if data_dir is None else str(data_dir))


@dataclass(frozen=True)
class TaskPools:
    """The train, validation and test pools of every task, in lifetime order."""

    tasks: tuple[str, ...]
    train: tuple[GridPool, ...]
    val: tuple[GridPool, ...]
    test: tuple[GridPool, ...]

    @classmethod
    def build(cls, tasks: tuple[str, ...], *, train_size: int, val_size: int, test_size: int,
              seed: int = 0, data_dir: str | None = None) -> TaskPools:
        def pools(split: str, size: int, offset: int) -> tuple[GridPool, ...]:
            return tuple(make_pool(task, size, split, seed * 1009 + offset + k, data_dir)
                         for k, task in enumerate(tasks))

        return cls(tasks, pools("train", train_size, 0), pools("val", val_size, 100), pools("test", test_size, 200))
