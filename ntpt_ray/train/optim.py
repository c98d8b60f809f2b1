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
        """One update of every restart where ``active`` (bool ``[R]``, default all) is set."""
        beta1, beta2 = self.betas
        everyone = active is None or bool(active.all())
        self.steps += 1 if active is None else active.float()
        for params, lr in self.groups:
            for p in params:
                if p.grad is None:
                    continue
                shape = (-1,) + (1,) * (p.dim() - 1)
                m, v = self.moments[p]
                grad = p.grad if everyone else p.grad * active.view(shape)
                keep = None if everyone else (~active).view(shape)
                m_new = m.lerp(grad, 1 - beta1)
                v_new = v * beta2 + grad * grad * (1 - beta2)
                if keep is not None:
                    m_new = torch.where(keep, m, m_new)
                    v_new = torch.where(keep, v, v_new)
                m.copy_(m_new)
                v.copy_(v_new)
                t = self.steps.clamp_min(1).view(shape)
                step_size = lr / (1 - beta1 ** t)
                denom = v.sqrt() / (1 - beta2 ** t).sqrt() + self.eps
                update = step_size * m / denom
                p.sub_(update if keep is None else update.masked_fill(keep, 0))

    def reset(self, restart: int) -> None:
        """Forget restart ``restart``'s moments and step count."""
        self.steps[restart] = 0
        for m, v in self.moments.values():
            m[restart] = 0
            v[restart] = 0
