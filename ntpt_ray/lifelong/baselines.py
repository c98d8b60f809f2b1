"""The purely neural lifelong baselines of the 2x2 scenarios (paper Sec. 5.1, Fig. 5).

Every baseline is built from *columns*: a shared per-image embedding MLP 784-256-256-10 whose
four outputs are concatenated (40 dims, plus 3 x 10 one-hot auxiliary integers for APPLY2X2),
then a head of 3 hidden layers of 128 and 19 logits. Four ways to combine them over the task
sequence:

* ``indep`` - one column per task, no transfer.
* ``pnn`` - Progressive Neural Networks (Rusu et al. 2016): column k also reads every earlier
  column's activations through linear lateral connections at every layer above the pixels;
  earlier columns are evaluated without gradient.
* ``mtnn-1`` / ``mtnn-2`` - a multitask net: shared perception (a net_0-shaped 10-d and a
  net_1-shaped 4-d embedding of every image, the first task seeing only the 10-d one, cf. Sec.
  4.1's symmetry breaking) learning 100x slower than task-specific heads (MTNN-1: 3 hidden layers
  everywhere; MTNN-2: 1 for ADD2X2 tasks, 3 for APPLY2X2 tasks).

All R lifetimes (one per seed) are one tensor computation: parameters carry a leading dimension
R, inputs are shared, outputs are ``[R, B, 19]`` and :meth:`Baseline.loss` returns one mean
cross-entropy per lifetime; summing it keeps lifetimes independent under any elementwise
optimiser (RMSprop, Adam). Zero gradients with ``set_to_none=True`` (PyTorch's default) so that
parameters an update does not reach carry no gradient and no optimiser moves them (Adam's
momentum would keep moving a parameter whose gradient is a zero tensor).
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .batch import N_AUX, N_CLASSES, GridBatch

BASELINES = ("indep", "pnn", "mtnn-1", "mtnn-2")

PIXELS = 28 * 28
CELLS = 4  # images per 2x2 grid
EMBED_HIDDEN = (256, 256)  # the embedding nets' hidden layers (cf. net_0 / net_1)
DIGIT_EMBED = 10  # net_0-shaped embedding width (the column's embedding)
OP_EMBED = 4  # net_1-shaped embedding width (MTNN only)
AUX_VALUES = 10  # each auxiliary integer d1..d3 is one of 0..9, fed one-hot
HEAD_HIDDEN = 128


def is_apply(task: str) -> bool:
    """Whether a task (by name) is an APPLY2X2 task, i.e. reads the auxiliary integers."""
    return task.startswith("apply2x2")


def _layer_seed(seed: int, key: str) -> int:
    """A generator seed for one lifetime's copy of one layer: a function of (seed, key) only."""
    return (seed * 0x9E3779B1 + zlib.crc32(key.encode())) % (1 << 63)


def _draw_uniform_(tensor: torch.Tensor, fan_in: int, seed: int, key: str) -> None:
    """PyTorch's default init uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), from ``(seed, key)`` only."""
    bound = 1 / math.sqrt(fan_in)
    tensor.uniform_(-bound, bound, generator=torch.Generator().manual_seed(_layer_seed(seed, key)))


_NARROW = 32  # outputs at most this wide are computed transposed (BLAS is far faster that way)


def _bmm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``x @ weight`` for ``x [N, in]`` (shared) or ``[R, N, in]`` and ``weight [R, in, out]``."""
    if weight.shape[-1] <= _NARROW:
        return torch.matmul(weight.mT, x.mT).mT
    return torch.matmul(x, weight)


class BatchedLinear(nn.Module):
    """R independent affine maps ``in -> out`` (one per lifetime) applied as one batched product.

    ``weight`` is ``[R, in, out]`` and ``bias`` ``[R, 1, out]``; lifetime r is drawn from
    PyTorch's default uniform(-1/sqrt(in), 1/sqrt(in)) with generators seeded by
    ``(seeds[r], key)`` alone, so its weights do not depend on the other lifetimes.
    """

    def __init__(self, in_features: int, out_features: int, seeds: Sequence[int], key: str):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(len(seeds), in_features, out_features))
        self.bias = nn.Parameter(torch.empty(len(seeds), 1, out_features))
        with torch.no_grad():
            for r, seed in enumerate(seeds):
                _draw_uniform_(self.weight[r], in_features, seed, f"{key}/w")
                _draw_uniform_(self.bias[r], in_features, seed, f"{key}/b")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[R, N, out]`` for inputs ``[N, in]`` (shared by all lifetimes) or ``[R, N, in]``."""
        return _bmm(x, self.weight) + self.bias

    def extra_repr(self) -> str:
        return f"lifetimes={self.weight.shape[0]}, in={self.in_features}, out={self.out_features}"


class Lateral(nn.Module):
    """PNN lateral connections into one layer, ``sum_j U_j h_j`` over earlier columns j.

    The bias-free maps ``U_j [R, in_j, out]`` are stored stacked as one ``weight
    [R, sum_j in_j, out]`` so that the sum is one batched product with the concatenated ``h_j``;
    block j is drawn like its own layer (uniform, bound 1/sqrt(in_j), key ``{key}/from{j}``).
    """

    def __init__(self, widths: Sequence[int], out_features: int, seeds: Sequence[int], key: str):
        super().__init__()
        self.widths = tuple(widths)
        self.weight = nn.Parameter(torch.empty(len(seeds), sum(widths), out_features))
        with torch.no_grad():
            for r, seed in enumerate(seeds):
                for j, block in enumerate(self.weight[r].split(self.widths)):
                    _draw_uniform_(block, self.widths[j], seed, f"{key}/from{j}")

    def forward(self, h: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        """``pre + [h_0 | h_1 | ...] @ weight``, given the earlier columns' ``h_j`` side by side."""
        return pre + _bmm(h, self.weight)


class BatchedMLP(nn.Module):
    """R independent MLPs ``dims[0] -> ... -> dims[-1]``, ReLU between layers, linear output."""

    def __init__(self, dims: Sequence[int], seeds: Sequence[int], key: str):
        super().__init__()
        self.layers = nn.ModuleList(BatchedLinear(a, b, seeds, f"{key}/{i}")
                                    for i, (a, b) in enumerate(itertools.pairwise(dims)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = F.relu(x, inplace=True)  # x is a fresh sum: safe for autograd
        return x


def _head_dims(width: int, hidden: int) -> list[int]:
    return [width, *[HEAD_HIDDEN] * hidden, N_CLASSES]


class Column(nn.Module):
    """One task's column: ``embed`` 784-256-256-10 (per image), ``head`` (40|70)-128-128-128-19,
    and (PNN, given the earlier columns' head widths) ``laterals[l - 1]``: the :class:`Lateral`
    into layer l of :attr:`stack` for every layer l >= 1 (all but the one reading pixels)."""

    def __init__(self, index: int, apply: bool, seeds: Sequence[int],
                 earlier_widths: Sequence[int] = ()):
        super().__init__()
        self.apply_task = apply
        self.embed = BatchedMLP([PIXELS, *EMBED_HIDDEN, DIGIT_EMBED], seeds, f"col{index}/embed")
        self.head = BatchedMLP(_head_dims(self.concat_width, 3), seeds, f"col{index}/head")
        self.laterals = nn.ModuleList()
        if earlier_widths:
            for l, layer in enumerate(self.stack[1:], start=1):
                widths = (earlier_widths if l == len(self.embed.layers)  # the concat vector
                          else [layer.in_features] * len(earlier_widths))
                self.laterals.append(Lateral(widths, layer.out_features, seeds, f"col{index}/lat{l}"))

    @property
    def concat_width(self) -> int:
        """Width of the head's input: 4 embeddings, plus the aux one-hots for APPLY2X2."""
        return CELLS * DIGIT_EMBED + (N_AUX * AUX_VALUES if self.apply_task else 0)

    @property
    def stack(self) -> list[BatchedLinear]:
        """All layers in order: ``[*embed.layers, *head.layers]``."""
        return [*self.embed.layers, *self.head.layers]

    def input_shapes(self, grids: int) -> list[tuple[int, int]]:
        """``(rows, width)`` of the inputs of layers 1.. for ``grids`` grids (what later columns'
        laterals read): one row per image inside the embedding, one per grid above it."""
        n_embed = len(self.embed.layers)
        return [(grids * CELLS if l < n_embed else grids, layer.in_features)
                for l, layer in enumerate(self.stack[1:], start=1)]

    def forward(self, pixels: torch.Tensor, aux: torch.Tensor | None,
                earlier: Sequence[torch.Tensor] = ()) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits ``[R, B, 19]`` and the inputs of layers 1.. (for later columns' laterals), given
        ``pixels [B*4, 784]``, ``aux [B, 30]`` (APPLY2X2 only) and, for PNN, ``earlier[l - 1]``:
        the earlier columns' inputs of layer l, concatenated along the last dimension."""
        x: torch.Tensor = pixels
        inputs: list[torch.Tensor] = []
        stack = self.stack
        n_embed = len(self.embed.layers)
        for l, layer in enumerate(stack):
            pre = layer(x)
            if l > 0 and self.laterals:
                pre = self.laterals[l - 1](earlier[l - 1], pre)
            if l == len(stack) - 1:
                return pre, inputs
            if l == n_embed - 1:  # per-image embeddings -> one vector per grid (no ReLU)
                x = pre.reshape(pre.shape[0], -1, CELLS * DIGIT_EMBED)
                if aux is not None:
                    x = torch.cat([x, aux.expand(x.shape[0], -1, -1)], dim=-1)
            else:
                x = F.relu(pre, inplace=True)
            inputs.append(x)
        raise AssertionError("unreachable")


class Baseline(nn.Module):
    """A purely neural lifelong learner over a fixed task sequence, with R lifetimes."""

    name: str = ""

    def __init__(self, seeds: Sequence[int], tasks: Sequence[str]):
        super().__init__()
        if not seeds:
            raise ValueError("need at least one lifetime seed")
        self.seeds = tuple(int(s) for s in seeds)
        self.tasks = tuple(tasks)
        self.apply_tasks = tuple(is_apply(t) for t in self.tasks)

    @property
    def lifetimes(self) -> int:
        return len(self.seeds)

    def logits(self, task: int, batch: GridBatch) -> torch.Tensor:
        """Answer logits ``[R, B, 19]`` of task ``task`` (its index in the sequence)."""
        raise NotImplementedError

    def loss(self, task: int, batch: GridBatch) -> torch.Tensor:
        """Mean cross-entropy per lifetime ``[R]``; ``.sum()`` it to train all lifetimes."""
        logits = self.logits(task, batch)
        target = batch.target.expand(logits.shape[0], -1)
        return F.cross_entropy(logits.transpose(1, 2), target, reduction="none").mean(1)

    @torch.no_grad()
    def predict(self, task: int, batch: GridBatch) -> torch.Tensor:
        """Answers ``[R, B]`` (int64)."""
        return self.logits(task, batch).argmax(-1)

    def parameter_groups(self, lr: float) -> list[dict]:
        """Optimiser parameter groups (every parameter at ``lr`` unless a baseline says otherwise)."""
        return [{"params": list(self.parameters()), "lr": lr}]

    def trained_parameters(self, task: int) -> list[nn.Parameter]:
        """The parameters an update on ``task`` changes (those that get gradients)."""
        raise NotImplementedError

    def _check(self, task: int) -> None:
        if not 0 <= task < len(self.tasks):
            raise IndexError(f"task {task} out of range for {len(self.tasks)} tasks")

    @staticmethod
    def _pixels(batch: GridBatch) -> torch.Tensor:
        """Every cell as one row: ``[B*4, 784]``."""
        return batch.images.reshape(-1, PIXELS).float()

    def _aux(self, task: int, batch: GridBatch) -> torch.Tensor | None:
        """APPLY2X2: one-hots of d1..d3 ``[B, 30]``; ADD2X2: None."""
        if not self.apply_tasks[task]:
            return None
        return F.one_hot(batch.ints[:, :N_AUX].long(), AUX_VALUES).float().flatten(1)


class Indep(Baseline):
    """One independent column per task."""

    name = "indep"

    def __init__(self, seeds: Sequence[int], tasks: Sequence[str]):
        super().__init__(seeds, tasks)
        self.columns = nn.ModuleList(Column(k, a, self.seeds) for k, a in enumerate(self.apply_tasks))

    def logits(self, task: int, batch: GridBatch) -> torch.Tensor:
        self._check(task)
        return self.columns[task](self._pixels(batch), self._aux(task, batch))[0]

    def trained_parameters(self, task: int) -> list[nn.Parameter]:
        return list(self.columns[task].parameters())


class PNN(Baseline):
    """Progressive Neural Network: column k has linear laterals from every column j < k.

    All columns are allocated at construction (lifetime order is known), but column k and its
    laterals only receive gradients from updates on task k, so a column is untouched until its
    task is first trained - as if created then. Task k evaluates columns 0..k only; 0..k-1 without
    gradient (frozen as seen from task k). Revisiting an earlier task j trains column j, which
    later columns read.
    """

    name = "pnn"

    def __init__(self, seeds: Sequence[int], tasks: Sequence[str]):
        super().__init__(seeds, tasks)
        columns: list[Column] = []
        for k, a in enumerate(self.apply_tasks):
            columns.append(Column(k, a, self.seeds, [c.concat_width for c in columns]))
        self.columns = nn.ModuleList(columns)

    def logits(self, task: int, batch: GridBatch) -> torch.Tensor:
        self._check(task)
        pixels = self._pixels(batch)
        earlier: list[torch.Tensor] = []  # per layer: columns 0..task-1's inputs, side by side
        if task > 0:
            shapes = [c.input_shapes(len(batch)) for c in self.columns[:task]]
            rows = [n for n, _ in shapes[0]]
            offsets = [[0, *itertools.accumulate(s[l][1] for s in shapes)] for l in range(len(rows))]
            earlier = [pixels.new_empty(self.lifetimes, n, o[-1]) for n, o in zip(rows, offsets)]
            with torch.no_grad():
                for j in range(task):
                    _, inputs = self.columns[j](pixels, self._aux(j, batch),
                                                [e[..., :o[j]] for e, o in zip(earlier, offsets)])
                    for e, o, x in zip(earlier, offsets, inputs):
                        e[..., o[j]:o[j + 1]] = x
        return self.columns[task](pixels, self._aux(task, batch), earlier)[0]

    def trained_parameters(self, task: int) -> list[nn.Parameter]:
        return list(self.columns[task].parameters())


class MTNN(Baseline):
    """Multitask NN: shared perception (``net_0`` 784-256-256-10, ``net_1`` 784-256-256-4 on every
    image; the first task sees only ``net_0``) and one head per task with ``head_layers[k]`` hidden
    layers of 128. Perception trains at 1/100 of the heads' learning rate."""

    PERCEPTION_LR_SCALE = 0.01

    def __init__(self, seeds: Sequence[int], tasks: Sequence[str], head_layers: Sequence[int], name: str):
        super().__init__(seeds, tasks)
        self.name = name
        self.perception = nn.ModuleDict({
            "net_0": BatchedMLP([PIXELS, *EMBED_HIDDEN, DIGIT_EMBED], self.seeds, "net_0"),
            "net_1": BatchedMLP([PIXELS, *EMBED_HIDDEN, OP_EMBED], self.seeds, "net_1"),
        })
        self.heads = nn.ModuleList(
            BatchedMLP(_head_dims(self.head_width(k), n), self.seeds, f"{name}/head{k}")
            for k, n in enumerate(head_layers))

    def nets(self, task: int) -> list[str]:
        """The perception nets task ``task`` sees (symmetry breaking: task 0 only ``net_0``)."""
        return ["net_0"] if task == 0 else ["net_0", "net_1"]

    def head_width(self, task: int) -> int:
        embed = {"net_0": DIGIT_EMBED, "net_1": OP_EMBED}
        width = CELLS * sum(embed[n] for n in self.nets(task))
        return width + (N_AUX * AUX_VALUES if self.apply_tasks[task] else 0)

    def logits(self, task: int, batch: GridBatch) -> torch.Tensor:
        self._check(task)
        pixels, aux = self._pixels(batch), self._aux(task, batch)
        parts = []
        for name in self.nets(task):
            e = self.perception[name](pixels)  # [R, B*4, d]
            parts.append(e.reshape(e.shape[0], -1, CELLS * e.shape[-1]))
        if aux is not None:
            parts.append(aux.expand(parts[0].shape[0], -1, -1))
        return self.heads[task](torch.cat(parts, dim=-1))

    def parameter_groups(self, lr: float) -> list[dict]:
        return [{"params": list(self.heads.parameters()), "lr": lr},
                {"params": list(self.perception.parameters()), "lr": lr * self.PERCEPTION_LR_SCALE}]

    def trained_parameters(self, task: int) -> list[nn.Parameter]:
        params = list(self.heads[task].parameters())
        for name in self.nets(task):
            params += list(self.perception[name].parameters())
        return params


def make_baseline(name: str, seeds: Sequence[int], *, tasks: Sequence[str]) -> Baseline:
    """Baseline ``name`` (one of :data:`BASELINES`) with one lifetime per seed over ``tasks``
    (task names in lifetime order; those starting with ``apply2x2`` read auxiliary integers)."""
    if name == "indep":
        return Indep(seeds, tasks)
    if name == "pnn":
        return PNN(seeds, tasks)
    if name == "mtnn-1":
        return MTNN(seeds, tasks, [3] * len(tasks), name)
    if name == "mtnn-2":
        return MTNN(seeds, tasks, [3 if is_apply(t) else 1 for t in tasks], name)
    raise ValueError(f"unknown baseline '{name}' (allowed: {', '.join(BASELINES)})")
