"""The exact expected accuracy of a verified MATH program on images, given its nets' confusions.

A verified program computes the reference answer of the symbols it *perceives*: digits read by
``net_0``, operators by ``net_1``, each image's label drawn independently from its class's row of
the net's confusion matrix on the test images (test expressions draw each image uniformly from
its class's test pool, so this is exact for them). The answer is right when the perceived
expression has the true one's value, which a misread digit does not always change (``x 0``,
floor division, the modulus erase errors). A forward pass over the joint distribution of the
(true, perceived) running values, 19 x 19 states, gives the accuracy at every length at once.
"""

from __future__ import annotations

import numpy as np

from ..data.tasks import MOD, apply_op


def confusion(true: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Row-normalised confusion matrix ``[classes, classes]``: ``P(predicted j | true i)``."""
    counts = np.zeros((classes, classes))
    np.add.at(counts, (np.asarray(true), np.asarray(predicted)), 1)
    totals = counts.sum(1, keepdims=True)
    if (totals == 0).any():
        raise ValueError(f"classes {np.flatnonzero(totals[:, 0] == 0).tolist()} have no examples")
    return counts / totals


def expected_accuracy(digits: np.ndarray, operators: np.ndarray, max_length: int) -> dict[int, float]:
    """``{n: P(right)}`` for n = 1..max_length digits, uniformly random digits and operators,
    with confusion matrices ``digits`` [10, 10] (net_0) and ``operators`` [4, 4] (net_1)."""
    digits, operators = np.asarray(digits, float), np.asarray(operators, float)
    nd, no = len(digits), len(operators)
    table = apply_op(np.arange(MOD)[:, None, None], np.arange(nd)[None, :, None],
                     np.arange(no)[None, None, :])  # [19, 10, 4]: value op digit
    joint = np.zeros((MOD, MOD))  # P(true running value, perceived running value)
    joint[:nd, :nd] = digits / nd
    out = {1: float(np.trace(joint))}
    for n in range(2, max_length + 1):
        new = np.zeros_like(joint)
        for op in range(no):
            for seen_op in range(no):
                p_op = operators[op, seen_op] / no
                if p_op == 0:
                    continue
                for d in range(nd):
                    for e in range(nd):
                        p = p_op * digits[d, e] / nd
                        if p == 0:
                            continue
                        # every (v, w) moves to (table[v, d, op], table[w, e, seen_op])
                        np.add.at(new, (table[:, d, op][:, None], table[:, e, seen_op][None, :]), p * joint)
        joint = new
        out[n] = float(np.trace(joint))
    return out
