"""NTPT after the sweep: the verified restart trained on with its program fixed, then tested.

Continued training runs the relaxed model with the Params one-hot at the verified program
(the program is *fixed*; only ``net_0``/``net_1`` learn, with Adam) on 2-digit training
expressions, scores ``net_0`` on the MNIST validation split every ``eval_every`` steps, keeps
the best nets and stops after ``patience`` validations without improvement. Testing runs the
discrete program with those nets on the experiment's test expressions of every length, and
with exact perception (the one-hot program of Fig. 8a); the nets' confusion matrices on the
test images give the exact expectation (:mod:`.expectation`).
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
import torch.nn.functional as F

from ..data.symbols import NET_SYMBOLS, SymbolPools
from ..lang.relaxed import run_relaxed
from ..library import LibrarySnapshot, NeuralLibrary, OracleLibrary, saved_nets
from ..parts import Progress
from ..program import LearnedProgram
from ..tasks import Examples, discrete_correct, relaxed_nll
from .data import test_batches
from .expectation import confusion, expected_accuracy
from .spec import GeneraliseSpec


def _net_images(data_dir: str | None, split: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    pools = SymbolPools.load(data_dir, split)
    out = {}
    for name, (low, high) in NET_SYMBOLS.items():
        rows = (pools.symbols >= low) & (pools.symbols < high)
        out[name] = (torch.from_numpy(pools.images[rows]).float() / 255.0,
                     torch.from_numpy(pools.symbols[rows] - low))
    return out


@torch.no_grad()
def net_predictions(library: NeuralLibrary, images: dict[str, tuple[torch.Tensor, torch.Tensor]]
                    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{net: (true labels, predicted labels)}`` of restart 0's nets on their own symbols."""
    out = {}
    for name, (x, y) in images.items():
        if name in library.nets:
            fn = library.nets[name].fn
            out[name] = (y.numpy(), library.logits(fn, [x], 0)[0].argmax(-1).numpy())
    return out


def library_accuracy(library: LibrarySnapshot, data_dir: str | None = None) -> dict[str, float]:
    """Test-set accuracy of a library's ``net_0`` (MNIST) and ``net_1`` (operators)."""
    from ..problems import problem

    nets = NeuralLibrary(problem("math", perceptual=True).compile().nets, [0])
    nets.load(library)
    return {name: float((guess == true).mean())
            for name, (true, guess) in net_predictions(nets, _net_images(data_dir, "test")).items()}


def continue_training(spec: GeneraliseSpec, program: LearnedProgram, library: LibrarySnapshot, *,
                      seed: int, data_dir: str | None = None, progress: Progress | None = None
                      ) -> tuple[LibrarySnapshot, dict]:
    """Train the nets of a verified program with the program fixed; the best nets (by ``net_0``'s
    validation accuracy) and a record of the curve."""
    start = time.perf_counter()
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    c = spec.continued
    problem = program.problem
    model = problem.compile()
    probs = {name: F.one_hot(torch.as_tensor(np.asarray(program.values[name])), decl.size).float()[None]
             for name, decl in model.params.items()}
    nets = NeuralLibrary(model.nets, [seed])
    nets.load(library)
    optimizer = torch.optim.Adam(nets.parameters(), lr=c.lr)
    val = _net_images(data_dir, "val")
    rng = np.random.default_rng([seed, 2])

    def score() -> dict[str, float]:
        return {name: float((guess == true).mean())
                for name, (true, guess) in net_predictions(nets, val).items()}

    first = score()
    best, best_nets, stale, step = first["net_0"], nets.snapshot(0), 0, 0
    curve = [(0, first)]
    while step < c.max_steps and stale < c.patience:
        examples = problem.train_examples(c.batch_size, rng, data_dir=data_dir)
        loss = relaxed_nll(run_relaxed(model, probs, nets, examples.inputs), examples)[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if step % c.eval_every == 0:
            now = score()
            curve.append((step * c.batch_size, now))
            if now["net_0"] > best:
                best, best_nets, stale = now["net_0"], copy.deepcopy(nets.snapshot(0)), 0
            else:
                stale += 1
        if progress is not None:
            progress(step, c.max_steps)
    return best_nets, {"program_fixed": True, "steps": step, "examples": step * c.batch_size,
                       "stopped": "plateau" if stale >= c.patience else "max_steps",
                       "val_curve": curve, "val_net_0_start": first["net_0"], "val_net_0_best": best,
                       "wall_s": time.perf_counter() - start}


def test_ntpt(spec: GeneraliseSpec, program: LearnedProgram, library: LibrarySnapshot, *,
              data_dir: str | None = None, progress: Progress | None = None) -> dict:
    """The program's accuracy by length with its nets (images) and with exact perception
    (symbols), the nets' test accuracy and confusion matrices, and the exact expectation."""
    fns = program.problem.compile().nets
    view = saved_nets(fns, library)  # a RestartView of a one-restart NeuralLibrary
    oracle = OracleLibrary(fns)
    images, symbols = {}, {}
    for k, n in enumerate(spec.lengths):
        hypers = {"N_DIGITS": n}
        right = {"images": 0, "symbols": 0}
        total = 0
        for chunk in test_batches(n, spec.evaluate.examples, seed=spec.evaluate.seed, perceptual=True,
                                  data_dir=data_dir):
            examples = Examples(chunk.inputs, {"result": chunk.target}, chunk.symbols, hypers)
            right["images"] += int(discrete_correct(program.run(chunk.inputs, hypers=hypers, library=view),
                                                    examples).sum())
            exact = program.run(chunk.symbols, hypers=hypers, library=oracle)
            right["symbols"] += int(discrete_correct(exact, examples).sum())
            total += len(chunk)
        images[n], symbols[n] = right["images"] / total, right["symbols"] / total
        if progress is not None:
            progress(k + 1, len(spec.lengths))
    predictions = net_predictions(view.library, _net_images(data_dir, "test"))
    matrices = {name: confusion(true, guess, NET_SYMBOLS[name][1] - NET_SYMBOLS[name][0])
                for name, (true, guess) in predictions.items()}
    net_accuracy = {name: float((guess == true).mean()) for name, (true, guess) in predictions.items()}
    exact = expected_accuracy(matrices["net_0"], matrices["net_1"], spec.evaluate.max_length)
    p = net_accuracy["net_0"]
    model = program.problem.compile()
    program_params = sum(decl.size * int(np.prod(decl.shape)) for decl in model.params.values())
    net_params = sum(p.numel() for p in view.library.parameters())
    return {"accuracy": images, "onehot_accuracy": symbols, "net_accuracy": net_accuracy,
            "params": {"ntpt": program_params + net_params, "ntpt-onehot": program_params},
            "confusion": {name: m.tolist() for name, m in matrices.items()},
            "exact": exact, "p_n": {n: p ** n for n in spec.lengths}}

