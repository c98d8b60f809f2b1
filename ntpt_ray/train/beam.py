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
    choices = np.zeros((1, len(elements)), dtype=np.int64)
    for column, (name, index) in enumerate(elements):
        logp = np.log(np.clip(probs[name][index], 1e-30, None))
        candidates = (scores[:, None] + logp[None, :]).ravel()
        keep = min(k, candidates.size)
        best = np.argpartition(-candidates, keep - 1)[:keep]
        best = best[np.argsort(-candidates[best], kind="stable")]
        rows, values = np.divmod(best, logp.size)
        choices = choices[rows]
        choices[:, column] = values
        scores = candidates[best]
    programs = {name: np.zeros((len(scores), *p.shape[:-1]), dtype=np.int64) for name, p in probs.items()}
    for column, (name, index) in enumerate(elements):
        programs[name][(slice(None), *index)] = choices[:, column]
    return programs, scores


def argmax_program(probs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The single most probable program ``{name: array_shape}``."""
    return {name: p.argmax(-1) for name, p in probs.items()}


def distinct_programs(probs: Mapping[str, np.ndarray], k: int, guards: Mapping[Slot, set[Guard]],
                      max_oversample: int = 64) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The ``k`` most probable *distinct* programs, best first.

    Programs that differ only in Params they never read (see :mod:`ntpt_ray.lang.relevance`)
    are one program, whose probability is that of the Params it reads. The joint beam is
    widened (up to ``max_oversample`` x k) until it holds k distinct programs; each program's
    unread Params are set to their argmax, duplicates merged, and the distinct programs ranked
    by the probability of what they read.
    """
    width = 8 * k
    while True:
        programs, scores = _merge_unread(probs, top_programs(probs, width)[0], guards)
        if len(scores) >= k or width >= max_oversample * k:
            return {name: v[:k] for name, v in programs.items()}, scores[:k]
        width *= 4


def _merge_unread(probs, programs, guards):
    relevant = relevant_mask(guards, programs)
    best = argmax_program(probs)
    count = len(next(iter(programs.values())))
    score = np.zeros(count)
    keys = []
    for name, values in programs.items():
        chosen = np.take_along_axis(np.broadcast_to(probs[name], (count, *probs[name].shape)),
                                    values[..., None], -1)[..., 0]
        score += (np.log(np.clip(chosen, 1e-30, None)) * relevant[name]).reshape(count, -1).sum(1)
        keys.append(np.where(relevant[name], values, -1).reshape(count, -1))
        programs[name] = np.where(relevant[name], values, best[name])
    _, first = np.unique(np.concatenate(keys, axis=1), axis=0, return_index=True)
    keep = first[np.argsort(-score[first], kind="stable")]
    return {name: v[keep] for name, v in programs.items()}, score[keep]
