"""Screening candidate programs in vectorised batches, then verifying the survivors.

A batch of P programs runs on two validation examples at once (the vectorised discrete
interpreter), the survivors on 16, then on every validation set, and those right on all of them are
verified one by one on the held-out check sets (exact perception), as decoded restarts are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..train.verify import Verifier

SCREENS = (2, 16)  # validation examples of the first screens: most candidates fail the first two
MAX_CHECKED = 16  # candidates of one batch verified on the check sets, at most


@dataclass
class Screened:
    """What one batch's screening found: the first verified program, if any."""

    index: int | None  # its row in the batch
    fitting: int  # candidates right on every validation example
    test_accuracy: dict[str, float] = field(default_factory=dict)  # the verified one's, else the last checked


def screen(verifier: Verifier, programs: Mapping[str, np.ndarray]) -> Screened:
    """Screen a batch ``{name: [P, *shape]}`` and verify its fitting candidates in order."""
    count = len(next(iter(programs.values())))
    if count == 0:
        return Screened(None, 0)
    library = verifier.oracle
    alive = np.arange(count)
    for examples in [*(verifier.val[0].head(n) for n in SCREENS), *verifier.val]:
        if not len(alive):
            break
        subset = {k: v[alive] for k, v in programs.items()}
        alive = alive[verifier.accuracy(subset, examples, library) == 1]
    tested: dict[str, float] = {}
    for i in alive[:MAX_CHECKED]:
        tested = verifier.test_accuracy({k: v[i:i + 1] for k, v in programs.items()})
        if len(tested) == len(verifier.test) and all(a == 1.0 for a in tested.values()):
            return Screened(int(i), len(alive), tested)
    return Screened(None, len(alive), tested)
