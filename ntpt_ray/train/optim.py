"""Adam with per-restart state, so that one restart of a vectorised batch can be reset or frozen."""

from __future__ import annotations

from collections.abc import Sequence

import torch


class RestartAdam:
    """Adam (as :class:`torch.optim.Adam`, without weight decay) over tensors whose leading
    dimension is the restart.

    Each restart keeps its own step count and moments: :meth:`reset` starts one restart afresh
    (a new seed in its slot) and ``step(active)`` leaves inactive restarts untouched, while the
    others go on as if they were alone.
    """

    def __init__(self, groups: Sequence[tuple[Sequence[torch.Tensor], float]], restarts: int,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 device: torch.device | str = "cpu"):
        self.groups = [(list(params), lr) for params, lr in groups]
        self.betas = betas
        self.eps = eps
        self.steps = torch.zeros(restarts, device=device)  # on the tensors' device, as the moments
        self.moments = {p: (torch.zeros_like(p), torch.zeros_like(p))
                        for params, _ in self.groups for p in params}

    def zero_grad(self) -> None:
        for p in self.moments:
            p.grad = None

    @torch.no_grad()
    def step(self, active: torch.Tensor | None = None) -> None:
        """One update of every restart where ``active`` (bool ``[R]``, default all) is set.

        Each group's tensors are updated together by ``torch._foreach_*`` kernels (a few calls
        per group, not a dozen per tensor); the rows of inactive restarts are put back after."""
        beta1, beta2 = self.betas
        idle = None if active is None else torch.nonzero(~active).flatten()
        if idle is not None and not len(idle):
            idle = None
        self.steps += 1 if active is None else active.float()
        t = self.steps.clamp_min(1)
        correction1, correction2 = 1 - beta1 ** t, (1 - beta2 ** t).sqrt()
        for params, lr in self.groups:
            params = [p for p in params if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            ms, vs = zip(*(self.moments[p] for p in params))
            kept = None if idle is None else [x.index_select(0, idle) for x in (*params, *ms, *vs)]
            shapes = [(-1,) + (1,) * (p.dim() - 1) for p in params]
            torch._foreach_lerp_(ms, grads, 1 - beta1)
            torch._foreach_mul_(vs, beta2)
            squares = torch._foreach_mul(grads, grads)
            torch._foreach_mul_(squares, 1 - beta2)
            torch._foreach_add_(vs, squares)
            denoms = torch._foreach_sqrt(vs)
            torch._foreach_div_(denoms, [correction2.view(shape) for shape in shapes])
            torch._foreach_add_(denoms, self.eps)
            updates = torch._foreach_mul(ms, [(lr / correction1).view(shape) for shape in shapes])
            torch._foreach_div_(updates, denoms)
            torch._foreach_sub_(params, updates)
            if kept is not None:
                for x, rows in zip((*params, *ms, *vs), kept):
                    x.index_copy_(0, idle, rows)

    def reset(self, restart: int) -> None:
        """Forget restart ``restart``'s moments and step count."""
        self.steps[restart] = 0
        for m, v in self.moments.values():
            m[restart] = 0
            v[restart] = 0
