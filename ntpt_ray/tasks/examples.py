"""Examples: a batch of model inputs with the Output values observed on them.

Every Output element is an observed variable (TerpreT's semantics): ``outputs`` maps each
element's name (``result``, ``final_tape[3]``) to ``[B]`` values, :data:`UNOBSERVED` where the
data leaves it open. The loss and every check count only observed values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

UNOBSERVED = -1
"""An Output value the data does not give (``null`` in a TerpreT data file)."""


@dataclass(frozen=True)
class Examples:
    """B examples of one example set, all run with the same model hyper-parameters.

    ``inputs[name]``: ``[B, *array_shape]`` integers or ``[B, *array_shape, *tensor_shape]``
    images; ``symbols[name]``: the symbol ids behind a perceptual input (exact perception);
    ``hypers``: the hyper-parameters the model is compiled with for these examples.
    """

    inputs: dict[str, torch.Tensor]
    outputs: dict[str, torch.Tensor]
    symbols: dict[str, torch.Tensor] = field(default_factory=dict)
    hypers: dict[str, int] = field(default_factory=dict)
    name: str = ""

    def __len__(self) -> int:
        return len(next(iter(self.outputs.values())))

    def rows(self, index) -> Examples:
        """The examples at ``index`` (a slice or an index tensor)."""
        def pick(d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {k: v[index] for k, v in d.items()}

        return Examples(pick(self.inputs), pick(self.outputs), pick(self.symbols), self.hypers, self.name)

    def head(self, n: int) -> Examples:
        return self.rows(slice(0, n))

    def symbolic(self) -> dict[str, torch.Tensor]:
        """The inputs with every perceptual input replaced by its symbol ids."""
        return {**self.inputs, **self.symbols}


def stack_examples(examples: list[Examples]) -> Examples:
    """Example sets of one shape as one whose inputs and outputs are ``[len(examples), B, ...]``
    (hypers and name from the first)."""
    def stacked(part: str) -> dict[str, torch.Tensor]:
        return {name: torch.stack([getattr(e, part)[name] for e in examples])
                for name in getattr(examples[0], part)}

    return Examples(stacked("inputs"), stacked("outputs"), {}, examples[0].hypers, examples[0].name)


def _observed(outputs: Mapping[str, torch.Tensor], examples: Examples):
    for name, target in examples.outputs.items():
        if name not in outputs:
            raise ValueError(f"the examples observe Output '{name}', which the model does not have "
                             f"(it has {', '.join(sorted(outputs))})")
        yield outputs[name], target


def relaxed_nll(outputs: Mapping[str, torch.Tensor], examples: Examples) -> torch.Tensor:
    """``[R]``: the negative log-likelihood of the observed values, summed over Output elements
    and averaged over examples (``outputs[name]``: ``[R, B, size]`` marginals)."""
    total = 0
    for marginal, target in _observed(outputs, examples):
        seen = target != UNOBSERVED
        index = target.clamp_min(0).view(1, -1, 1).expand(marginal.shape[0], -1, 1)
        p = marginal.gather(-1, index).squeeze(-1).clamp_min(1e-9)
        total = total - (p.log() * seen).sum(1)
    return total / len(examples)


def relaxed_correct(outputs: Mapping[str, torch.Tensor], examples: Examples) -> torch.Tensor:
    """``[R, B]`` bool: the most probable value of every observed Output element is right."""
    right = torch.ones((), dtype=torch.bool)
    for marginal, target in _observed(outputs, examples):
        right = right & ((marginal.argmax(-1) == target) | (target == UNOBSERVED))
    return right


def discrete_correct(outputs: Mapping[str, torch.Tensor], examples: Examples) -> torch.Tensor:
    """``[P, B]`` bool: a program's value of every observed Output element is right."""
    right = torch.ones((), dtype=torch.bool)
    for value, target in _observed(outputs, examples):
        right = right & ((value == target) | (target == UNOBSERVED))
    return right
