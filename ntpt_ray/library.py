"""The neural library: the ``@Learn`` functions a model calls (``net_0`` digits, ``net_1`` operators).

Two implementations share one interface (``probs`` for the relaxed back-end, ``classify`` for
the discrete one):

* :class:`NeuralLibrary` - R independent MLP stacks, one per restart, trained end to end;
  snapshots of one restart's nets are plain ``{name: state}`` dicts of CPU tensors that can
  seed another run (on any device).
* :class:`OracleLibrary` - exact perception of symbol ids, for the non-perceptual (symbolic)
  mode that isolates program search from perception.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .data.symbols import NET_SYMBOLS, SYMBOLS
from .lang.ir import LearnFn

LibrarySnapshot = dict[str, dict[str, torch.Tensor]]
"""One restart's nets: ``{net name: {"w0": .., "b0": .., ...}}``, CPU tensors."""


class MLPStack(nn.Module):
    """R independent MLPs ``in -> hidden... -> size`` (ReLU) evaluated as one batched product."""

    def __init__(self, fn: LearnFn, seeds: Sequence[int], device: torch.device | str = "cpu"):
        super().__init__()
        self.fn = fn
        dims = [fn.in_features, *fn.hidden, fn.size]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(len(seeds), fan_in, fan_out, device=device))
            for fan_in, fan_out in zip(dims, dims[1:]))
        self.biases = nn.ParameterList(
            nn.Parameter(torch.empty(len(seeds), 1, fan_out, device=device)) for fan_out in dims[1:])
        for r, seed in enumerate(seeds):
            self.reinitialise(r, seed)

    @torch.no_grad()
    def reinitialise(self, restart: int, seed: int) -> None:
        """Draw restart ``restart``'s weights afresh from ``seed`` (uniform, PyTorch's bound;
        drawn on the CPU, so that every device starts from the same weights)."""
        for w, b in zip(self.weights, self.biases):
            fan_in, fan_out = w.shape[1:]
            bound = 1 / math.sqrt(fan_in)
            g = torch.Generator().manual_seed(seed * 7919 + fan_in * 31 + fan_out)
            w[restart] = torch.empty(w.shape[1:]).uniform_(-bound, bound, generator=g)
            b[restart] = torch.empty(b.shape[1:]).uniform_(-bound, bound, generator=g)

    def forward(self, x: torch.Tensor, restart: int | None = None) -> torch.Tensor:
        """Logits ``[R, B, size]`` for inputs ``[B, in]`` (shared) or ``[R, B, in]``; with
        ``restart``, that restart's logits ``[1, B, size]`` alone (inputs ``[B, in]``)."""
        last = len(self.weights) - 1
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            if restart is not None:
                x = x @ w[restart] + b[restart]
            else:
                x = (torch.einsum("bi,rio->rbo", x, w) if x.dim() == 2 else x @ w) + b
            if k < last:
                x = F.relu(x)
        return x if restart is None else x.unsqueeze(0)

    def snapshot(self, restart: int) -> dict[str, torch.Tensor]:
        """Restart ``restart``'s weights, copied to the CPU."""
        state = {}
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            state[f"w{k}"] = w[restart].detach().to("cpu", copy=True)
            state[f"b{k}"] = b[restart].detach().to("cpu", copy=True)
        return state

    def load(self, state: Mapping[str, torch.Tensor], restarts: Sequence[int] | None = None) -> None:
        index = slice(None) if restarts is None else list(restarts)
        with torch.no_grad():
            for k, (w, b) in enumerate(zip(self.weights, self.biases)):
                if state[f"w{k}"].shape != w.shape[1:]:
                    raise ValueError(f"library net '{self.fn.name}' layer {k}: snapshot shape "
                                     f"{tuple(state[f'w{k}'].shape)} != {tuple(w.shape[1:])}")
                w[index] = state[f"w{k}"].to(w.device)
                b[index] = state[f"b{k}"].to(b.device)


def _flatten_args(fn: LearnFn, args: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate a net's arguments: tensors ``[B, *shape]``, integers ``[R|1, B|1, n]``."""
    parts = []
    for a, dim in zip(args, fn.arg_dims):
        parts.append(a.flatten(1).float() if isinstance(dim, tuple) else a)
    if all(p.dim() == 2 for p in parts):
        return torch.cat(parts, dim=-1)
    batch = max(p.shape[-2] for p in parts)
    parts = [p.unsqueeze(0) if p.dim() == 2 else p for p in parts]
    restarts = max(p.shape[0] for p in parts)
    return torch.cat([p.expand(restarts, batch, -1) for p in parts], dim=-1)


class NeuralLibrary(nn.Module):
    """The learnable nets of a model, with R independent copies (one per restart), on ``device``."""

    def __init__(self, fns: Mapping[str, LearnFn], seeds: Sequence[int], device: torch.device | str = "cpu"):
        super().__init__()
        self.restarts = len(seeds)
        self.nets = nn.ModuleDict({name: MLPStack(fn, seeds, device) for name, fn in fns.items()})

    def logits(self, fn: LearnFn, args: Sequence[torch.Tensor], restart: int | None = None) -> torch.Tensor:
        """Logits ``[R, B, size]``, or ``[1, B, size]`` of one ``restart``."""
        x = _flatten_args(fn, args)
        if restart is not None and x.dim() == 3:
            x = x[restart if x.shape[0] > 1 else 0]
        return self.nets[fn.name](x, restart)

    def probs(self, fn: LearnFn, args: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.logits(fn, args).softmax(-1)

    def classify(self, fn: LearnFn, args: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.logits(fn, args).argmax(-1)

    def snapshot(self, restart: int) -> LibrarySnapshot:
        """Restart ``restart``'s nets, on the CPU (as snapshots always are)."""
        return {name: net.snapshot(restart) for name, net in self.nets.items()}

    def reinitialise(self, restart: int, seed: int) -> None:
        """Fresh nets for restart ``restart``, drawn from ``seed``."""
        for net in self.nets.values():
            net.reinitialise(restart, seed)

    def load(self, snapshot: Mapping[str, Mapping[str, torch.Tensor]],
             restarts: Sequence[int] | None = None) -> None:
        """Copy a snapshot's nets (those this library has) into the given restarts (or all)."""
        for name, state in snapshot.items():
            if name in self.nets:
                self.nets[name].load(state, restarts)


class RestartView:
    """One restart of a :class:`NeuralLibrary`, as the discrete back-end sees it."""

    def __init__(self, library: NeuralLibrary, restart: int):
        self.library = library
        self.restart = restart

    def classify(self, fn: LearnFn, args: Sequence[torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            return self.library.logits(fn, args, self.restart).argmax(-1)


def saved_nets(fns: Mapping[str, LearnFn], snapshot: LibrarySnapshot) -> RestartView:
    """One snapshot's nets (a program's saved library) as the discrete back-end sees them."""
    stack = NeuralLibrary(fns, [0])
    stack.load(snapshot)
    return RestartView(stack, 0)


def oracle_table(name: str, size: int) -> torch.Tensor:
    """Exact perception ``[symbols, size]``: net_0 reads digits, net_1 operators; a symbol of
    the other kind gets a uniform distribution (it carries no information)."""
    low, high = NET_SYMBOLS.get(name, (0, 0))
    if high - low != size:
        known = ", ".join(f"{n} with {b - a}" for n, (a, b) in NET_SYMBOLS.items())
        raise ValueError(f"no exact perception for @Learn function '{name}' with {size} outputs "
                         f"in symbolic mode (known: {known})")
    table = torch.full((len(SYMBOLS), size), 1.0 / size)
    table[low:high] = torch.eye(size)
    return table


class OracleLibrary:
    """Symbolic mode: tensor inputs hold symbol ids and every net perceives them exactly
    (its tables on ``device``)."""

    def __init__(self, fns: Mapping[str, LearnFn], device: torch.device | str = "cpu"):
        for fn in fns.values():
            if len(fn.arg_dims) != 1 or not isinstance(fn.arg_dims[0], tuple):
                raise ValueError(f"symbolic mode needs '{fn.name}' to take one Tensor argument")
        self.tables = {name: oracle_table(name, fn.size).to(device) for name, fn in fns.items()}

    def probs(self, fn: LearnFn, args: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.tables[fn.name][args[0].long()].unsqueeze(0)

    def classify(self, fn: LearnFn, args: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.tables[fn.name].argmax(-1)[args[0].long()].unsqueeze(0)
