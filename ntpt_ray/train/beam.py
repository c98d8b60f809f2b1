"""Decoding trained Params into whole programs: the argmax, and a beam of the K most probable.

Params are independent categoricals, so the K most probable programs are found exactly by
extending the K best prefixes one Param element at a time (a prefix outside the top K can
never complete a program inside it).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


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
