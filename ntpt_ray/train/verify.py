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

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..lang.relevance import param_guards, relevant_mask
from ..library import OracleLibrary
from ..problems import Problem
from ..program import run_programs
from ..tasks import Examples, discrete_correct
from .beam import distinct_programs

VERDICTS = 4096  # programs whose check-set accuracy a Verifier remembers (oldest forgotten first)


@dataclass
class Verification:
    """What decoding and verifying one restart found."""

    verified: bool
    argmax_verified: bool
    rank: int  # beam rank of the chosen program (0 is the argmax)
    val_accuracy: float  # the chosen program's discrete accuracy on the validation examples
    values: dict[str, np.ndarray]
    confidence: dict[str, np.ndarray]
    test_accuracy: dict[str, float] = field(default_factory=dict)  # check set -> accuracy, exact perception
    perceptual_accuracy: dict[str, float] = field(default_factory=dict)  # the learned nets


class Verifier:
    """Holds a problem's validation and check examples and checks decoded programs on them."""

    def __init__(self, problem: Problem, *, val_size: int = 100, test_size: int = 100,
                 seed: int = 0, data_dir=None, max_checked: int = 16, screen_size: int = 16,
                 prescreen_size: int = 1, perceptual_survivors: int = 64, screen_chunk: int = 1024):
        self.problem = problem
        self.screen_chunk = screen_chunk  # symbolic: the best ranks, screened before the rest
        self.perceptual_survivors = perceptual_survivors  # imperfect nets: keep the best few
        self.max_checked = max_checked
        self.screen_size = screen_size
        self.prescreen_size = prescreen_size  # symbolic: a first, cheaper screen of every candidate
        task = problem.task
        self.val = task.validation_sets(val_size, seed=seed, perceptual=problem.perceptual, data_dir=data_dir)
        self.test = task.check_sets(test_size, seed=seed, perceptual=problem.perceptual, data_dir=data_dir)
        model = problem.compile()
        self.oracle = OracleLibrary(model.nets)
        self.guards = param_guards(model)  # what a program reads, on every example set it runs on
        self._verdicts: dict[bytes, dict[str, float]] = {}  # see test_accuracy
        for hypers in task.relevance_hypers():
            if hypers != task.train_hypers:
                for slot, guards in param_guards(problem.compile(hypers)).items():
                    self.guards.setdefault(slot, set()).update(guards)

    def accuracy(self, values: Mapping[str, np.ndarray], examples: Examples, library,
                 symbolic: bool = False) -> np.ndarray:
        """The share ``[P]`` of examples on which each of P programs gets every observed Output right."""
        inputs = examples.symbolic() if symbolic else examples.inputs
        outputs = run_programs(self.problem, values, inputs, hypers=examples.hypers, library=library)
        return discrete_correct(outputs, examples).float().mean(-1).numpy()

    def test_accuracy(self, values: Mapping[str, np.ndarray], *, library=None,
                      stop_on_error: bool = True) -> dict[str, float]:
        """Accuracy of one program (``values[name]``: ``[1, *shape]``) on each check set, in order
        (exact perception unless a library is given); by default stops at the first set with an
        error. With exact perception the answer is remembered for the program's relevant Params
        (restarts often decode the same program; the check sets never change)."""
        key = None
        if library is None and stop_on_error:
            read = relevant_mask(self.guards, values)
            key = b"".join(np.where(read[k], v, -1).astype(np.int64).tobytes()
                           for k, v in sorted(values.items()))
            if key in self._verdicts:
                return dict(self._verdicts[key])
        out = {}
        for examples in self.test:
            out[examples.name] = float(self.accuracy(values, examples, library or self.oracle,
                                                     symbolic=library is None)[0])
            if stop_on_error and out[examples.name] < 1:
                break
        if key is not None:
            if len(self._verdicts) >= VERDICTS:
                self._verdicts.pop(next(iter(self._verdicts)))
            self._verdicts[key] = dict(out)
        return out

    def check(self, probs: Mapping[str, np.ndarray], library, beam: int) -> Verification:
        """Decode one restart (``probs[name]``: ``[*shape, size]``) and verify its best candidates.

        The K candidates are screened on a few validation examples (symbolic tasks: on
        ``prescreen_size``, then ``screen_size``, the best ``screen_chunk`` first); the
        survivors are scored on the whole validation set, then the best verified in rank order,
        ``max_checked`` at most. A symbolic candidate must be right on every screening and
        validation example; the rest of the beam is screened only if none of the first verifies.
        """
        programs, _ = distinct_programs(probs, beam, self.guards)
        symbolic = not self.problem.perceptual
        count = len(next(iter(programs.values())))
        bounds = [0, *([self.screen_chunk] if symbolic and count > self.screen_chunk else []), count]
        tested: dict[int, dict[str, float]] = {}

        def verified(i: int) -> bool:
            if i not in tested:
                tested[i] = self.test_accuracy({k: v[i:i + 1] for k, v in programs.items()})
            return all(a == 1.0 for a in tested[i].values()) and len(tested[i]) == len(self.test)

        kept, scored, chosen, checked = [], [], None, 0
        for start, stop in itertools.pairwise(bounds):
            keep = self._screen(programs, np.arange(start, stop), library)
            if start == 0:
                keep = np.union1d(keep, [0])  # the argmax is always scored
            elif keep.size == 0:
                continue
            val_acc = self._val_accuracy(programs, keep, library)
            kept.append(keep)
            scored.append(val_acc)
            best = 1.0 if symbolic else val_acc.max()
            for i in keep[val_acc == best] if best > 0 else []:
                if checked == self.max_checked:
                    break
                checked += 1
                if verified(int(i)):
                    chosen = int(i)
                    break
            if chosen is not None or checked == self.max_checked:
                break
        keep, val_acc = np.concatenate(kept), np.concatenate(scored)
        argmax_ok = (val_acc[0] == 1 or not symbolic) and verified(0)
        at = int(np.flatnonzero(keep == chosen)[0]) if chosen is not None else int(np.argmax(val_acc))
        i = int(keep[at])
        verified(i)
        values = {k: v[i] for k, v in programs.items()}
        confidence = {k: np.take_along_axis(probs[k], v[..., None], -1)[..., 0]
                      for k, v in values.items()}
        verification = Verification(chosen is not None, bool(argmax_ok), i, float(val_acc[at]), values,
                                    confidence, tested[i])
        if self.problem.perceptual:
            verification.perceptual_accuracy = self.test_accuracy(
                {k: v[None] for k, v in values.items()}, library=library, stop_on_error=False)
        return verification

    def _screen(self, programs: Mapping[str, np.ndarray], keep: np.ndarray, library) -> np.ndarray:
        """The candidates ``keep`` (indices, rank order) that pass the screening examples:
        symbolic, right on every one; perceptual, the ``perceptual_survivors`` best."""
        if self.problem.perceptual:
            screen = self.accuracy({k: v[keep] for k, v in programs.items()},
                                   self.val[0].head(self.screen_size), library)
            return np.sort(keep[np.argsort(-screen, kind="stable")[:self.perceptual_survivors]])
        for size in sorted({min(self.prescreen_size, self.screen_size), self.screen_size}):
            if keep.size == 0:
                break
            screen = self.accuracy({k: v[keep] for k, v in programs.items()}, self.val[0].head(size), library)
            keep = keep[screen == 1]
        return keep

    def _val_accuracy(self, programs: Mapping[str, np.ndarray], keep: np.ndarray, library) -> np.ndarray:
        survivors = {k: v[keep] for k, v in programs.items()}
        return np.mean([self.accuracy(survivors, examples, library) for examples in self.val], axis=0)
