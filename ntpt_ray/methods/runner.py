"""A problem's discrete search method: its program space, and its restarts by index and seed."""

from __future__ import annotations

from ..problems import Problem
from ..train.verify import Verifier
from .base import SearchRestart, SearchSettings, check_searchable
from .enumerate import EnumerateRestart
from .random import RandomRestart
from .smt import SmtRestart
from .space import ProgramSpace


class MethodRunner:
    """Makes the restarts of ``settings.method`` for ``problem``; ``verifier`` screens them."""

    def __init__(self, problem: Problem, settings: SearchSettings, verifier: Verifier):
        check_searchable(settings.method, problem.perceptual)
        self.problem, self.settings, self.verifier = problem, settings, verifier
        self.space = ProgramSpace(problem.compile(), verifier.guards)

    def restart(self, restart: int, seed: int, restarts: int) -> SearchRestart:
        """Restart ``restart`` (of ``restarts``, the shard count for enumerate) with ``seed``."""
        method = self.settings.method
        if method == "random":
            return RandomRestart(self.space, self.verifier, seed, self.settings)
        if method == "enumerate":
            return EnumerateRestart(self.space, self.verifier, restart, restarts, self.settings)
        return SmtRestart(self.problem, self.space, self.verifier, seed, self.settings)


_SIZES: dict[int, tuple[Problem, int]] = {}  # id(problem) -> (problem, size): a driver asks twice


def space_size(problem: Problem) -> int:
    """The number of distinct programs of ``problem`` (its check sets' models included)."""
    known = _SIZES.get(id(problem))
    if known is None or known[0] is not problem:
        size = ProgramSpace(problem.compile(), Verifier(problem, val_size=1, test_size=1).guards).size
        known = _SIZES[id(problem)] = (problem, size)
    return known[1]
