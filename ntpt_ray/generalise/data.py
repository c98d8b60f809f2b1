"""The MATH expressions every model of the experiment is trained, validated and tested on.

Test sets are drawn in chunks, each from its own seed, so every model (NTPT, the LSTMs, the
Neural GPU) is scored on the same expressions of each length, symbols or images alike.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..data.tasks import TaskBatch, make_batch

CHUNK = 250  # test expressions per batch (a 16-digit image batch is 250 x 31 x 28 x 28 floats)


def test_batches(length: int, examples: int, *, seed: int, perceptual: bool,
                 data_dir: str | None = None) -> Iterator[TaskBatch]:
    """``examples`` test expressions of ``length`` digits (test images), in chunks."""
    for k, start in enumerate(range(0, examples, CHUNK)):
        yield make_batch("math", min(CHUNK, examples - start), split="test", perceptual=perceptual,
                         digits=length, seed=np.random.default_rng([seed, length, k]), data_dir=data_dir)


def validation_sets(lengths: list[int], size: int, *, perceptual: bool,
                    data_dir: str | None = None) -> list[TaskBatch]:
    """One fixed validation set per training length (held-out training images)."""
    return [make_batch("math", size, split="val", perceptual=perceptual, digits=n,
                       seed=np.random.default_rng([7, n]), data_dir=data_dir) for n in lengths]
