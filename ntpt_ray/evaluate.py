"""Running a learned program on fresh test examples, with exact perception or its own nets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .library import LibrarySnapshot, NeuralLibrary, OracleLibrary, RestartView
from .program import LearnedProgram


def evaluate_program(program: LearnedProgram, library: LibrarySnapshot, lengths: Sequence[int], *,
                     examples: int = 1000, seed: int = 12345, perceptual: bool | None = None,
                     data_dir=None) -> dict[int, float]:
    """Accuracy per input length on ``examples`` random test examples each.

    Symbolic evaluation checks the program's logic (exact perception of every symbol);
    perceptual evaluation runs it on images with the nets it was trained with.
    """
    problem = program.problem
    perceptual = problem.perceptual if perceptual is None else perceptual
    if problem.length_hyper is None:
        lengths = [1]
    nets = problem.compile(lengths[0]).nets
    if perceptual:
        if not library:
            raise ValueError("this program has no saved library: evaluate it symbolically")
        stack = NeuralLibrary(nets, [0])
        stack.load(library)
        view = RestartView(stack, 0)
    else:
        view = OracleLibrary(nets)
    scores = {}
    for length in lengths:
        batch = replace(problem, perceptual=perceptual).batch(
            examples, length=length, split="test", seed=seed + length, data_dir=data_dir)
        out = program.run(batch.inputs, length=length, library=view)
        scores[length] = float((out == batch.target).float().mean())
    return scores
