"""The paper's nine tasks (ADD2X2 and APPLY2X2 in four variants, MATH) as registered tasks.

Their examples are generated afresh from the symbol generators of :mod:`ntpt_ray.data.tasks`
(one-hot symbols, or MNIST digits and handwritten operators). MATH's example sets differ in
length: trained on 2-digit expressions, validated on 2 and 3, checked on 2 to 16 digits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..data.symbols import OPERATOR_OFFSET
from ..data.tasks import LINES, MOD, TASKS, apply_op, make_batch, make_batches
from .base import Task, register_task
from .examples import Examples


@dataclass(frozen=True)
class GeneratedTask(Task):
    """A built-in task: examples drawn fresh from its generator, with its default model.

    ``length_hyper`` (MATH: ``N_DIGITS``) is the model hyper-parameter each example set sets
    to its length; tasks without one have a single length.
    """

    name: str
    model: str  # the shipped model that solves it
    model_hypers: dict[str, int] = field(default_factory=dict)
    length_hyper: str | None = None
    train_lengths: tuple[int, ...] = (1,)
    val_lengths: tuple[int, ...] = (1,)
    test_lengths: tuple[int, ...] = (1,)

    @property
    def family(self) -> str:
        return self.name.partition(":")[0]

    @property
    def input_names(self) -> tuple[str, ...]:
        return {"math": ("tape",), "add2x2": ("grid",), "apply2x2": ("grid", "ints")}[self.family]

    @property
    def output_names(self) -> tuple[str, ...]:
        return ("result",)

    def hypers_of(self, length: int) -> dict[str, int]:
        return {self.length_hyper: length} if self.length_hyper else {}

    @property
    def train_hypers(self) -> dict[str, int]:
        return self.hypers_of(self.train_lengths[0])

    def relevance_hypers(self) -> list[dict[str, int]]:
        """A longer expression reads every Param a shorter one does: the longest suffices."""
        shortest = {*self.train_lengths, *self.val_lengths}
        return [self.hypers_of(n) for n in sorted(shortest | {max(self.test_lengths)})]

    def examples(self, n: int, *, length: int, split: str, seed, perceptual: bool, data_dir=None,
                 name: str = "") -> Examples:
        batch = make_batch(self.name, n, split=split, digits=length, seed=seed, perceptual=perceptual,
                           data_dir=data_dir)
        return Examples(batch.inputs, {"result": batch.target}, batch.symbols if perceptual else {},
                        self.hypers_of(length), name or str(length))

    def train_examples(self, n, rng, *, perceptual, data_dir=None) -> Examples:
        return self.examples(n, length=self._train_length(rng), split="train", seed=rng,
                             perceptual=perceptual, data_dir=data_dir, name="train")

    def _train_length(self, rng: np.random.Generator) -> int:
        """The length of a training batch: drawn from ``rng`` first when there are several."""
        lengths = self.train_lengths
        return int(rng.choice(lengths)) if len(lengths) > 1 else lengths[0]

    def stacked_train_examples(self, n, rngs, *, perceptual, data_dir=None):
        """Symbolic batches of every generator drawn as :meth:`train_examples` draws them and
        computed at once (:func:`~ntpt_ray.data.tasks.make_batches`)."""
        if perceptual:
            return super().stacked_train_examples(n, rngs, perceptual=perceptual, data_dir=data_dir)
        by_length: dict[int, list[int]] = {}
        for i, rng in enumerate(rngs):
            by_length.setdefault(self._train_length(rng), []).append(i)
        out = []
        for length, rows in by_length.items():
            batch = make_batches(self.name, n, [rngs[i] for i in rows], digits=length)
            examples = Examples(batch.inputs, {"result": batch.target}, {}, self.hypers_of(length), "train")
            out.append((rows, examples))
        return out

    def _set_name(self, split: str, length: int) -> str:
        return str(length) if self.length_hyper else split

    def validation_sets(self, n, *, seed, perceptual, data_dir=None) -> list[Examples]:
        return [self.examples(n, length=k, split="val", seed=seed + k, perceptual=perceptual,
                              data_dir=data_dir, name=self._set_name("val", k)) for k in self.val_lengths]

    def check_sets(self, n, *, seed, perceptual, data_dir=None) -> list[Examples]:
        return [self.examples(n, length=k, split="test", seed=seed + 100 + k, perceptual=perceptual,
                              data_dir=data_dir, name=self._set_name("test", k))
                for k in self.test_lengths]

    def reference(self, symbols: np.ndarray, ints: np.ndarray | None = None) -> int:
        """The right answer for one example's symbol ids (mod 19, x / 0 = 18, left to right)."""
        if self.family == "math":
            value = symbols[0]
            for k in range(1, len(symbols), 2):
                value = apply_op(value, symbols[k + 1], symbols[k] - OPERATOR_OFFSET)
            return int(value)
        a, b = LINES[self.name.partition(":")[2]]
        if self.family == "add2x2":
            return int((symbols[a] + symbols[b]) % MOD)
        first = apply_op(ints[0], ints[1], symbols[a] - OPERATOR_OFFSET)
        return int(apply_op(first, ints[2], symbols[b] - OPERATOR_OFFSET))

    def feed(self, symbols: np.ndarray,
             ints: np.ndarray | None = None) -> tuple[dict[str, torch.Tensor], int]:
        """Model inputs for one example of symbol ids, and the length they have."""
        inputs = {self.input_names[0]: torch.from_numpy(symbols[None])}
        if ints is not None:
            inputs["ints"] = torch.from_numpy(ints[None])
        length = (len(symbols) + 1) // 2 if self.length_hyper else self.train_lengths[0]
        return inputs, length


def _builtin(name: str) -> GeneratedTask:
    if name == "math":
        return GeneratedTask(name, "math", {}, "N_DIGITS", (2,), (2, 3), tuple(range(2, 17)))
    # The very first task (ADD2X2) may call only net_0: one untrained net at a time (Sec. 4.1).
    hypers = {"N_AUX": 0, "N_NETS": 1} if name.startswith("add2x2") else {"N_AUX": 3, "N_NETS": 2}
    return GeneratedTask(name, "grid2x2", hypers)


for _name in TASKS:
    register_task(_name, lambda name=_name: _builtin(name))
