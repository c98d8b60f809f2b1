"""One batch of 2x2 grids as every lifelong learner sees it: images, auxiliary integers, answers."""

from __future__ import annotations

from dataclasses import dataclass

import torch

N_AUX = 3  # APPLY2X2's auxiliary integers d1, d2, d3 (0..9); ADD2X2 has none
N_CLASSES = 19  # answers 0..18 (arithmetic modulo 19)


@dataclass(frozen=True)
class GridBatch:
    """B grids of one task: ``images`` float32 ``[B, 4, 28, 28]`` (cells 0 1 / 2 3), ``symbols``
    int64 ``[B, 4]`` (the symbol ids behind them, for exact perception), ``ints`` int64
    ``[B, 3]`` (APPLY2X2's d1..d3; zeros and unused for ADD2X2), ``target`` int64 ``[B]``."""

    images: torch.Tensor
    symbols: torch.Tensor
    ints: torch.Tensor
    target: torch.Tensor

    def __len__(self) -> int:
        return len(self.target)

    def rows(self, index) -> GridBatch:
        return GridBatch(self.images[index], self.symbols[index], self.ints[index], self.target[index])
