"""Verification: decode a restart's Params into candidate programs and check them discretely.

Decoding: the K most probable distinct programs (a beam over the Params in which programs that
differ only in Params they never read count once). Stage 1 (selection, weak supervision only):
every candidate runs on a few validation examples with the restart's own nets, the survivors
on the whole validation set; the best-scoring ones (ties broken by beam rank) go on. Stage 2
(verification): a candidate is *verified* when, with exact perception of the symbols, it is
right on every held-out test example at every test length (for MATH, expressions far longer
than those trained on).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from ..data.tasks import TaskBatch
from ..lang.relevance import param_guards
from ..library import OracleLibrary
from ..program import run_programs
from ..problems import Problem
from .beam import distinct_programs


@dataclass
class Verification:
    """What decoding and verifying one restart found."""

    verified: bool
    argmax_verified: bool
    rank: int  # beam rank of the chosen program (0 is the argmax)
    val_accuracy: float  # the chosen program's discrete accuracy on the validation examples
    values: dict[str, np.ndarray]
    confidence: dict[str, np.ndarray]
    test_accuracy: dict[int, float] = field(default_factory=dict)  # exact perception
    perceptual_accuracy: dict[int, float] = field(default_factory=dict)  # the learned nets


class Verifier:
    """Holds a problem's validation and test examples and checks decoded programs on them."""

    def __init__(self, problem: Problem, *, val_size: int = 100, test_size: int = 100,
                 seed: int = 0, data_dir=None, max_checked: int = 16, screen_size: int = 16,
                 perceptual_survivors: int = 64):
        self.problem = problem
        self.perceptual_survivors = perceptual_survivors  # imperfect nets: keep the best few
        self.max_checked = max_checked
        self.screen_size = screen_size
        self.val = {n: problem.batch(val_size, length=n, split="val", seed=seed + n, data_dir=data_dir)
                    for n in problem.val_lengths}
        self.test = {n: problem.batch(test_size, length=n, split="test", seed=seed + 100 + n,
                                      data_dir=data_dir) for n in problem.test_lengths}
        model = problem.compile(problem.train_lengths[0])
        self.oracle = OracleLibrary(model.nets)
        self.guards = param_guards(model)  # what a program reads, at every length it is run on
        for length in {*problem.val_lengths, max(problem.test_lengths)}:
            for slot, guards in param_guards(problem.compile(length)).items():
                self.guards.setdefault(slot, set()).update(guards)

    def accuracy(self, values: Mapping[str, np.ndarray], batch: TaskBatch, length: int, library,
                 symbolic: bool = False) -> np.ndarray:
        """The accuracy ``[P]`` of P programs on one batch."""
        inputs = _symbolic(batch) if symbolic else batch.inputs
        results = run_programs(self.problem, values, inputs, length=length, library=library)
        return (results == batch.target[None]).float().mean(1).numpy()

    def test_accuracy(self, values: Mapping[str, np.ndarray], *, library=None,
                      stop_on_error: bool = True) -> dict[int, float]:
        """Accuracy of one program per test length, shortest first (exact perception unless a
        library is given); by default stops at the first length with an error."""
        out = {}
        for length, batch in self.test.items():
            out[length] = float(self.accuracy(values, batch, length, library or self.oracle,
                                              symbolic=library is None)[0])
            if stop_on_error and out[length] < 1:
                break
        return out

    def check(self, probs: Mapping[str, np.ndarray], library, beam: int) -> Verification:
        """Decode one restart (``probs[name]``: ``[*shape, size]``) and verify its best candidates.

        All K candidates are first screened on a few validation examples; the survivors are
        scored on the whole validation set, then verified best first.
        """
        programs, _ = distinct_programs(probs, beam, self.guards)
        symbolic = not self.problem.perceptual
        first = self.problem.val_lengths[0]
        screen = self.accuracy(programs, _head(self.val[first], self.screen_size), first, library)
        keep = (np.flatnonzero(screen == 1) if symbolic
                else np.argsort(-screen, kind="stable")[:self.perceptual_survivors])
        keep = np.union1d(keep, [0])  # the argmax is always scored
        survivors = {k: v[keep] for k, v in programs.items()}
        val_acc = np.mean([self.accuracy(survivors, batch, n, library)
                           for n, batch in self.val.items()], axis=0)
        best = val_acc.max()
        order = np.flatnonzero(val_acc == best)[: self.max_checked]
        if best == 0 or (symbolic and best < 1):
            order = []
        tested: dict[int, dict[int, float]] = {}

        def verified(i: int) -> bool:
            if i not in tested:
                tested[i] = self.test_accuracy({k: v[i:i + 1] for k, v in survivors.items()})
            return all(a == 1.0 for a in tested[i].values()) and len(tested[i]) == len(self.test)

        chosen = next((int(i) for i in order if verified(int(i))), None)
        argmax_ok = (val_acc[0] == 1 or not symbolic) and verified(0)
        i = chosen if chosen is not None else int(np.argmax(val_acc))
        verified(i)
        values = {k: v[i] for k, v in survivors.items()}
        confidence = {k: np.take_along_axis(probs[k], v[..., None], -1)[..., 0]
                      for k, v in values.items()}
        verification = Verification(chosen is not None, bool(argmax_ok), int(keep[i]),
                                    float(val_acc[i]), values, confidence, tested[i])
        if self.problem.perceptual:
            verification.perceptual_accuracy = self.test_accuracy(
                {k: v[None] for k, v in values.items()}, library=library, stop_on_error=False)
        return verification


def _head(batch: TaskBatch, n: int) -> TaskBatch:
    return TaskBatch({k: v[:n] for k, v in batch.inputs.items()},
                     {k: v[:n] for k, v in batch.symbols.items()}, batch.target[:n])


def _symbolic(batch: TaskBatch) -> dict[str, torch.Tensor]:
    """The batch's inputs with every perceptual input replaced by its symbol ids."""
    return {**batch.inputs, **batch.symbols}
