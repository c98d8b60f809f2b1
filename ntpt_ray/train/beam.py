"""Decoding trained Params into whole programs: the argmax, and a beam of the K most probable.

Params are independent categoricals, so the K most probable programs are found exactly by
extending the K best prefixes one Param element at a time (a prefix outside the top K can
never complete a program inside it).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..lang.ir import Slot
from ..lang.relevance import Guard, relevant_mask


def top_programs(probs: Mapping[str, np.ndarray], k: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The ``k`` most probable programs, best first.

    ``probs[name]`` has shape ``[*array_shape, size]`` (one restart). Returns the programs as
    ``{name: [K, *array_shape]}`` integer arrays and their log-probabilities ``[K]``.
    """
    if k < 1:
        raise ValueError(f"the beam width must be >= 1, got {k}")
    elements = [(name, index) for name, p in probs.items() for index in np.ndindex(*p.shape[:-1])]
    scores = np.zeros(1)
    parents, picks = [], []  # per element: each kept prefix's parent row and chosen value
    for name, index in elements:
        logp = np.log(np.clip(probs[name][index], 1e-30, None))
        candidates = (scores[:, None] + logp[None, :]).ravel()
        best = _select(candidates, k, scores.min() + logp.max() if scores.size >= k else None)
        rows, values = np.divmod(best, logp.size)
        parents.append(rows)
        picks.append(values)
        scores = candidates[best]
    return _best_first(probs, elements, parents, picks, scores)


def _best_first(probs, elements, parents, picks, scores) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The beam's programs, best first, followed back from their last element's picks."""
    order = np.argsort(-scores, kind="stable")
    choices = np.empty((len(order), len(elements)), dtype=np.int64)
    row = order
    for column in range(len(elements) - 1, -1, -1):  # follow each program back to its first element
        choices[:, column] = picks[column][row]
        row = parents[column][row]
    programs = {name: np.zeros((len(order), *p.shape[:-1]), dtype=np.int64) for name, p in probs.items()}
    for column, (name, index) in enumerate(elements):
        programs[name][(slice(None), *index)] = choices[:, column]
    return programs, scores[order]


def _select(candidates: np.ndarray, k: int, floor: float | None) -> np.ndarray:
    """The indices (ascending) of the ``k`` best finite candidates. ``floor``, when given, is
    reached by at least k of them (each of k prefixes with its best value): only those above
    it are ranked."""
    if candidates.size <= k or np.count_nonzero(candidates > -np.inf) <= k:
        return np.flatnonzero(candidates > -np.inf)
    if floor is None:
        return _top_indices(candidates, k)
    pool = np.flatnonzero(candidates >= floor)
    return pool[_top_indices(candidates[pool], k)] if pool.size > k else pool


def _top_indices(values: np.ndarray, k: int) -> np.ndarray:
    """The indices of the ``k`` largest ``values``, ascending: in (parent, value) order, so
    ties at the k-th value go to the lowest indices (deterministic, and no sort)."""
    kth = np.partition(values, values.size - k)[values.size - k]
    chosen = values > kth
    ties = np.flatnonzero(values == kth)[:k - int(np.count_nonzero(chosen))]
    chosen[ties] = True
    return np.flatnonzero(chosen)


def argmax_program(probs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The single most probable program ``{name: array_shape}``."""
    return {name: p.argmax(-1) for name, p in probs.items()}


def distinct_programs(probs: Mapping[str, np.ndarray], k: int, guards: Mapping[Slot, set[Guard]],
                      max_oversample: int = 64) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The ``k`` most probable *distinct* programs, best first.

    Programs that differ only in Params they never read (see :mod:`ntpt_ray.lang.relevance`)
    are one program, whose probability is that of the Params it reads, and whose unread Params
    are their argmax. When the elements can be ordered so that every guard is decided before
    the elements it guards, the beam extends each prefix only where the prefix reads the next
    element: exactly the k best distinct programs, at width k. Otherwise the joint beam is
    widened (up to ``max_oversample`` x k) until it holds k distinct programs, duplicates merged.
    """
    order = _guards_first(probs, guards)
    if order is not None:
        return _distinct_beam(probs, k, guards, order)
    width = 8 * k
    while True:
        programs, scores = _merge_unread(probs, top_programs(probs, width)[0], guards)
        if len(scores) >= k or width >= max_oversample * k:
            return {name: v[:k] for name, v in programs.items()}, scores[:k]
        width *= 4


def _guards_first(probs: Mapping[str, np.ndarray], guards: Mapping[Slot, set[Guard]]) -> list[Slot] | None:
    """The Param elements in their order, each moved after the elements its guards test;
    ``None`` if guards test each other in a cycle (or test an element that is not learned)."""
    elements = [(name, tuple(int(i) for i in index)) for name, p in probs.items()
                for index in np.ndindex(*p.shape[:-1])]
    needs = {e: {q for guard in guards.get(e, ()) for q, _ in guard} for e in elements}
    if not set().union(*needs.values()) <= set(elements):
        return None
    placed: list[Slot] = []
    done: set[Slot] = set()
    while len(placed) < len(elements):
        ready = [e for e in elements if e not in done and needs[e] <= done]
        if not ready:
            return None
        placed.extend(ready)
        done.update(ready)
    return placed


def _distinct_beam(probs, k: int, guards, elements: list[Slot]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The beam over distinct programs: a prefix that does not read an element (its guards
    fail on the prefix's values) takes the element's argmax at no cost, once."""
    tested = {q for e in elements for guard in guards.get(e, ()) for q, _ in guard}
    values_of: dict[Slot, np.ndarray] = {}  # each kept prefix's value of each tested element
    scores = np.zeros(1)
    parents, picks = [], []
    for slot in elements:
        name, index = slot
        logp = np.log(np.clip(probs[name][index], 1e-30, None))
        reads = _reads(guards.get(slot, ()), values_of, scores.size)
        if reads.all():
            extension, floor = logp[None, :], logp.max()
        else:
            unread = np.full(logp.size, -np.inf)
            unread[int(np.argmax(logp))] = 0.0
            extension = np.where(reads[:, None], logp[None, :], unread[None, :])
            floor = min(logp.max(), 0.0) if reads.any() else 0.0
        candidates = (scores[:, None] + extension).ravel()
        best = _select(candidates, k, scores.min() + floor if scores.size >= k else None)
        rows, values = np.divmod(best, logp.size)
        parents.append(rows)
        picks.append(values)
        scores = candidates[best]
        values_of = {q: v[rows] for q, v in values_of.items()}
        if slot in tested:
            values_of[slot] = values
    return _best_first(probs, elements, parents, picks, scores)


def _reads(slot_guards, values_of: Mapping[Slot, np.ndarray], rows: int) -> np.ndarray:
    """Whether each of ``rows`` prefixes reads an element with guards ``slot_guards``."""
    read = np.zeros(rows, dtype=bool)
    for guard in slot_guards:
        holds = np.ones(rows, dtype=bool)
        for q, allowed in guard:
            holds &= np.asarray(allowed)[values_of[q]]
        read |= holds
    return read


def _merge_unread(probs, programs, guards):
    relevant = relevant_mask(guards, programs)
    best = argmax_program(probs)
    count = len(next(iter(programs.values())))
    score = np.zeros(count)
    keys = []
    for name, values in programs.items():
        logp = np.log(np.clip(probs[name], 1e-30, None)).reshape(-1, probs[name].shape[-1])
        flat = values.reshape(count, -1)
        chosen = logp[np.arange(flat.shape[1]), flat]  # [count, elements]
        score += (chosen * relevant[name].reshape(count, -1)).sum(1)
        keys.append(np.where(relevant[name], values, -1).reshape(count, -1))
        programs[name] = np.where(relevant[name], values, best[name])
    _, first = np.unique(_row_keys(keys, [probs[name].shape[-1] for name in programs]),
                         axis=0, return_index=True)
    keep = first[np.argsort(-score[first], kind="stable")]
    return {name: v[keep] for name, v in programs.items()}, score[keep]


def _row_keys(keys: list[np.ndarray], sizes: list[int]) -> np.ndarray:
    """One exact key per row of the ``[N, columns]`` blocks ``keys`` (values -1..size-1): a
    mixed-radix int64 when the space fits (a 1-D sort), else the rows themselves."""
    radix = 1
    for block, size in zip(keys, sizes):
        radix *= (size + 1) ** block.shape[1]
    if radix >= 2 ** 63:
        return np.concatenate(keys, axis=1)
    code = np.zeros(len(keys[0]), dtype=np.int64)
    for block, size in zip(keys, sizes):
        for column in block.T:
            code = code * (size + 1) + (column + 1)
    return code
