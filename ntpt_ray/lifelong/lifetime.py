"""One Ray task's work: R lifetimes of one model, trained on the schedule and evaluated.

Every model sees the same schedule and the same batches for the same lifetimes (the data
stream is seeded by the lifetimes, not the model or the process it runs in). Evaluations run
every ``eval_every`` examples on the fixed first ``eval_size`` grids of each test pool, for the
tasks shown so far, and once at the end on the whole pool. NTPT's accuracy is that of the
program decoded and verified at that moment, run discretely with the current nets; its
relaxed accuracy, whether the program is verified, and the nets' accuracies go beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
import torch

from ..data.symbols import NET_SYMBOLS, SymbolPools
from .baselines import make_baseline
from .ntpt import NTPTLearner
from .pools import GridPool, TaskPools
from .spec import LifelongSpec

EVAL_CHUNK = 500  # grids per forward pass at evaluation
DECODE_VAL = 200  # validation grids a decoded program is chosen on
NET_EVAL = 2000  # test images per net accuracy during training (all at the end)
COMMIT_PROBE = 16  # training grids whose loss shows which nets a committed program calls


@lru_cache(maxsize=2)
def task_pools(spec_data, tasks: tuple[str, ...], data_dir: str | None) -> TaskPools:
    """The experiment's pools, built once per process."""
    return TaskPools.build(tasks, train_size=spec_data.train_size, val_size=spec_data.val_size,
                           test_size=spec_data.test_size, seed=spec_data.seed, data_dir=data_dir)


def lifetime_seed(spec: LifelongSpec, lifetime: int) -> int:
    return spec.lifetimes.seed * 1000 + lifetime


def make_learner(spec: LifelongSpec, model: str, seeds: Sequence[int]):
    tasks = spec.tasks.order
    if model == "ntpt":
        return NTPTLearner(seeds, tasks=tasks, init_scale=spec.ntpt.init_scale, candidates=spec.ntpt.candidates)
    return make_baseline(model, seeds, tasks=tasks)


def make_optimizer(spec: LifelongSpec, model: str, learner, lr: float) -> torch.optim.Optimizer:
    if model == "ntpt":
        groups = learner.parameter_groups(lr, spec.ntpt.library_lr * lr / spec.ntpt.lr, spec.ntpt.library_eps)
        kind = spec.ntpt.optimizer
    else:
        groups = learner.parameter_groups(lr)
        kind = spec.baselines.optimizer
    return torch.optim.RMSprop(groups) if kind == "rmsprop" else torch.optim.Adam(groups)


class _Evaluator:
    """Accuracy of every lifetime on each task shown so far, on a fixed subset of its pools."""

    def __init__(self, spec: LifelongSpec, model: str, learner, restarts: int, pools: TaskPools,
                 split: str, data_dir: str | None):
        self.spec, self.model, self.learner, self.pools = spec, model, learner, pools
        self.split = split
        self.restarts = restarts
        if model == "ntpt":
            images = SymbolPools.load(data_dir, "test")
            order = np.random.default_rng(0).permutation(len(images.symbols))
            self.net_images = {}
            for name, (low, high) in NET_SYMBOLS.items():
                rows = order[(images.symbols[order] >= low) & (images.symbols[order] < high)]
                self.net_images[name] = (images.images[rows], images.symbols[rows] - low)

    def pool(self, task: int) -> GridPool:
        return (self.pools.test if self.split == "test" else self.pools.val)[task]

    def __call__(self, shown: set[int], final: bool) -> dict:
        limit = None if final else self.spec.data.eval_size
        tasks = len(self.pools.tasks)
        accuracy = np.full((self.restarts, tasks), np.nan)
        out: dict = {"accuracy": accuracy}
        if self.model == "ntpt":
            out.update(relaxed=np.full_like(accuracy, np.nan), verified=np.zeros_like(accuracy, dtype=bool),
                       programs={}, decoded={}, nets=self.nets(final))
        for k in sorted(shown):
            pool = self.pool(k)
            if self.model != "ntpt":
                right = sum((self.learner.predict(k, b) == b.target).sum(1).numpy()
                            for b in pool.chunks(EVAL_CHUNK, limit))
                accuracy[:, k] = right / min(limit or len(pool), len(pool))
                continue
            val = self.pools.val[k].batch(slice(0, DECODE_VAL))
            beam = self.spec.ntpt.final_beam if final else self.spec.ntpt.beam
            decoded = [self.learner.decode(k, r, val, beam) for r in range(self.restarts)]
            right = np.zeros(self.restarts)
            relaxed = np.zeros(self.restarts)
            for b in pool.chunks(EVAL_CHUNK, limit):
                relaxed += (self.learner.predict_relaxed(k, b) == b.target).sum(1).numpy()
                right += [int((self.learner.run_program(k, r, d.values, b) == b.target).sum())
                          for r, d in enumerate(decoded)]
            n = min(limit or len(pool), len(pool))
            accuracy[:, k] = right / n
            out["relaxed"][:, k] = relaxed / n
            out["verified"][:, k] = [d.verified for d in decoded]
            out["decoded"][k] = decoded
            if final:
                out["programs"][k] = [self.learner.listing(k, d.values) for d in decoded]
        return out

    def nets(self, final: bool) -> dict[str, np.ndarray]:
        out = {}
        for name, (images, labels) in self.net_images.items():
            if name not in self.learner.library.nets:
                continue
            n = len(labels) if final else min(NET_EVAL, len(labels))
            out[name] = self.learner.net_accuracy(
                name, torch.from_numpy(images[:n].astype(np.float32) / 255.0), torch.from_numpy(labels[:n]))
        return out


def run_lifetimes(spec: LifelongSpec, model: str, lifetimes: Sequence[int], *, lr: float | None = None,
                  per_task: int | None = None, split: str = "test", data_dir: str | None = None,
                  progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """Train lifetimes ``lifetimes`` of ``model`` as one tensor computation and return one
    record per lifetime (curves, final accuracies, programs, nets, shown times); an NTPT record
    also carries its final nets under ``"library"`` (a LibrarySnapshot, the one non-JSON value).
    ``split = "val"`` evaluates on the validation pools (learning-rate tuning)."""
    start = time.perf_counter()
    torch.set_num_threads(1)
    tasks = tuple(spec.tasks.order)
    pools = task_pools(spec.data, tasks, data_dir)
    schedule = spec.make_schedule(per_task)
    lr = lr or spec.lr_of(model)
    seeds = [lifetime_seed(spec, i) for i in lifetimes]
    torch.manual_seed(seeds[0])
    learner = make_learner(spec, model, seeds)
    optimizer = make_optimizer(spec, model, learner, lr)
    evaluate = _Evaluator(spec, model, learner, len(seeds), pools, split, data_dir)
    rng = np.random.default_rng([spec.lifetimes.seed, *lifetimes])
    batch_size = spec.schedule.batch_size
    entropy = spec.ntpt.entropy if model == "ntpt" else 0.0
    keep_owned = model == "ntpt" and spec.ntpt.library_teachers == "committed"
    restarted: dict[tuple[int, int], list[int]] = {}  # (task, lifetime) -> its examples at each restart
    shown: dict[int, list[int]] = {}
    curve: list[tuple[int, dict]] = []
    t = 0
    next_eval = spec.schedule.eval_every
    while t < schedule.total:
        k = schedule.draw(t, rng)
        shown.setdefault(k, []).append(t)
        batch = pools.train[k].sample(batch_size, rng)
        loss = learner.loss(k, batch, entropy) if entropy else learner.loss(k, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        if keep_owned:
            learner.keep_owned_nets(k)
        optimizer.step()
        t += batch_size
        if t >= next_eval and t < schedule.total:
            curve.append((t, evaluate(set(shown), final=False)))
            next_eval += spec.schedule.eval_every
            if model == "ntpt" and spec.ntpt.commit_verified:
                _commit_verified(learner, curve[-1][1]["decoded"], pools)
                if spec.ntpt.restart_after:
                    _restart_stuck(learner, optimizer, shown, spec.ntpt.restart_after, batch_size, restarted)
        if progress is not None:
            progress(t, schedule.total)
    final = evaluate(set(shown), final=True)
    curve.append((t, final))  # the last point of every curve: the whole test pool
    wall = time.perf_counter() - start
    library = learner.library if model == "ntpt" else None
    return [_record(spec, model, i, r, lr, schedule.per_task, split, curve, final, shown, wall, library, restarted)
            for r, i in enumerate(lifetimes)]


def _commit_verified(learner: NTPTLearner, decoded: dict[int, list], pools: TaskPools) -> None:
    """Commit every lifetime's newly verified program (a committed one decodes as itself)."""
    for k, programs in decoded.items():
        for r, program in enumerate(programs):
            if program.verified and (k, r) not in learner.commitments:
                learner.commit(k, r, program, pools.train[k].batch(slice(0, COMMIT_PROBE)))


def _restart_stuck(learner: NTPTLearner, optimizer: torch.optim.Optimizer, shown: dict[int, list[int]],
                   after: int, batch_size: int, restarted: dict[tuple[int, int], list[int]]) -> None:
    """Draw afresh every uncommitted program whose task has had ``after`` examples since the
    program was drawn, and clear its Params' optimiser state (as a fresh optimiser's)."""
    for k, times in shown.items():
        examples = len(times) * batch_size
        for r in range(learner.restarts):
            history = restarted.setdefault((k, r), [])
            if (k, r) in learner.commitments or examples - (history[-1] if history else 0) < after:
                continue
            history.append(examples)
            learner.restart_program(k, r, len(history))
            for logit in learner.params[k].logits.values():
                for value in optimizer.state.get(logit, {}).values():
                    if isinstance(value, torch.Tensor) and value.dim() > 0:
                        value[list(learner.rows(r))] = 0.0


def _json(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def _record(spec, model, lifetime, r, lr, per_task, split, curve, final, shown, wall, library, restarted) -> dict:
    tasks = spec.tasks.order
    record = {
        "model": model, "lifetime": lifetime, "seed": lifetime_seed(spec, lifetime), "lr": lr,
        "per_task": per_task, "split": split, "wall_s": wall,
        "examples": [t for t, _ in curve],
        "accuracy": {task: [_json(e["accuracy"][r, k]) for _, e in curve] for k, task in enumerate(tasks)},
        "final": {task: _json(final["accuracy"][r, k]) for k, task in enumerate(tasks)},
        "shown": {tasks[k]: times for k, times in sorted(shown.items())},
    }
    if model == "ntpt":
        record["relaxed"] = {task: [_json(e["relaxed"][r, k]) for _, e in curve] for k, task in enumerate(tasks)}
        record["verified"] = {task: [bool(e["verified"][r, k]) for _, e in curve] for k, task in enumerate(tasks)}
        record["nets"] = {name: [float(e["nets"][name][r]) for _, e in curve] for name in final["nets"]}
        record["final_relaxed"] = {task: _json(final["relaxed"][r, k]) for k, task in enumerate(tasks)}
        record["program_restarts"] = {task: len(restarted.get((k, r), [])) for k, task in enumerate(tasks)}
        record["final_verified"] = {task: bool(final["verified"][r, k]) for k, task in enumerate(tasks)}
        record["final_nets"] = {name: float(v[r]) for name, v in final["nets"].items()}
        record["programs"] = {tasks[k]: listings[r] for k, listings in final["programs"].items()}
        record["library"] = library.snapshot(r)  # tensors: the driver saves them beside the record
    return record
