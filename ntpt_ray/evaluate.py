"""Running a learned program on fresh test examples, with exact perception or its own nets."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .data.symbols import NET_SYMBOLS, SymbolPools
from .library import LibrarySnapshot, OracleLibrary, saved_nets
from .program import LearnedProgram
from .tasks import GeneratedTask, discrete_correct


def evaluate_program(program: LearnedProgram, library: LibrarySnapshot, lengths: Sequence[int], *,
                     examples: int = 1000, seed: int = 12345, perceptual: bool | None = None,
                     data_dir=None) -> dict[int, float]:
    """Accuracy per input length on ``examples`` fresh test examples of a built-in task each.

    Symbolic evaluation checks the program's logic (exact perception of every symbol);
    perceptual evaluation runs it on images with the nets it was trained with.
    """
    problem = program.problem
    task = problem.task
    if not isinstance(task, GeneratedTask):
        raise ValueError(f"task '{task.name}' has no example generator: `ntpt evaluate` is for the "
                         "built-in tasks (a data file's program is checked on its batches by train)")
    perceptual = problem.perceptual if perceptual is None else perceptual
    if task.length_hyper is None:
        lengths = [task.train_lengths[0]]
    nets = problem.compile().nets
    if perceptual:
        if not library:
            raise ValueError("this program has no saved library: evaluate it symbolically")
        view = saved_nets(nets, library)
    else:
        view = OracleLibrary(nets)
    scores = {}
    for length in lengths:
        batch = task.examples(examples, length=length, split="test", seed=seed + length,
                              perceptual=perceptual, data_dir=data_dir)
        out = program.run(batch.inputs, hypers=batch.hypers, library=view)
        scores[length] = float(discrete_correct(out, batch).float().mean())
    return scores


def net_accuracy(library: LibrarySnapshot, program: LearnedProgram, *, data_dir=None) -> dict[str, float]:
    """Test-set accuracy of each learned library net on its own symbols (net_0 on the MNIST
    test set, net_1 on the held-out handwritten operators)."""
    fns = program.problem.compile().nets
    view = saved_nets(fns, library)
    pools = SymbolPools.load(data_dir, "test")
    out = {}
    for name, fn in fns.items():
        if name not in NET_SYMBOLS or name not in library:
            continue
        low, high = NET_SYMBOLS[name]
        rows = (pools.symbols >= low) & (pools.symbols < high)
        images = torch.from_numpy(pools.images[rows]).float() / 255.0
        labels = torch.from_numpy(pools.symbols[rows] - low)
        with torch.no_grad():
            guess = view.classify(fn, [images])[0]
        out[name] = float((guess == labels).float().mean())
    return out
