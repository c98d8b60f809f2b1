"""The space of distinct programs of a model: what random and exhaustive search draw from.

Two programs that differ only in Param elements neither reads are one program (the guard
analysis of :mod:`ntpt_ray.lang.relevance`); its *canonical* form sets every unread element to
0. The space is split into blocks, one per canonical assignment of the *guard elements* (the
Param elements some read is guarded by); inside a block the elements it reads vary freely, so
the block is a mixed-radix range and the whole space a fixed order ``0 .. size - 1`` in which
each distinct program has exactly one index.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping

import numpy as np

from ..lang.ir import Slot
from ..lang.model import CompiledModel
from ..lang.relevance import Guard, relevant_mask

MAX_BLOCKS = 1 << 20  # guard-element assignments enumerated up front


class ProgramSpace:
    """The distinct programs of ``model`` under ``guards`` (see the module docstring)."""

    def __init__(self, model: CompiledModel, guards: Mapping[Slot, set[Guard]]):
        self.guards = guards
        self.shapes = {name: decl.shape for name, decl in model.params.items()}
        self.ranges = {name: decl.size for name, decl in model.params.items()}
        self.elements = [slot for decl in model.params.values() for slot in decl.slots()]
        self.sizes = {slot: model.params[slot[0]].size for slot in self.elements}
        guard_elements = {s for found in guards.values() for guard in found for s, _ in guard}
        self.guard_elements = [s for s in self.elements if s in guard_elements]
        radix = [self.sizes[s] for s in self.guard_elements]
        count = int(np.prod(radix, dtype=np.int64)) if radix else 1
        if count > MAX_BLOCKS:
            raise ValueError(f"{count} assignments of the {len(radix)} guard elements: too many to "
                             f"enumerate (at most {MAX_BLOCKS})")
        digits = _digits(np.arange(count, dtype=np.int64), radix)
        heads = self._fill({s: digits[:, k] for k, s in enumerate(self.guard_elements)}, count)
        read = relevant_mask(guards, heads)
        canonical = np.ones(count, dtype=bool)
        for k, (name, index) in enumerate(self.guard_elements):
            canonical &= read[name][(slice(None), *index)] | (digits[:, k] == 0)
        keep = np.flatnonzero(canonical)
        self.block_heads = {name: v[keep] for name, v in heads.items()}
        others = [s for s in self.elements if s not in guard_elements]
        self.block_free = [[s for s in others if read[s[0]][(k, *s[1])]] for k in keep]
        self.block_starts = [0]  # Python integers: a space may exceed 2**63
        for free in self.block_free:
            self.block_starts.append(self.block_starts[-1] + math.prod(self.sizes[s] for s in free))
        self.size = self.block_starts[-1]

    def _fill(self, values: Mapping[Slot, np.ndarray], count: int) -> dict[str, np.ndarray]:
        out = {name: np.zeros((count, *shape), dtype=np.int64) for name, shape in self.shapes.items()}
        for (name, index), v in values.items():
            out[name][(slice(None), *index)] = v
        return out

    def programs(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """The programs of indices ``start .. stop - 1`` (clipped to the space), in order."""
        stop = min(stop, self.size)
        parts = []
        index = start
        while index < stop:
            block = bisect.bisect_right(self.block_starts, index) - 1
            base = self.block_starts[block]
            end = min(stop, self.block_starts[block + 1])
            offsets = np.arange(index - base, end - base, dtype=np.int64)
            free = self.block_free[block]
            digits = _digits(offsets, [self.sizes[s] for s in free])
            chunk = {name: np.repeat(v[block:block + 1], len(offsets), axis=0)
                     for name, v in self.block_heads.items()}
            for k, (name, idx) in enumerate(free):
                chunk[name][(slice(None), *idx)] = digits[:, k]
            parts.append(chunk)
            index = end
        if not parts:
            return self._fill({}, 0)
        return {name: np.concatenate([p[name] for p in parts]) for name in self.shapes}

    def sample(self, count: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``count`` uniform draws of whole assignments, each made canonical (unread elements 0),
        duplicates within the draw removed."""
        drawn = {name: rng.integers(0, self.ranges[name], size=(count, *shape))
                 for name, shape in self.shapes.items()}
        return unique(self.canonical(drawn))

    def canonical(self, programs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``programs`` with every element a program does not read set to 0."""
        read = relevant_mask(self.guards, programs)
        return {name: np.where(read[name], v, 0) for name, v in programs.items()}


def unique(programs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The distinct rows of ``programs``, in order of first appearance."""
    count = len(next(iter(programs.values())))
    keys = np.concatenate([v.reshape(count, -1) for v in programs.values()], axis=1)
    _, first = np.unique(keys, axis=0, return_index=True)
    first.sort()
    return {name: v[first] for name, v in programs.items()}


def program_keys(programs: Mapping[str, np.ndarray]) -> list[bytes]:
    """One hashable key per program (row)."""
    count = len(next(iter(programs.values())))
    keys = np.ascontiguousarray(np.concatenate([v.reshape(count, -1) for v in programs.values()], axis=1))
    return [row.tobytes() for row in keys]


def _digits(values: np.ndarray, radix: list[int]) -> np.ndarray:
    """Mixed-radix digits ``[len(values), len(radix)]`` (the last digit varies fastest)."""
    out = np.zeros((len(values), len(radix)), dtype=np.int64)
    rest = values.copy()
    for k in range(len(radix) - 1, -1, -1):
        rest, out[:, k] = np.divmod(rest, radix[k])
    return out
