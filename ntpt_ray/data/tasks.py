"""Task generators: ADD2X2, APPLY2X2 (four variants each) and MATH, symbolic or perceptual.

Arithmetic is modulo 19 with ops 0 '+', 1 '-', 2 '×', 3 '÷' (floor division, x ÷ 0 = 18).
Grid cells are 0 1 / 2 3. Symbols are drawn first and images last from the same generator, so
a symbolic and a perceptual batch with one seed hold the same symbols and targets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .symbols import OPERATOR_OFFSET, SymbolPools, check_split

TASKS = ("add2x2:top", "add2x2:left", "add2x2:bottom", "add2x2:right",
         "apply2x2:top", "apply2x2:left", "apply2x2:bottom", "apply2x2:right", "math")
MOD = 19
LINES = {"top": (0, 1), "left": (0, 2), "bottom": (2, 3), "right": (1, 3)}  # grid cells read, in order
Example = tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]  # symbol ids, other inputs, target


def apply_op(a, b, op) -> np.ndarray:
    """``a op b`` modulo 19, elementwise (int64); ``a ÷ 0`` is 18."""
    a, b, op = np.broadcast_arrays(*(np.asarray(v, dtype=np.int64) for v in (a, b, op)))
    quotient = np.where(b == 0, MOD - 1, a // np.where(b == 0, 1, b))
    return np.choose(op, [a + b, a - b, a * b, quotient]) % MOD


# apply_op of every operator and pair of operands in 0..18: the generators' results, one lookup
_APPLY = apply_op(np.arange(MOD)[None, :, None], np.arange(MOD)[None, None, :], np.arange(4)[:, None, None])


@dataclass(frozen=True)
class TaskBatch:
    """A batch of examples: model inputs, the ground-truth symbols behind them, and the targets."""

    inputs: dict[str, torch.Tensor]  # model Input name -> tensor
    symbols: dict[str, torch.Tensor]  # symbol ids [B, cells] of each perceptual input, same key
    target: torch.Tensor  # [B] int64 in 0..18

    def __len__(self) -> int:
        return len(self.target)


def make_batch(task: str, n: int, *, split: str = "train", perceptual: bool = False,
               digits: int = 2, seed: int | np.random.Generator = 0,
               data_dir: str | Path | None = None) -> TaskBatch:
    """``n`` random examples of ``task`` (one of :data:`TASKS`).

    2x2 tasks have input "grid" (APPLY2X2 also "ints": d1, d2, d3 in 0..9); MATH has "tape",
    ``digits`` digits interleaved with operators. Symbolic inputs are int64 symbol ids and need
    no data files; perceptual ones are float32 images ``[..., 28, 28]`` from ``split``'s pools.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task '{task}'; known: {', '.join(TASKS)}")
    check_split(split)
    if isinstance(digits, bool) or not isinstance(digits, (int, np.integer)) or digits < 1:
        raise ValueError(f"digits must be an integer >= 1, got {digits!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    name, draw, compute = _generator(task, digits)
    symbols, extra, target = compute(*draw(n, rng))
    shown = SymbolPools.load(data_dir, split).sample(symbols, rng) if perceptual else symbols
    inputs = {name: torch.from_numpy(shown), **{k: torch.from_numpy(v) for k, v in extra.items()}}
    return TaskBatch(inputs, {name: torch.from_numpy(symbols)}, torch.from_numpy(target))


def make_batches(task: str, n: int, rngs: list[np.random.Generator], *, digits: int = 2) -> TaskBatch:
    """``make_batch(task, n, digits=digits, seed=rng)`` (symbolic) of each of ``rngs``, stacked:
    every tensor ``[len(rngs), n, ...]``. The same examples, each generator drawn as
    ``make_batch`` draws it, their symbols and targets then computed at once."""
    name, draw, compute = _generator(task, digits)
    per_rng = [draw(n, rng) for rng in rngs]
    draws = [np.stack(arrays).reshape(-1, *arrays[0].shape[1:]) for arrays in zip(*per_rng)]
    symbols, extra, target = compute(*draws)
    stacked = {name: symbols, **extra}
    inputs = {k: torch.from_numpy(v.reshape(len(rngs), n, *v.shape[1:])) for k, v in stacked.items()}
    return TaskBatch(inputs, {name: inputs[name]}, torch.from_numpy(target.reshape(len(rngs), n)))


def _generator(task: str, digits: int) -> tuple[str, Callable, Callable[..., Example]]:
    """``task``'s input name, what it draws from a generator for ``n`` examples (``draw(n,
    rng)``), and the examples those draws make (``compute(*draws)``, row by row)."""
    family, _, line = task.partition(":")
    if family == "math":
        return "tape", lambda n, rng: _math_draws(n, digits, rng), _math_of
    cells = LINES[line]
    if family == "add2x2":
        return "grid", _add2x2_draws, lambda grid: _add2x2_of(grid, cells)
    return "grid", _apply2x2_draws, lambda ops, ints: _apply2x2_of(ops, ints, cells)


def _add2x2_draws(n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    return (rng.integers(0, 10, (n, 4)),)


def _add2x2_of(grid: np.ndarray, cells: tuple[int, int]) -> Example:
    return grid, {}, (grid[:, cells[0]] + grid[:, cells[1]]) % MOD


def _apply2x2_draws(n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    ops = rng.integers(0, 4, (n, 4))
    return ops, rng.integers(0, 10, (n, 3))


def _apply2x2_of(ops: np.ndarray, ints: np.ndarray, cells: tuple[int, int]) -> Example:
    first = _APPLY[ops[:, cells[0]], ints[:, 0], ints[:, 1]]
    return OPERATOR_OFFSET + ops, {"ints": ints}, _APPLY[ops[:, cells[1]], first, ints[:, 2]]


def _math_draws(n: int, digits: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    numbers = rng.integers(0, 10, (n, digits))
    return numbers, rng.integers(0, 4, (n, digits - 1))


def _math_of(numbers: np.ndarray, ops: np.ndarray) -> Example:
    n, digits = numbers.shape
    tape = np.empty((n, 2 * digits - 1), np.int64)
    tape[:, 0::2] = numbers
    tape[:, 1::2] = OPERATOR_OFFSET + ops
    target = numbers[:, 0]
    for k in range(digits - 1):
        target = _APPLY[ops[:, k], target, numbers[:, k + 1]]
    return tape, {}, target
