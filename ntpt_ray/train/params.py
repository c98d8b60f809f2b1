"""The learnable program of one task: Param logits for R independent restarts.

A task's program Params are its own; the neural library they call is a separate object
(:mod:`ntpt_ray.library`), so several tasks, each with its ``ProgramParams``, can train
against one library. Elements a model fixes with ``set_to_constant`` are one-hot and never
learned.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..lang.model import CompiledModel


class ProgramParams(nn.Module):
    """``logits[name]``: ``[R, *shape, size]`` for each learned Param of ``model``, on ``device``.

    A restart can be *committed* to a decoded program (:meth:`commit`): its marginals are then
    that program's one-hots, so its logits get no gradient and the nets it calls learn through
    the discrete program alone."""

    def __init__(self, model: CompiledModel, seeds: Sequence[int], init_scale: float = 1.0,
                 device: torch.device | str = "cpu"):
        super().__init__()
        self.model = model
        self.init_scale = init_scale
        self.restarts = len(seeds)
        self.device = torch.device(device)
        self.logits = nn.ParameterDict({
            name: nn.Parameter(torch.empty(len(seeds), *decl.shape, decl.size, device=self.device))
            for name, decl in model.params.items()})
        self.fixed = {name: (mask.to(self.device), value.to(self.device))
                      for name, (mask, value) in _fixed_one_hots(model).items()}
        self.committed = torch.zeros(len(seeds), dtype=torch.bool, device=self.device)
        self._commitments: dict[str, torch.Tensor] = {}
        for r, seed in enumerate(seeds):
            self.initialise(r, seed)

    @torch.no_grad()
    def initialise(self, restart: int, seed: int) -> None:
        """Draw restart ``restart``'s logits afresh from ``seed`` (normal, std ``init_scale``;
        drawn on the CPU, so that every device starts from the same logits)."""
        for decl, logit in zip(self.model.params.values(), self.logits.values()):
            g = torch.Generator().manual_seed(seed * 104729 + decl.size * 131 + len(decl.shape))
            logit[restart] = torch.empty(logit.shape[1:]).normal_(0.0, self.init_scale, generator=g)

    @torch.no_grad()
    def commit(self, restart: int, values: dict[str, np.ndarray | torch.Tensor]) -> None:
        """Fix restart ``restart``'s program to ``values`` (``{name: [*shape]}`` ints, as decoded)."""
        for name, logit in self.logits.items():
            if name not in self._commitments:
                self._commitments[name] = torch.zeros_like(logit)
            index = torch.as_tensor(values[name], dtype=torch.long, device=self.device)
            self._commitments[name][restart] = F.one_hot(index, logit.shape[-1]).to(logit.dtype)
        self.committed[restart] = True

    def probs(self) -> dict[str, torch.Tensor]:
        """Param marginals ``{name: [R, *shape, size]}`` (one-hot where the model fixes an
        element with ``set_to_constant``, and for committed restarts)."""
        probs = {name: logit.softmax(-1) for name, logit in self.logits.items()}
        for name, (mask, value) in self.fixed.items():
            probs[name] = torch.where(mask, value, probs[name])
        if self._commitments:
            for name, one_hot in self._commitments.items():
                mask = self.committed.view(-1, *[1] * (one_hot.dim() - 1))
                probs[name] = torch.where(mask, one_hot, probs[name])
        return probs

    def entropy(self, probs: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Total entropy of each restart's Params ``[R]`` (of ``probs``, :meth:`probs` computed
        already, when given)."""
        total = torch.zeros(self.restarts, device=self.device)
        for p in (self.probs() if probs is None else probs).values():
            h = -(p * p.clamp_min(1e-12).log()).sum(-1)
            total = total + h.reshape(self.restarts, -1).sum(1)
        return total


def _fixed_one_hots(model: CompiledModel) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per Param with elements fixed by ``set_to_constant``: a mask ``[*shape, 1]`` and the
    one-hot values ``[*shape, size]`` that replace the learned marginals there."""
    out = {}
    for (name, index), value in model.fixed.items():
        if name not in model.params:
            continue
        decl = model.params[name]
        if name not in out:
            out[name] = (torch.zeros(*decl.shape, 1, dtype=torch.bool), torch.zeros(*decl.shape, decl.size))
        mask, one_hot = out[name]
        mask[(*index, 0)] = True
        one_hot[(*index, value)] = 1.0
    return out
