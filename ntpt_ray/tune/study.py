"""An Optuna study over a sweep spec's ``[tune]`` parameters; each trial is a small Ray sweep.

The study lives in an Optuna storage (:mod:`.storage`), created once before any trial starts,
so re-running the same command resumes it and other drivers may join it. Each trial runs the
spec with the trial's parameters as a sweep of ``[tune] restarts`` restarts (every one run, on
the same restart seeds for every trial) and scores the share of restarts that verify; the time
to the first verified program is kept beside it and breaks ties. Trials report their verified
count as restarts finish, so the pruner can stop a trial that is clearly behind. Several trials
run at once, each with its own actors on the Ray cluster.
"""

from __future__ import annotations

import hashlib
import math
import os
import socket
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, Trial, TrialState

from ..sweep.coordinator import SweepProgress, connect, run_sweep
from ..sweep.spec import INTEGER_PARAMETERS, TUNABLE, ParamRange, SweepSpec, TuneSection
from ..sweep.state import now_iso
from .storage import TuneError, open_storage

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass
class TuneResult:
    """What one ``run_study`` call did."""

    study: str
    storage: str
    ran: list[FrozenTrial] = field(default_factory=list)  # trials finished by this call
    finished: int = 0  # finished trials of the study, earlier calls included
    best: FrozenTrial | None = None


def default_params(spec: SweepSpec) -> dict[str, Any]:
    """The spec's own values of its ``[tune]`` parameters."""
    values = {**spec.train.model_dump(), **spec.verify.model_dump()}
    if values["library_lr"] is None:
        values["library_lr"] = spec.train.lr / 100
    return {name: values[name] for name in spec.tune.params}


def tuned_spec(spec: SweepSpec, params: dict[str, Any], *, name: str | None = None,
               restarts: int | None = None, seed: int | None = None,
               run_all: bool = False) -> SweepSpec:
    """``spec`` with ``params`` (``[tune]`` parameter names) set, optionally renamed, resized,
    reseeded and set to run every restart (``[stop] policy = "all"``)."""
    data = spec.model_dump()
    for param, value in params.items():
        data[TUNABLE[param]][param] = int(value) if param in INTEGER_PARAMETERS else value
    if name is not None:
        data["name"] = name
    if restarts is not None:
        data["restarts"]["total"] = restarts
    if seed is not None:
        data["restarts"]["seed"] = seed
    if run_all:
        data["stop"]["policy"] = "all"
    return SweepSpec.model_validate(data)


def contains(space: ParamRange, value: Any) -> bool:
    if space.choices is not None:
        return value in space.choices
    return space.low <= value <= space.high


def best_trial(study: optuna.Study, *, tuned_only: bool = False) -> FrozenTrial | None:
    """The completed trial with the highest success rate; among equals, the one that found its
    first verified program soonest. ``tuned_only`` leaves out the spec's own values (trial 0)."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if not (tuned_only and t.user_attrs.get("baseline"))]
    if not done:
        return None
    return max(done, key=lambda t: (t.value, -(t.user_attrs.get("first_verified_seconds") or math.inf)))


def make_sampler(tune: TuneSection, seed: int) -> optuna.samplers.BaseSampler:
    if tune.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=tune.startup, constant_liar=True)


def make_pruner(tune: TuneSection) -> optuna.pruners.BasePruner:
    warmup = math.ceil(tune.prune_warmup * tune.restarts)
    if tune.pruner == "none":
        return optuna.pruners.NopPruner()
    below = 50.0 if tune.pruner == "median" else tune.prune_percentile
    # Optuna's percentile is the share of trials to *keep*: keeping the top 100 - below % of
    # them prunes the trials under the below-th percentile (the study maximises)
    return optuna.pruners.PercentilePruner(100.0 - below, n_startup_trials=tune.prune_startup,
                                           n_warmup_steps=warmup)


def open_study(spec: SweepSpec, storage_url: str, name: str | None = None) -> optuna.Study:
    """Create the spec's study in ``storage_url`` (or load it if it exists) with its sampler and
    pruner. A new study first runs the spec's own parameter values, as trial 0."""
    tune = tune_section(spec)
    storage = open_storage(storage_url)
    name = name or spec.name
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                load_if_exists=True)
    if not study.get_trials(deepcopy=False):
        study.set_user_attr("spec", spec.model_dump())
        study.set_user_attr("created", now_iso())  # tells apart studies that reuse a name
        defaults = default_params(spec)
        if all(contains(tune.params[p], v) for p, v in defaults.items()):
            study.enqueue_trial(defaults, user_attrs={"baseline": True})
    seed = tune.seed + len(study.get_trials(deepcopy=False))  # a resumed study samples anew
    return optuna.load_study(study_name=name, storage=storage, sampler=make_sampler(tune, seed),
                             pruner=make_pruner(tune))


def recover_stale(study: optuna.Study) -> list[int]:
    """Fail the running trials whose driver ran on this host and is dead, and queue their
    parameters again (the retry continues the dead trial's sweep); return their numbers.

    A trial of a driver lost on another host stays running in the storage; it does not count
    as finished, so another trial takes its place."""
    host = socket.gethostname()
    stale = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        where, _, pid = str(trial.user_attrs.get("driver", "")).rpartition(":")
        if where == host and pid.isdigit() and not _alive(int(pid)):
            study.tell(trial.number, state=TrialState.FAIL)
            first = trial.user_attrs.get("retry_of", trial.number)  # the trial whose sweep it runs
            study.enqueue_trial(trial.params, user_attrs={"retry_of": first})
            stale.append(trial.number)
    return stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Reporter:
    """Reports a trial's verified restarts to Optuna as they finish; prunes when told to."""

    def __init__(self, trial: Trial, restarts: int,
                 on_progress: Callable[[int, SweepProgress], None] | None):
        self.trial, self.restarts, self.on_progress = trial, restarts, on_progress
        self.reported = 0

    def __call__(self, progress: SweepProgress) -> None:
        if self.on_progress is not None:
            self.on_progress(self.trial.number, progress)
        if progress.done <= self.reported:
            return
        # a lower bound of the final success rate, at every restart count up to now
        for step in range(self.reported + 1, progress.done + 1):
            self.trial.report(progress.verified / self.restarts, step)
        self.reported = progress.done
        if progress.done < self.restarts and self.trial.should_prune():
            self.trial.set_user_attr("verified", progress.verified)
            self.trial.set_user_attr("restarts", progress.done)
            raise optuna.TrialPruned(f"{progress.verified} verified after {progress.done} "
                                     f"restart{'' if progress.done == 1 else 's'}")


def trial_sweep_name(spec: SweepSpec, study: optuna.Study, number: int) -> str:
    """``<spec>-tune<tag>-t<number>``: the tag is unique to the study (its name and creation)."""
    identity = f"{study.study_name}@{study.user_attrs.get('created', '')}"
    return f"{spec.name}-tune{hashlib.sha256(identity.encode()).hexdigest()[:4]}-t{number}"


def run_study(spec: SweepSpec, *, trials: int | None = None, storage: str | None = None,
              study_name: str | None = None, parallel: int | None = None,
              store: str | Path | None = None, address: str | None = None,
              data_dir: str | Path | None = None,
              on_progress: Callable[[int, SweepProgress], None] | None = None,
              on_trial: Callable[[optuna.Study, FrozenTrial], None] | None = None) -> TuneResult:
    """Run the spec's study until it has ``trials`` finished trials (default ``[tune] trials``).

    ``parallel`` trials run at once (default: one per CPU of the cluster, at most 4), each a
    sweep with ``CPUs // parallel`` actors. Trials are asked for and told about in this thread
    only (Optuna's own threads would pop one queued trial twice from SQLite); their sweeps run
    in worker threads. Ray is started (or joined at ``address``) here and shut down at the end.
    Verified programs of every trial go to the program store.
    """
    import ray

    tune = tune_section(spec)
    storage = storage or tune.storage
    study = open_study(spec, storage, study_name)
    result = TuneResult(study.study_name, storage)
    recover_stale(study)
    target = trials or tune.trials
    if _count(study, FINISHED) < target:
        started_ray = not ray.is_initialized()
        if started_ray:
            connect(address)
        try:
            cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
            jobs = min(parallel or min(cpus, 4), target - _count(study, FINISHED))
            runner = _TrialRunner(spec, study, actors=max(1, cpus // jobs), store=store,
                                  data_dir=data_dir, on_progress=on_progress)
            for trial in _run_trials(study, runner, target, jobs):
                result.ran.append(trial)
                if on_trial is not None:
                    on_trial(study, trial)
        finally:
            if started_ray:
                ray.shutdown()
    result.finished = _count(study, FINISHED)
    result.best = best_trial(study)
    return result


class _TrialRunner:
    """Runs one trial's sweep (in a worker thread) and returns its success rate."""

    def __init__(self, spec: SweepSpec, study: optuna.Study, *, actors: int, store, data_dir, on_progress):
        self.spec, self.study, self.actors = spec, study, actors
        self.store, self.data_dir, self.on_progress = store, data_dir, on_progress

    def __call__(self, trial: Trial) -> float:
        tune = self.spec.tune
        number = trial.user_attrs.get("retry_of", trial.number)  # a retry continues the sweep
        sweep = tuned_spec(self.spec, trial.params, restarts=tune.restarts, seed=tune.seed, run_all=True,
                           name=trial_sweep_name(self.spec, self.study, number))
        trial.set_user_attr("sweep", sweep.sweep_id)
        found = run_sweep(sweep, store=self.store, data_dir=self.data_dir, actors=self.actors,
                          resume=True, on_progress=_Reporter(trial, tune.restarts, self.on_progress))
        for key, value in [("verified", found.verified), ("restarts", found.done),
                           ("first_verified_seconds", found.first_verified_seconds),
                           ("restarts_per_minute", round(found.restarts_per_minute, 2)),
                           ("seconds", round(found.seconds, 1))]:
            trial.set_user_attr(key, value)
        return found.success_rate


def _run_trials(study: optuna.Study, runner: _TrialRunner, target: int, jobs: int):
    """Keep ``jobs`` trials running until the study has ``target`` finished trials (counting
    those of other drivers); yield each trial this driver finishes."""
    space = distributions(runner.spec.tune)
    driver = f"{socket.gethostname()}:{os.getpid()}"
    running: dict[Future, Trial] = {}
    failure: BaseException | None = None
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="trial")
    try:
        while True:
            while failure is None and len(running) < jobs and _count(study, FINISHED) + len(running) < target:
                trial = study.ask(space)
                trial.set_user_attr("driver", driver)
                running[pool.submit(runner, trial)] = trial
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                trial = running.pop(future)
                try:
                    study.tell(trial, future.result())
                except optuna.TrialPruned:
                    study.tell(trial, state=TrialState.PRUNED)
                except Exception as exc:  # the others finish; then it is raised
                    study.tell(trial, state=TrialState.FAIL)
                    failure = failure or exc
                yield study.get_trials(deepcopy=False)[trial.number]
    finally:  # interrupted: trials still running stay so in the storage, for the next run
        pool.shutdown(wait=False, cancel_futures=True)
    if failure is not None:
        raise failure


def distributions(tune: TuneSection) -> dict[str, BaseDistribution]:
    """The Optuna distribution of every ``[tune]`` parameter."""
    out: dict[str, BaseDistribution] = {}
    for name, space in tune.params.items():
        integer = name in INTEGER_PARAMETERS
        if space.choices is not None:
            out[name] = CategoricalDistribution([int(c) if integer else c for c in space.choices])
        elif integer:
            out[name] = IntDistribution(int(space.low), int(space.high), log=space.log,
                                        step=int(space.step or 1))
        else:
            out[name] = FloatDistribution(space.low, space.high, log=space.log, step=space.step)
    return out


def _count(study: optuna.Study, states) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def tune_section(spec: SweepSpec) -> TuneSection:
    """The spec's ``[tune]`` table, or :class:`TuneError` when it has none."""
    if spec.tune is None:
        raise TuneError(f"spec '{spec.name}' has no [tune] table: declare the parameters to search, "
                        "e.g. [tune.params] lr = { low = 0.01, high = 1.0, log = true }")
    return spec.tune
