"""The real coordinator on simulated actors (ntpt_ray.sweep.simulation): no Ray processes."""

from __future__ import annotations

import gc
import math
import threading
import time

import pytest
from typer.testing import CliRunner

from ntpt_ray.cli import app
from ntpt_ray.sweep import parse_spec
from ntpt_ray.sweep.simulation import (
    Fates,
    SimulatedRay,
    SimulatedWorker,
    record,
    simulate,
    simulation_spec,
    with_timings,
)
from ntpt_ray.sweep.state import SweepDirectory
from ntpt_ray.sweep.worker import Assignment, LibraryVersion, RestartWorker
from ntpt_ray.train.run import restart_seeds

SPEC = parse_spec({"name": "sim", "problem": {"task": "add2x2:top"}, "restarts": {"per_actor": 2},
                   "train": {"steps": 40}, "convergence": {"val_every": 10, "val_size": 20},
                   "verify": {"beam": 16, "test_size": 20}})


@pytest.fixture(scope="module")
def recording():
    return record(SPEC)


def test_a_recording_comes_from_a_real_worker(recording):
    assert recording.startup_seconds > 0 and recording.period_seconds > 0 and recording.verify_seconds > 0
    assert recording.program["task"] == "add2x2:top" and "test_accuracy" in recording.verification


def test_a_simulated_worker_answers_like_a_real_one(recording):
    """Same calls, same shape of replies (with the rule off, so that only the budget decides)."""
    spec = SPEC.model_copy(update={"convergence": SPEC.convergence.model_copy(
        update={"jump": 1.0, "min_accuracy": 1.0})})
    real, simulated = RestartWorker(spec), SimulatedWorker(spec, recording, Fates())
    calls = [{"start": [Assignment(r, 1000 + r, 0) for r in range(2)], "library": LibraryVersion(0, {})},
             {}, {"periods": 3}, {"start": [Assignment(2, 1002, 0)]}]
    for call in calls:
        a, b = real.advance(**call), simulated.advance(**call)
        assert {r: len(v) for r, v in a.accuracy.items()} == {r: len(v) for r, v in b.accuracy.items()}
        assert a.steps == b.steps and a.spent == b.spent and a.periods == b.periods
        assert [(c.restart, c.finished, len(c.val_curve)) for c in a.checked] == \
               [(c.restart, c.finished, len(c.val_curve)) for c in b.checked]
    assert a.steps == {2: 10} and real.free_slots == 1
    # restarts beyond the free slots wait in the backlog, started as slots free
    queued = {"start": [Assignment(r, 1000 + r, 0) for r in (3, 4)], "periods": 40, "refill": True}
    for worker in (real, simulated):  # (their verdicts differ: the real one verifies at the budget)
        reply = worker.advance(**queued)
        assert 4 in reply.steps and not worker.backlog.jobs  # restart 4 started when 2 left its slot
    with pytest.raises(ValueError, match=r"at most 4 in all"):
        simulated.advance(start=[Assignment(r, r, 0) for r in range(5, 10)])


def test_a_worker_verifies_when_the_rule_fires_and_the_call_ends_with_the_first_program(recording):
    """Restarts that all verify (at a validation drawn from their seeds): each is verified in
    the period its accuracy jumps, and the call ends after the first such period (its program
    is stored at once), however many periods it was given."""
    fates = Fates(success=1.0, false_alarm=0.0)
    validations = math.ceil(SPEC.train.steps / SPEC.convergence.val_every)
    jumps = {r: fates.of(1000 + r, validations)[1] for r in range(2)}
    worker = SimulatedWorker(SPEC, recording, fates)
    reply = worker.advance(start=[Assignment(r, 1000 + r, 0) for r in range(2)], periods=validations)
    first = min(jumps.values())
    assert reply.periods == first and all(c.verified for c in reply.checked)
    assert sorted(c.restart for c in reply.checked) == sorted(r for r, j in jumps.items() if j == first)
    assert all(len(c.val_curve) == first for c in reply.checked)


def test_the_simulated_clock_skips_waits_and_queues_calls_on_an_actor(recording):
    recording = with_timings(recording, period=50.0, verify=5.0, startup=100.0)
    ray = SimulatedRay(lambda s: SimulatedWorker(s, recording, Fates()), recording.startup_seconds)
    handle = ray.remote(num_cpus=1)(RestartWorker).remote(SPEC)
    began, real = ray.now(), time.perf_counter()
    ping = handle.pid.remote()
    call = handle.advance.remote(start=[Assignment(0, 7, 0)], library=ray.put(LibraryVersion(0, {})))
    assert ray.wait([ping, call], num_returns=1, timeout=1.0) == ([], [ping, call])  # nothing due in 1 s
    assert ray.wait([ping, call], num_returns=1) == ([ping], [call])
    assert ray.now() - began == pytest.approx(100.0, abs=0.5)
    assert ray.wait([call])[0] == [call] and ray.get(call).train_seconds == 50.0
    assert ray.now() - began == pytest.approx(150.0, abs=0.5)  # after the ping: one call at a time
    assert time.perf_counter() - real < 1.0 and ray.calls == ray.reports == 1


def test_the_real_coordinator_handles_every_report_of_simulated_actors(recording, tmp_path):
    recording = with_timings(recording, period=1.0, verify=0.5, startup=2.0)
    actors, rounds = 3, 2
    run = simulate(SPEC, recording, actors=actors, store=tmp_path, rounds=rounds)
    spec = simulation_spec(SPEC, actors, rounds)
    validations = math.ceil(SPEC.train.steps / SPEC.convergence.val_every)
    fates = [Fates().of(seed, validations)[0] for seed in restart_seeds(SPEC.restarts.seed, run.restarts)]
    assert run.restarts == actors * SPEC.restarts.per_actor * rounds == spec.restarts.total
    assert run.outcomes == run.restarts and run.outstanding == 0 and run.calls == run.reports
    assert run.verified == run.stored == fates.count("verifies")
    assert SweepDirectory(tmp_path, spec).load().verified == run.verified
    # a report per actor and period (3 actors: one period per call), fewer when a slot's restart
    # verifies early and none is left to take its place
    assert rounds * actors < run.reports <= rounds * validations * actors
    # the simulated sweep: rounds x a whole budget of periods, at least; the driver's work within it
    assert run.wall_seconds >= rounds * validations * recording.period_seconds
    assert 0 < run.coordinator_seconds <= run.driver_seconds * 1.01 + 1e-3
    assert run.driver_seconds <= run.real_seconds and run.real_seconds < run.wall_seconds
    assert 0 < run.share == run.driver_seconds / run.wall_seconds < 1
    assert 0 < run.report_ms_median <= run.report_ms_p90 <= run.report_ms_max
    assert gc.get_freeze_count() == 0  # the sweep froze what existed before it, and thawed it after


def test_bench_coordinator_rejects_bad_counts():
    result = CliRunner().invoke(app, ["bench-coordinator", "--actors", "2,x"])
    assert result.exit_code == 1 and "--actors expects counts like 2,10,100" in result.stderr


def test_programs_are_stored_by_a_writer_thread_and_count_only_once_durable(recording, tmp_path):
    """The coordinator hands verified programs to its writer thread and goes on; a restart
    counts as verified (in the progress and in the sweep's state) only once its program is
    durable, and the sweep ends only when every program is written."""
    from ntpt_ray.store import ProgramStore
    from ntpt_ray.sweep.coordinator import Coordinator

    gate, writers, seen = threading.Event(), [], {}

    class GatedStore(ProgramStore):
        def add_many(self, programs, **kwargs):
            writers.append(threading.current_thread().name)
            assert gate.wait(30)
            return super().add_many(programs, **kwargs)

    def on_progress(progress):
        if writers and not gate.is_set():  # a batch is being written: nothing counts yet
            seen.update(verified=progress.verified, outcomes=dict(state.outcomes))
            gate.set()

    recording = with_timings(recording, period=1.0, verify=0.5, startup=2.0)
    spec = simulation_spec(SPEC, 1, 1)
    ray = SimulatedRay(lambda s: SimulatedWorker(s, recording, Fates(success=1.0, false_alarm=0.0)),
                       recording.startup_seconds)
    directory = SweepDirectory(tmp_path, spec)
    with directory.lock():
        state = directory.create({}, "fresh")
        result = Coordinator(spec, GatedStore(tmp_path), directory, state, actors=1, data_dir=None,
                             on_progress=on_progress, runtime=ray).run()
    assert writers and all(name.startswith("ntpt-store") for name in writers)
    assert seen == {"verified": 0, "outcomes": {}}
    assert result.verified == spec.restarts.total == len(result.programs) == 2
    assert directory.load().outcomes == {0: "verified", 1: "verified"}


def test_with_many_actors_each_call_trains_several_periods(recording, tmp_path):
    """200 actors with a 1 s period would report 200 times a second: the coordinator asks for
    four periods per call (REPORTS_PER_SECOND = 50), and every restart still ends as its fate says."""
    from ntpt_ray.sweep.coordinator import REPORTS_PER_SECOND

    recording = with_timings(recording, period=1.0, verify=0.5, startup=2.0)
    actors = 200
    run = simulate(SPEC, recording, actors=actors, store=tmp_path, rounds=1)
    validations = math.ceil(SPEC.train.steps / SPEC.convergence.val_every)
    fates = [Fates().of(seed, validations)[0] for seed in restart_seeds(SPEC.restarts.seed, run.restarts)]
    assert run.outcomes == run.restarts and run.verified == run.stored == fates.count("verifies")
    assert math.ceil(actors / REPORTS_PER_SECOND) == 4
    # each actor's first call trains one period (nothing is timed yet), the next ones the rest,
    # a call ending early after a period that verified a program: one period per call would
    # be 800 reports
    assert actors < run.reports <= 2 * actors + run.verified < actors * validations


def test_the_coordinator_keeps_its_schedule_on_the_simulated_clock(recording, tmp_path):
    """Saves, progress and restart times follow the simulated clock (the wall clock of the
    cluster it stands for), not the few real seconds the simulation takes."""
    recording = with_timings(recording, period=1.0, verify=0.5, startup=2.0)
    run = simulate(SPEC, recording, actors=20, store=tmp_path, rounds=2)
    state = SweepDirectory(tmp_path, simulation_spec(SPEC, 20, 2)).load()
    assert run.wall_seconds > 3 * run.real_seconds
    assert state.seconds == pytest.approx(run.wall_seconds, rel=0.05)
    finished = [t.finished for t in state.times.values()]
    assert len(finished) == run.restarts and max(finished) == pytest.approx(run.wall_seconds, rel=0.1)
