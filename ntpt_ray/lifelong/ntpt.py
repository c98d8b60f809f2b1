"""NTPT as a lifelong learner: one neural library, a program per task, trained end to end.

One :class:`~ntpt_ray.library.NeuralLibrary` (``net_0`` digits, ``net_1`` operators, never
frozen) is shared by all tasks; each task has its own :class:`~ntpt_ray.train.params.ProgramParams`
in the 2x2 model. The first task may call only ``net_0`` (``N_NETS = 1``), every later task
both (Sec. 4.1). R lifetimes run as one tensor computation (the library and every task's
Params have a leading lifetime dimension). A task's program is decoded with the beam, chosen
on the validation pool with the current nets, and verified with exact perception. A verified
program can be *committed* (``[ntpt] commit_verified``): from then on that lifetime runs it as
its fixed program for that task, and the library learns through it alone. With
``[ntpt] library_teachers = "committed"`` a net that a lifetime's committed programs call learns
from those programs only, so a task still searching for its program cannot corrupt it.

With ``[ntpt] candidates = C > 1`` each lifetime trains C independently drawn programs per task
side by side (rows ``r * C .. r * C + C - 1`` of every task's Params; they share the lifetime's
nets, and its loss is their mean). At an evaluation the first verified candidate is the
lifetime's program; committing it fixes all C rows to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data.tasks import make_batch
from ..lang.discrete import run_discrete
from ..lang.relaxed import run_relaxed
from ..lang.relevance import param_guards
from ..library import NeuralLibrary, OracleLibrary, RestartView
from ..problems import problem
from ..program import LearnedProgram
from ..tasks import Examples, discrete_correct, relaxed_nll
from ..train.beam import distinct_programs
from ..train.params import ProgramParams
from .batch import GridBatch


@dataclass
class DecodedProgram:
    """One lifetime's program for one task: Param values, whether exact perception verifies it
    on the check grids, and its discrete accuracy on the validation grids with the current nets."""

    values: dict[str, np.ndarray]
    verified: bool
    val_accuracy: float


class _Candidates:
    """A library whose every lifetime's distributions are repeated for its C program candidates."""

    def __init__(self, library: NeuralLibrary, candidates: int):
        self.library, self.candidates = library, candidates

    def probs(self, fn, args: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.library.probs(fn, args).repeat_interleave(self.candidates, 0)


class NTPTLearner(nn.Module):
    """The shared library and the program Params of every task, for R lifetimes (one per seed),
    with ``candidates`` programs per task and lifetime."""

    name = "ntpt"

    def __init__(self, seeds: Sequence[int], *, tasks: Sequence[str], init_scale: float = 1.0,
                 candidates: int = 1):
        super().__init__()
        self.tasks = tuple(tasks)
        self.restarts = len(seeds)
        self.problems = [problem(task, perceptual=True, hypers={"N_NETS": 1 if k == 0 else 2})
                         for k, task in enumerate(self.tasks)]
        self.models = [p.compile() for p in self.problems]
        fns = {name: fn for model in self.models for name, fn in model.nets.items()}
        self.library = NeuralLibrary(fns, seeds)
        self.seeds = tuple(seeds)
        self.candidates = candidates
        self.params = nn.ModuleList(
            ProgramParams(model, [self._seed(s, k, c) for s in seeds for c in range(candidates)], init_scale)
            for k, model in enumerate(self.models))
        self.guards = [param_guards(model) for model in self.models]
        self._check: dict[int, Examples] = {}
        self.commitments: dict[tuple[int, int], DecodedProgram] = {}
        # owned[name][r]: a committed program of lifetime r calls net `name` (see commit)
        self.owned = {name: torch.zeros(self.restarts, dtype=torch.bool) for name in self.library.nets}

    @staticmethod
    def _seed(seed: int, task: int, candidate: int, attempt: int = 0) -> int:
        return seed * 31 + task + 7919 * attempt + 104729 * candidate

    def rows(self, restart: int) -> range:
        """Lifetime ``restart``'s rows of every task's Params (one per candidate)."""
        return range(restart * self.candidates, (restart + 1) * self.candidates)

    @staticmethod
    def inputs(batch: GridBatch, images: bool = True) -> dict[str, torch.Tensor]:
        return {"grid": batch.images if images else batch.symbols, "ints": batch.ints}

    def outputs(self, task: int, batch: GridBatch) -> torch.Tensor:
        """The relaxed answer distribution ``[R * C, B, 19]`` (C candidates per lifetime)."""
        library = self.library if self.candidates == 1 else _Candidates(self.library, self.candidates)
        return run_relaxed(self.models[task], self.params[task].probs(), library, self.inputs(batch))["result"]

    def loss(self, task: int, batch: GridBatch, entropy: float = 0.0) -> torch.Tensor:
        """``[R]``: the negative log-likelihood of the answers (plus ``entropy`` x the Params'
        entropy), the mean over each lifetime's candidates."""
        examples = Examples({}, {"result": batch.target})
        nll = relaxed_nll({"result": self.outputs(task, batch)}, examples)
        loss = nll + entropy * self.params[task].entropy() if entropy else nll
        return loss.view(self.restarts, self.candidates).mean(1)

    @torch.no_grad()
    def predict_relaxed(self, task: int, batch: GridBatch) -> torch.Tensor:
        """``[R, B]``: the most probable answer of the relaxed model (each lifetime's first
        candidate, or its committed program)."""
        return self.outputs(task, batch)[::self.candidates].argmax(-1)

    def parameter_groups(self, lr: float, library_lr: float, library_eps: float = 1e-8) -> list[dict]:
        """Program Params at ``lr``, the library at ``library_lr`` (the paper: 100x smaller) with
        the optimiser's epsilon ``library_eps``."""
        return [{"params": list(self.params.parameters()), "lr": lr},
                {"params": list(self.library.parameters()), "lr": library_lr, "eps": library_eps}]

    def view(self, restart: int) -> RestartView:
        """Lifetime ``restart``'s nets, for the discrete interpreter."""
        return RestartView(self.library, restart)

    def check_examples(self, task: int, n: int = 1000, seed: int = 12345) -> Examples:
        """Symbolic grids (all symbols, no images) on which a verified program must be right."""
        if task not in self._check:
            drawn = make_batch(self.tasks[task], n, seed=seed + task)
            inputs = {"grid": drawn.inputs["grid"], "ints": drawn.inputs.get("ints", torch.zeros(n, 3, dtype=torch.long))}
            self._check[task] = Examples(inputs, {"result": drawn.target})
        return self._check[task]

    def commit(self, task: int, restart: int, program: DecodedProgram, probe: GridBatch) -> None:
        """Make a verified ``program`` lifetime ``restart``'s fixed program for ``task``; the nets
        it calls (those its loss on ``probe`` reaches) become owned by committed programs."""
        if not program.verified:
            raise ValueError(f"{self.tasks[task]}: only a verified program can be committed")
        for row in self.rows(restart):
            self.params[task].commit(row, program.values)
        self.commitments[task, restart] = program
        self.zero_grad(set_to_none=True)
        self.loss(task, probe)[restart].backward()
        for name, net in self.library.nets.items():
            if any(p.grad is not None and bool(p.grad[restart].abs().sum() > 0) for p in net.parameters()):
                self.owned[name][restart] = True
        self.zero_grad(set_to_none=True)

    @torch.no_grad()
    def restart_program(self, task: int, restart: int, attempt: int) -> None:
        """Draw lifetime ``restart``'s (uncommitted) Params for ``task`` afresh, every
        candidate, for the ``attempt``-th time (1, 2, ...), each from a seed of its own."""
        if (task, restart) in self.commitments:
            raise ValueError(f"{self.tasks[task]}: lifetime {restart}'s program is committed")
        for c, row in enumerate(self.rows(restart)):
            self.params[task].initialise(row, self._seed(self.seeds[restart], task, c, attempt))

    def keep_owned_nets(self, task: int) -> None:
        """After a backward pass on ``task``: no gradient into a net a lifetime's committed
        programs call, unless ``task``'s program is committed in that lifetime too."""
        learning = torch.tensor([(task, r) in self.commitments for r in range(self.restarts)])
        for name, net in self.library.nets.items():
            blocked = self.owned[name] & ~learning
            if blocked.any():
                for p in net.parameters():
                    if p.grad is not None:
                        p.grad[blocked] = 0.0

    @torch.no_grad()
    def decode(self, task: int, restart: int, val: GridBatch, beam: int, screen: int = 32) -> DecodedProgram:
        """Per candidate, the beam's K most probable distinct programs, screened on ``screen``
        validation grids, the best on all of ``val`` with the current nets (ties: beam rank),
        then verified: the first verified candidate's program, else the first candidate's. A
        committed program is returned as it is."""
        if (task, restart) in self.commitments:
            return self.commitments[task, restart]
        probs = self.params[task].probs()
        decoded = []
        for row in self.rows(restart):
            decoded.append(self._decode_row(task, restart, {k: v[row].numpy() for k, v in probs.items()},
                                            val, beam, screen))
            if decoded[-1].verified:
                break
        return decoded[-1] if decoded[-1].verified else decoded[0]

    def _decode_row(self, task: int, restart: int, probs: dict[str, np.ndarray], val: GridBatch,
                    beam: int, screen: int) -> DecodedProgram:
        model = self.models[task]
        programs, _ = distinct_programs(probs, beam, self.guards[task])
        view = self.view(restart)

        def accuracy(values, batch: GridBatch) -> np.ndarray:
            params = {k: torch.as_tensor(v) for k, v in values.items()}
            out = run_discrete(model, params, view, self.inputs(batch))["result"]
            return (out == batch.target).float().mean(-1).numpy()

        first = accuracy(programs, val.rows(slice(0, screen)))
        keep = np.union1d(np.argsort(-first, kind="stable")[:16], [0])
        survivors = {k: v[keep] for k, v in programs.items()}
        val_acc = accuracy(survivors, val)
        best = int(np.argmax(val_acc))
        values = {k: v[best] for k, v in survivors.items()}
        check = self.check_examples(task)
        out = run_discrete(model, {k: torch.as_tensor(v[None]) for k, v in values.items()},
                           OracleLibrary(model.nets), check.inputs)
        verified = bool(discrete_correct(out, check).all())
        return DecodedProgram(values, verified, float(val_acc[best]))

    @torch.no_grad()
    def run_program(self, task: int, restart: int, values: dict[str, np.ndarray], batch: GridBatch) -> torch.Tensor:
        """``[B]``: a decoded program's answers with lifetime ``restart``'s current nets."""
        params = {k: torch.as_tensor(v[None]) for k, v in values.items()}
        return run_discrete(self.models[task], params, self.view(restart), self.inputs(batch))["result"][0]

    def listing(self, task: int, values: dict[str, np.ndarray]) -> str:
        """A decoded program as readable source."""
        return LearnedProgram(self.problems[task], values).listing()

    @torch.no_grad()
    def net_accuracy(self, name: str, images: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
        """``[R]``: the share of ``images`` [N, 28, 28] that net ``name`` classifies as ``labels``."""
        fn = next(model.nets[name] for model in self.models if name in model.nets)
        return (self.library.classify(fn, [images]) == labels).float().mean(-1).numpy()

