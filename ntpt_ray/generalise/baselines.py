"""The MATH baselines of Sec. 5.2 in torch: an LSTM over the symbols and a Neural GPU.

Both read a batch of expressions ``[B, S]`` (S = 2n - 1 symbols) and give logits ``[B, 19]``
for the answer. A symbol reaches them as an embedding: one-hot (Fig. 8a) or, on images, the
logits of ``net_0`` and ``net_1`` side by side (:class:`LibraryEmbedding`, initialised from a
library snapshot and fine-tuned). The LSTM classifies from its last hidden state; the Neural
GPU (Kaiser & Sutskever 2016) embeds the symbols into the first row of a ``filters x height x
S`` state, applies ``layers`` convolutional GRUs (3x3 kernels) S times and classifies from the
first cell.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.symbols import SYMBOLS
from ..data.tasks import MOD
from ..library import LibrarySnapshot

CLASSES = MOD  # answers 0..18


class OneHotEmbedding(nn.Module):
    """Symbol ids ``[B, S]`` as one-hot vectors ``[B, S, 14]`` (no parameters)."""

    size = len(SYMBOLS)

    def forward(self, symbols: torch.Tensor) -> torch.Tensor:
        return F.one_hot(symbols.long(), self.size).float()


def _mlp(state: dict[str, torch.Tensor]) -> nn.Sequential:
    """A library net (``w0, b0, w1, ...``: ``[in, out]`` and ``[1, out]``) as ``nn.Sequential``."""
    layers: list[nn.Module] = []
    count = len([k for k in state if k.startswith("w")])
    for k in range(count):
        w, b = state[f"w{k}"], state[f"b{k}"]
        linear = nn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            linear.weight.copy_(w.T)
            linear.bias.copy_(b.reshape(-1))
        layers += [linear] + ([nn.ReLU()] if k < count - 1 else [])
    return nn.Sequential(*layers)


class LibraryEmbedding(nn.Module):
    """Images ``[B, S, 28, 28]`` as ``[B, S, 14]``: the logits of ``net_0`` (10) and ``net_1`` (4),
    the nets initialised from ``library``."""

    def __init__(self, library: LibrarySnapshot):
        super().__init__()
        missing = sorted({"net_0", "net_1"} - set(library))
        if missing:
            have = ", ".join(library) or "none"
            raise ValueError(f"the library has no {', '.join(missing)} (it has {have})")
        self.nets = nn.ModuleList([_mlp(library["net_0"]), _mlp(library["net_1"])])
        self.size = sum(net[-1].out_features for net in self.nets)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.flatten(2).float()
        return torch.cat([net(x) for net in self.nets], dim=-1)


class LSTMBaseline(nn.Module):
    """Embedding -> ``layers``-layer LSTM of ``hidden`` units (dropout between layers) -> 19 classes."""

    def __init__(self, embedding: nn.Module, hidden: int, layers: int, dropout: float = 0.0):
        super().__init__()
        self.embedding = embedding
        self.lstm = nn.LSTM(embedding.size, hidden, layers, batch_first=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Linear(hidden, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embedding(x))
        return self.head(out[:, -1])


def lstm_parameters(inputs: int, hidden: int, layers: int) -> int:
    """Parameters of :class:`LSTMBaseline` past the embedding, by hand: per layer four gates of
    ``in x hidden + hidden x hidden`` weights and two biases of ``hidden`` (PyTorch's), then the
    ``hidden x 19 + 19`` head."""
    total = 0
    for k in range(layers):
        fan_in = inputs if k == 0 else hidden
        total += 4 * (fan_in * hidden + hidden * hidden + 2 * hidden)
    return total + hidden * CLASSES + CLASSES


class CGRU(nn.Module):
    """A convolutional GRU on ``[B, m, h, w]``: ``u = σ(U'*s)``, ``r = σ(U''*s)``,
    ``s' = u s + (1 - u) tanh(U*(r s))``, each a 3x3 convolution with bias."""

    def __init__(self, filters: int):
        super().__init__()
        self.gates = nn.Conv2d(filters, 2 * filters, 3, padding=1)
        self.candidate = nn.Conv2d(filters, filters, 3, padding=1)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        u, r = torch.sigmoid(self.gates(s)).chunk(2, dim=1)
        return u * s + (1 - u) * torch.tanh(self.candidate(r * s))


class NeuralGPU(nn.Module):
    """Kaiser & Sutskever's Neural GPU for one answer: symbols embedded (a linear map, no bias)
    into row 0 of the state, ``layers`` CGRUs applied once per symbol, the answer read from the
    state's first cell."""

    def __init__(self, embedding: nn.Module, filters: int, height: int = 4, layers: int = 2):
        super().__init__()
        self.embedding = embedding
        self.height = height
        self.embed = nn.Linear(embedding.size, filters, bias=False)
        self.cgrus = nn.ModuleList(CGRU(filters) for _ in range(layers))
        self.head = nn.Linear(filters, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.embed(self.embedding(x))  # [B, S, m]
        b, width, m = e.shape
        s = e.new_zeros(b, m, self.height, width)
        s[:, :, 0, :] = e.transpose(1, 2)
        for _ in range(width):
            for cgru in self.cgrus:
                s = cgru(s)
        return self.head(s[:, :, 0, 0])


def ngpu_parameters(inputs: int, filters: int, layers: int) -> int:
    """Parameters of :class:`NeuralGPU` past the embedding, by hand: the ``inputs x m``
    embedding, per CGRU three 3x3 ``m -> m`` convolutions with biases, the ``m x 19 + 19`` head."""
    return inputs * filters + layers * 3 * (9 * filters * filters + filters) + filters * CLASSES + CLASSES


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
