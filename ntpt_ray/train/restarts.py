"""Training R independently initialised restarts of a model as one tensor computation.

Each restart has its own Param logits and (in perceptual mode) its own copy of the neural
library; the loss is a sum over restarts, so Adam keeps them independent while every
operation runs once on a leading restart dimension.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..lang.relaxed import run_relaxed
from ..library import LibrarySnapshot, NeuralLibrary, OracleLibrary, RestartView
from ..problems import Problem
from ..tasks import Examples, relaxed_correct, relaxed_nll
from .optim import RestartAdam
from .params import ProgramParams
from .verify import Verification, Verifier


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of gradient search (one restart's budget is ``steps x batch_size``)."""

    steps: int = 600
    batch_size: int = 16
    lr: float = 0.1  # Adam, Param logits
    library_lr: float | None = None  # Adam, neural library; default lr / 100 (paper, Sec. 6.1)
    init_scale: float = 1.0  # std of the initial Param logits
    entropy_start: float = -0.05  # weight of the Params' entropy in the loss, moved linearly
    entropy_end: float = 0.05  # from start to end over training (negative rewards entropy)
    val_every: int = 25
    val_size: int = 100  # validation examples per length
    test_size: int = 100  # test examples per test length
    beam: int = 1024  # candidate programs decoded per restart
    frozen_nets: tuple[str, ...] = ()  # library nets used as they are, never trained

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "val_every", "val_size", "test_size", "beam"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "init_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TrainConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.library_lr is not None and not self.library_lr > 0:
            raise ValueError(f"TrainConfig.library_lr must be > 0, got {self.library_lr}")

    @property
    def effective_library_lr(self) -> float:
        return self.lr / 100 if self.library_lr is None else self.library_lr


@dataclass
class RestartResult:
    """The outcome of one restart."""

    seed: int
    val_curve: list[tuple[int, float]] = field(default_factory=list)  # (examples seen, accuracy)
    verification: Verification | None = None

    @property
    def verified(self) -> bool:
        return bool(self.verification and self.verification.verified)


class RestartBatch:
    """R restarts of ``problem`` (one per seed) trained in lock-step on shared batches."""

    def __init__(self, problem: Problem, seeds: Sequence[int], config: TrainConfig = TrainConfig(),
                 *, library: LibrarySnapshot | None = None, verifier: Verifier | None = None,
                 data_seed: int | None = None, data_dir=None):
        self.problem = problem
        self.seeds = list(seeds)
        self.config = config
        self.data_dir = data_dir
        self.model = problem.compile()
        self.params = ProgramParams(self.model, self.seeds, config.init_scale)
        groups = [(list(self.params.parameters()), config.lr)]
        if problem.perceptual:
            self.library = NeuralLibrary(self.model.nets, self.seeds)
            if library is not None:
                self.library.load(library)
            unknown = set(config.frozen_nets) - set(self.library.nets)
            if unknown:
                raise ValueError(f"frozen nets {sorted(unknown)} are not @Learn functions of model "
                                 f"'{problem.model}' (it has {', '.join(self.library.nets)})")
            trained = [net for name, net in self.library.nets.items() if name not in config.frozen_nets]
            for net in self.library.nets.values():
                net.requires_grad_(net in trained)
            groups.append(([p for net in trained for p in net.parameters()],
                           config.effective_library_lr))
        else:
            self.library = OracleLibrary(self.model.nets)
        self.optimizer = RestartAdam(groups, len(self.seeds))
        self.rng = np.random.default_rng(self.seeds[0] if data_seed is None else data_seed)
        self.verifier = verifier or Verifier(problem, val_size=config.val_size,
                                             test_size=config.test_size, data_dir=data_dir)
        self.step_count = 0  # steps taken by the batch
        self.steps_done = np.zeros(len(self.seeds), dtype=np.int64)  # steps each restart took
        self.active = np.ones(len(self.seeds), dtype=bool)  # restarts that still train
        self.results = [RestartResult(seed) for seed in self.seeds]

    def reset(self, restart: int, seed: int, library: LibrarySnapshot | None = None) -> None:
        """Start a fresh restart with ``seed`` in slot ``restart`` (its nets from ``library``
        when given, else freshly initialised); it trains from step 0 with its own budget."""
        self.seeds[restart] = seed
        self.params.initialise(restart, seed)
        if self.problem.perceptual:
            self.library.reinitialise(restart, seed)
            if library is not None:
                self.library.load(library, [restart])
        self.optimizer.reset(restart)
        self.steps_done[restart] = 0
        self.active[restart] = True
        self.results[restart] = RestartResult(seed)

    def freeze(self, restart: int) -> None:
        """Stop training slot ``restart`` (its Params and nets stay as they are)."""
        self.active[restart] = False

    @property
    def restarts(self) -> int:
        return len(self.seeds)

    def probs(self) -> dict[str, torch.Tensor]:
        """Param marginals ``{name: [R, *shape, size]}``."""
        return self.params.probs()

    def entropy(self) -> torch.Tensor:
        """Total entropy of each restart's Params ``[R]``."""
        return self.params.entropy()

    def outputs(self, examples: Examples) -> dict[str, torch.Tensor]:
        """Output element marginals ``{name: [R, B, size]}`` of the relaxed model."""
        model = self.model if examples.hypers == self.problem.task.train_hypers \
            else self.problem.compile(examples.hypers)
        return run_relaxed(model, self.probs(), self.library, examples.inputs)

    def step(self) -> float:
        """One Adam step of every active restart on a fresh training batch; returns the mean
        loss per active restart."""
        cfg = self.config
        examples = self.problem.train_examples(cfg.batch_size, self.rng, data_dir=self.data_dir)
        nll = relaxed_nll(self.outputs(examples), examples)  # [R]
        fraction = torch.from_numpy(self.steps_done / max(cfg.steps - 1, 1)).float()
        weight = cfg.entropy_start + (cfg.entropy_end - cfg.entropy_start) * fraction  # [R]
        loss = nll + weight * self.entropy() if bool(weight.any()) else nll
        active = torch.from_numpy(self.active)
        self.optimizer.zero_grad()
        (loss * active).sum().backward()
        self.optimizer.step(active)
        self.steps_done += self.active
        self.step_count += 1
        return float(nll.detach()[active].mean()) if bool(active.any()) else 0.0

    @torch.no_grad()
    def validate(self, record: np.ndarray | None = None) -> np.ndarray:
        """Relaxed validation accuracy of each restart ``[R]``, appended to the curves of the
        restarts in ``record`` (a bool mask; default: the active ones)."""
        correct = np.zeros(self.restarts)
        total = 0
        for examples in self.verifier.val:
            right = relaxed_correct(self.outputs(examples), examples)
            correct += right.expand(self.restarts, len(examples)).float().sum(1).numpy()
            total += len(examples)
        accuracy = correct / total
        for r in np.flatnonzero(self.active if record is None else record):
            seen = int(self.steps_done[r]) * self.config.batch_size
            self.results[r].val_curve.append((seen, float(accuracy[r])))
        return accuracy

    def train(self, callback=None) -> None:
        """Run the configured number of steps, validating every ``val_every`` steps."""
        while self.step_count < self.config.steps:
            loss = self.step()
            accuracy = None
            if self.step_count % self.config.val_every == 0 or self.step_count == self.config.steps:
                accuracy = self.validate()
            if callback is not None:
                callback(self, loss, accuracy)

    def library_view(self, restart: int):
        """The nets restart ``restart`` uses, for the discrete back-end."""
        return RestartView(self.library, restart) if self.problem.perceptual else self.library

    def verify(self, restart: int, beam: int | None = None) -> Verification:
        """Decode restart ``restart`` (beam of K programs) and verify its best candidates."""
        probs = {k: v[restart].detach().numpy() for k, v in self.probs().items()}
        verification = self.verifier.check(probs, self.library_view(restart), beam or self.config.beam)
        self.results[restart].verification = verification
        return verification

    def verify_all(self, beam: int | None = None) -> list[RestartResult]:
        for r in range(self.restarts):
            self.verify(r, beam)
        return self.results

    def library_snapshot(self, restart: int) -> LibrarySnapshot:
        return self.library.snapshot(restart) if self.problem.perceptual else {}
