"""Training a baseline to convergence on a validation set, then testing it by length.

A step draws one batch of one training length (uniformly among the model's lengths) from the
training images or symbols; every ``eval_every`` steps the model is scored on fixed validation
sets, the best state is kept, and training stops after ``patience`` validations without
improvement or at ``max_steps``. The kept state is then tested on every length.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.tasks import make_batch
from ..library import LibrarySnapshot
from ..parts import Progress
from ..train.device import resolve_device
from .baselines import LibraryEmbedding, LSTMBaseline, NeuralGPU, OneHotEmbedding, count_parameters
from .data import test_batches, validation_sets
from .spec import GeneraliseSpec


def perceptual(model: str) -> bool:
    return not model.endswith("-onehot")


def build_model(spec: GeneraliseSpec, model: str, library: LibrarySnapshot | None) -> nn.Module:
    """The untrained baseline ``model`` (one of :data:`~.spec.BASELINES`)."""
    embedding = LibraryEmbedding(library or {}) if perceptual(model) else OneHotEmbedding()
    if model.startswith("ngpu"):
        return NeuralGPU(embedding, spec.ngpu.filters, spec.ngpu.height, spec.ngpu.layers)
    return LSTMBaseline(embedding, spec.lstm.hidden, spec.lstm.layers, spec.lstm.dropout)


@torch.no_grad()
def accuracy(net: nn.Module, inputs: torch.Tensor, target: torch.Tensor, device: torch.device) -> float:
    net.eval()
    right = 0
    for start in range(0, len(target), 250):
        logits = net(inputs[start:start + 250].to(device))
        right += int((logits.argmax(-1).cpu() == target[start:start + 250]).sum())
    return right / len(target)


def train_baseline(spec: GeneraliseSpec, model: str, library: LibrarySnapshot | None, *, seed: int,
                   data_dir: str | None = None, progress: Progress | None = None) -> dict:
    """Train and test one baseline; its record: test accuracy by length, parameter count,
    validation curve, steps, device and wall time."""
    start = time.perf_counter()
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    b = spec.baselines
    device = resolve_device(b.device)
    images = perceptual(model)
    lengths = spec.train_lengths(model)
    net = build_model(spec, model, library).to(device)
    embed = list(net.embedding.parameters())
    rest = [p for name, p in net.named_parameters() if not name.startswith("embedding.")]
    groups = [{"params": rest, "lr": b.lr}] + ([{"params": embed, "lr": b.embed_lr}] if embed else [])
    optimizer = torch.optim.Adam(groups)
    val = validation_sets(lengths, b.val_size, perceptual=images, data_dir=data_dir)
    rng = np.random.default_rng([seed, 1])
    best, best_state, curve, stale, step = -1.0, None, [], 0, 0
    while step < b.max_steps and stale < b.patience:
        net.train()
        length = int(rng.choice(lengths))
        batch = make_batch("math", b.batch_size, split="train", perceptual=images, digits=length, seed=rng,
                           data_dir=data_dir)
        loss = F.cross_entropy(net(batch.inputs["tape"].to(device)), batch.target.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if step % b.eval_every == 0 or step == b.max_steps:
            score = float(np.mean([accuracy(net, v.inputs["tape"], v.target, device) for v in val]))
            curve.append((step * b.batch_size, score))
            if score > best:
                best, best_state, stale = score, copy.deepcopy(net.state_dict()), 0
            else:
                stale += 1
        if progress is not None:
            progress(step, b.max_steps)
    net.load_state_dict(best_state)
    tested = {}
    for n in spec.lengths:
        right = total = 0
        for chunk in test_batches(n, spec.evaluate.examples, seed=spec.evaluate.seed, perceptual=images,
                                  data_dir=data_dir):
            right += accuracy(net, chunk.inputs["tape"], chunk.target, device) * len(chunk)
            total += len(chunk)
        tested[n] = right / total
    if progress is not None:
        progress(b.max_steps, b.max_steps)
    return {"model": model, "accuracy": tested, "params": count_parameters(net), "train_lengths": lengths,
            "val_curve": curve, "best_val": best, "steps": step, "converged": stale >= b.patience,
            "device": str(device), "wall_s": time.perf_counter() - start}
