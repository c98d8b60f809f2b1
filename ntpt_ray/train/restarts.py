"""Training R independently initialised restarts of a model as one tensor computation.

Each restart has its own Param logits, (in perceptual mode) its own copy of the neural library
and its own stream of training batches, drawn from its seed: the examples of every restart
are stacked ``[R, B, ...]`` and run in one pass. The loss is a sum over restarts, so Adam keeps
them independent while every operation runs once on a leading restart dimension; a restart
follows the same trajectory whichever slot, neighbours or process it has. Training runs on one
device (:mod:`~ntpt_ray.train.device`); decoding and discrete verification on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..lang.ir import LearnFn, Slot
from ..lang.relaxed import PATHS, relaxed_class, run_relaxed
from ..library import LibrarySnapshot, NeuralLibrary, OracleLibrary, RestartView, saved_nets
from ..problems import Problem
from ..tasks import UNOBSERVED, Examples, relaxed_correct
from .allocator import retain_freed_memory
from .config import TrainConfig
from .device import resolve_device
from .optim import RestartAdam
from .params import ProgramParams
from .verify import Verification, Verifier


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
    """R restarts of ``problem`` (one per seed) trained in lock-step, each on batches from its
    own stream: restart ``seed``'s k-th batch depends on ``(data_seed, seed, k)`` alone.
    ``path`` picks the relaxed back-end (``fast``, or the ``reference`` it is tested against),
    ``device`` where the Params, nets, optimiser state and batches live (see
    :func:`~ntpt_ray.train.device.resolve_device`)."""

    def __init__(self, problem: Problem, seeds: Sequence[int], config: TrainConfig = TrainConfig(),
                 *, library: LibrarySnapshot | None = None, verifier: Verifier | None = None,
                 data_seed: int = 0, data_dir=None, path: str = "fast", device: str = "cpu"):
        retain_freed_memory()
        self.problem = problem
        self.path = path
        self.device = resolve_device(device)
        self._per_restart = _PER_RESTART[relaxed_class(path)]
        self.seeds = list(seeds)
        self.config = config
        self.data_dir = data_dir
        self.model = problem.compile()
        self._val_on_device: list[Examples] | None = None
        self.params = ProgramParams(self.model, self.seeds, config.init_scale, self.device)
        groups = [(list(self.params.parameters()), config.lr)]
        if problem.perceptual:
            self.library = NeuralLibrary(self.model.nets, self.seeds, self.device)
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
            self.library = OracleLibrary(self.model.nets, self.device)
        self.optimizer = RestartAdam(groups, len(self.seeds), device=self.device)
        self.data_seed = data_seed
        self.streams = [self._stream(seed) for seed in self.seeds]  # each restart's batches
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
        self.streams[restart] = self._stream(seed)
        self.steps_done[restart] = 0
        self.active[restart] = True
        self.results[restart] = RestartResult(seed)

    def _stream(self, seed: int) -> np.random.Generator:
        return np.random.default_rng([self.data_seed, seed])

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
        """Output element marginals ``{name: [R, B, size]}`` of the relaxed model on examples
        shared by every restart."""
        inputs = _on(examples, self.device).inputs
        return run_relaxed(self._model(examples), self.probs(), self.library, inputs, self.path)

    def _model(self, examples: Examples):
        hypers = examples.hypers
        return self.model if hypers == self.problem.task.train_hypers else self.problem.compile(hypers)

    def _batches(self) -> list[tuple[Examples, torch.Tensor]]:
        """The next batch of every active restart, drawn from its stream and stacked ``[R, B,
        ...]`` per kind of batch (its hypers and size: one kind but for data files of several
        batches), each with the mask of the restarts it is for; the other rows repeat one of
        them (they are run but not trained on); both on the batch's device."""
        active = np.flatnonzero(self.active)
        out = []
        streams = [self.streams[r] for r in active]
        kinds = self.problem.stacked_train_examples(self.config.batch_size, streams, self.data_dir)
        for rows, stacked in kinds:
            restarts = torch.from_numpy(active[rows])
            mask = torch.zeros(self.restarts, dtype=torch.bool)
            mask[restarts] = True
            pick = torch.zeros(self.restarts, dtype=torch.long)  # the other rows: the kind's first
            pick[restarts] = torch.arange(len(rows))
            out.append((_on(stacked.rows(pick), self.device), mask.to(self.device)))
        return out

    def step(self) -> float:
        """One Adam step of every active restart on the next batch of its own; returns the
        mean loss per active restart."""
        cfg = self.config
        self.step_count += 1
        if not self.active.any():
            return 0.0
        nll = torch.zeros(self.restarts, device=self.device)
        probs = self.probs()  # one softmax per step, for every batch and the entropy
        for examples, mask in self._batches():
            outputs = self._per_restart(self._model(examples), probs, self.library, examples.inputs).run()
            nll = nll + torch.where(mask, _per_restart_nll(outputs, examples), 0.0)
        fraction = torch.from_numpy(self.steps_done / max(cfg.steps - 1, 1)).float().to(self.device)
        weight = cfg.entropy_start + (cfg.entropy_end - cfg.entropy_start) * fraction  # [R]
        loss = nll + weight * self.params.entropy(probs) if bool(weight.any()) else nll
        active = torch.from_numpy(self.active).to(self.device)
        self.optimizer.zero_grad()
        (loss * active).sum().backward()
        self.optimizer.step(active)
        self.steps_done += self.active
        return float(nll.detach()[active].mean())

    @torch.no_grad()
    def validate(self, record: np.ndarray | None = None) -> np.ndarray:
        """Relaxed validation accuracy of each restart ``[R]``, appended to the curves of the
        restarts in ``record`` (a bool mask; default: the active ones)."""
        correct = np.zeros(self.restarts)
        total = 0
        if self._val_on_device is None:  # moved once, not on every validation
            self._val_on_device = [_on(examples, self.device) for examples in self.verifier.val]
        for examples in self._val_on_device:
            right = relaxed_correct(self.outputs(examples), examples)
            correct += right.expand(self.restarts, len(examples)).float().sum(1).cpu().numpy()
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
        """The nets restart ``restart`` uses, for the discrete back-end (on the CPU)."""
        if self.device.type != "cpu":
            if self.problem.perceptual:
                return saved_nets(self.model.nets, self.library_snapshot(restart))
            return OracleLibrary(self.model.nets)
        return RestartView(self.library, restart) if self.problem.perceptual else self.library

    def verify(self, restart: int, beam: int | None = None, verifier: Verifier | None = None) -> Verification:
        """Decode restart ``restart`` (beam of K programs) and verify its best candidates (with
        the batch's verifier unless ``verifier`` is given)."""
        probs = {k: v[restart].detach().cpu().numpy() for k, v in self.probs().items()}
        verification = (verifier or self.verifier).check(probs, self.library_view(restart),
                                                         beam or self.config.beam)
        self.results[restart].verification = verification
        return verification

    def verify_all(self, beam: int | None = None) -> list[RestartResult]:
        for r in range(self.restarts):
            self.verify(r, beam)
        return self.results

    def library_snapshot(self, restart: int) -> LibrarySnapshot:
        """Restart ``restart``'s nets, on the CPU (``{}`` in symbolic mode)."""
        return self.library.snapshot(restart) if self.problem.perceptual else {}


def _on(examples: Examples, device: torch.device) -> Examples:
    """``examples`` with their inputs and outputs on ``device``."""
    def moved(part: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: t.to(device) for name, t in part.items()}

    return Examples(moved(examples.inputs), moved(examples.outputs), examples.symbols, examples.hypers,
                    examples.name)


def _per_restart_nll(outputs: dict[str, torch.Tensor], examples: Examples) -> torch.Tensor:
    """``[R]``: :func:`~ntpt_ray.tasks.relaxed_nll` with each restart's own targets ``[R, B]``."""
    total = 0
    for name, target in examples.outputs.items():
        p = outputs[name].gather(-1, target.clamp_min(0).unsqueeze(-1)).squeeze(-1).clamp_min(1e-9)
        total = total - (p.log() * (target != UNOBSERVED)).sum(1)
    return total / target.shape[1]


class _PerRestart:
    """The relaxed back-end on examples of each restart's own: every input ``[R, B, ...]``
    (a mixin over one of the relaxed interpreters)."""

    def __init__(self, model, params, library, inputs):
        super().__init__(model, params, library, inputs)
        self.batch = next(iter(inputs.values())).shape[1]

    def tensor(self, slot: Slot) -> torch.Tensor:
        name, index = slot
        return self.inputs[name][(slice(None), slice(None), *index)]

    def input(self, slot: Slot) -> torch.Tensor:
        return F.one_hot(self.tensor(slot).long(), self.model.decls[slot[0]].size).float()

    def apply_net(self, fn: LearnFn, args: list[torch.Tensor]) -> torch.Tensor:
        """Each restart's net on its own inputs (symbolic mode: exact perception of the ids)."""
        if isinstance(self.library, OracleLibrary):
            return self.library.tables[fn.name][args[0].long()]
        shape = (self.restarts, self.batch, -1)
        x = torch.cat([a.reshape(shape).float() if isinstance(dim, tuple) else a.expand(shape)
                       for a, dim in zip(args, fn.arg_dims)], dim=-1)
        return self.library.nets[fn.name](x).softmax(-1)


_PER_RESTART: dict[type, type] = {
    base: type(f"_PerRestart{base.__name__}", (_PerRestart, base), {})
    for base in PATHS.values()}
