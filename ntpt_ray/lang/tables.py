"""``@Runtime`` calls on marginals through the table's index structure, not a dense indicator.

``out[o] = sum over (x1..xk) with f(x1..xk) = o of p1[x1] ... pk[xk]``. The dense form multiplies
the outer product of the first k - 1 marginals by an indicator matrix of which only one entry in
``size`` is non-zero (for MATH's ``APPLY_OP``, ``[R*B, 361] @ [361, 76]`` forward and its transpose
backward). Here the sums run over the table's entries only, as bags of rows
(:func:`torch.nn.functional.embedding_bag`), with the lanes (restarts x examples) as the
contiguous last dimension so that every product and reduction is vectorised along them:

* forward: ``Y[l, o] = sum of outer[p] over the p with f(p, l) = o`` (one bag per ``(l, o)``),
  then ``out = sum_l last[l] * Y[l]``;
* backward: ``d outer[p] = sum_l d Y[l, f(p, l)]`` (one bag of ``L`` rows per ``p``) and
  ``d last[l] = sum_o g[o] * Y[l, o]``; the outer product's own backward is autograd's.

The values equal the dense contraction's up to float rounding (the order of the sums differs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .ir import RuntimeFn


class TableBags:
    """The bag indices of one ``@Runtime`` function on one device."""

    def __init__(self, fn: RuntimeFn, device: torch.device):
        last = fn.arg_sizes[-1]
        table = torch.from_numpy(fn.table).reshape(-1, last)  # [P, L]: first k-1 args flat, last
        rows = table.shape[0]
        key = (torch.arange(last)[None, :] * fn.size + table).reshape(-1)  # (l, o) of each (p, l)
        order = torch.argsort(key, stable=True)
        counts = torch.bincount(key, minlength=last * fn.size)
        self.size = fn.size
        self.last = last
        self.forward_rows = (order // last).to(device)  # p, grouped by (l, o)
        self.forward_offsets = (torch.cumsum(counts, 0) - counts).to(device)
        self.backward_rows = key.to(device)  # (l, o) rows of Y, L per p
        self.backward_offsets = torch.arange(0, rows * last, last, device=device)


class _Contract(torch.autograd.Function):
    @staticmethod
    def forward(ctx, outer: torch.Tensor, last: torch.Tensor, bags: TableBags) -> torch.Tensor:
        lanes = outer.shape[1]
        mixed = F.embedding_bag(bags.forward_rows, outer, bags.forward_offsets, mode="sum")
        mixed = mixed.view(bags.last, bags.size, lanes)
        ctx.save_for_backward(last, mixed)
        ctx.bags = bags
        return (mixed * last[:, None, :]).sum(0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        last, mixed = ctx.saved_tensors
        bags = ctx.bags
        grad = grad.contiguous()
        grad_last = (grad[None] * mixed).sum(1) if ctx.needs_input_grad[1] else None
        grad_outer = None
        if ctx.needs_input_grad[0]:
            grad_mixed = (grad[None] * last[:, None, :]).view(-1, grad.shape[1])
            grad_outer = F.embedding_bag(bags.backward_rows, grad_mixed, bags.backward_offsets,
                                         mode="sum")
        return grad_outer, grad_last, None


def contract(bags: TableBags, args: list[torch.Tensor], lead: tuple[int, ...]) -> torch.Tensor:
    """The call's output marginal ``[*lead, size]`` from argument marginals ``[..., size_i]``
    that broadcast to the lanes ``lead``."""
    columns = [a.expand(*lead, a.shape[-1]).movedim(-1, 0).reshape(a.shape[-1], -1).contiguous()
               for a in args]  # [size_i, lanes]: one copy each
    *first, last = columns
    outer = first[0] if first else last.new_ones(1, last.shape[1])
    for c in first[1:]:
        outer = (outer[:, None, :] * c[None, :, :]).flatten(0, 1)
    out = _Contract.apply(outer, last, bags)  # [size, lanes]
    return out.T.reshape(*lead, bags.size)
