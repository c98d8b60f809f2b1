"""The two decoding speed-ups behind the README's figures, each against the path it replaced.

Trains R symbolic-MATH restarts (seeds of ``--seed``, the bench's first chunk), then, alternating
on the same restarts:

* the distinct-program beam (``distinct_programs``, width K) against the widened joint beam
  with duplicates merged (``top_programs`` at 8 x K, then ``_merge_unread``, widened x4 until it
  holds K), comparing the K scores;
* verifying each restart's best candidate on the 15 test lengths with the model specialised to
  it (``run_programs``' one-program path) against the full model (``run_discrete``), comparing
  the outputs.

    python benchmarks/decoding.py --restarts 32 --beam 8192 --out decoding.json   # about 2 min
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from ntpt_ray.lang.discrete import run_discrete
from ntpt_ray.problems import problem
from ntpt_ray.program import run_programs
from ntpt_ray.train.beam import _merge_unread, distinct_programs, top_programs
from ntpt_ray.train.config import TrainConfig
from ntpt_ray.train.restarts import RestartBatch
from ntpt_ray.train.run import restart_seeds
from ntpt_ray.train.verify import Verifier


def joint_beam(probs, k: int, guards):
    """The decoder before the distinct beam: the joint beam, widened until it holds k."""
    width = 8 * k
    while True:
        programs, scores = _merge_unread(probs, top_programs(probs, width)[0], guards)
        if len(scores) >= k or width >= 64 * k:
            return {name: v[:k] for name, v in programs.items()}, scores[:k]
        width *= 4


def timed(fn, *args, **kwargs):
    began = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=32)
    parser.add_argument("--beam", type=int, default=8192)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    prob, config = problem("math"), TrainConfig()
    verifier = Verifier(prob, val_size=config.val_size, test_size=config.test_size, seed=args.seed)
    batch = RestartBatch(prob, restart_seeds(args.seed, args.restarts), config, verifier=verifier,
                         data_seed=args.seed)
    _, train_seconds = timed(batch.train)
    probs = [{k: v[r].detach().numpy() for k, v in batch.probs().items()} for r in range(args.restarts)]
    for examples in verifier.test:  # compile every test length before timing either path
        prob.compile(examples.hypers)

    beam = {"distinct": [], "joint": []}
    same_scores = 0
    verify = {"specialised": [], "full": []}
    same_outputs = 0
    for p in probs:
        (programs, scores), seconds = timed(distinct_programs, p, args.beam, verifier.guards)
        beam["distinct"].append(seconds)
        (_, old_scores), seconds = timed(joint_beam, p, args.beam, verifier.guards)
        beam["joint"].append(seconds)
        same_scores += bool(np.allclose(scores, old_scores, rtol=0, atol=1e-5))
        one = {k: v[:1] for k, v in programs.items()}  # the beam's best candidate
        agree = True
        for examples in verifier.test:
            inputs = examples.symbolic()
            out, seconds = timed(run_programs, prob, one, inputs, library=verifier.oracle,
                                 hypers=examples.hypers)
            verify["specialised"].append(seconds)
            model = prob.compile(examples.hypers)
            params = {k: torch.as_tensor(v) for k, v in one.items() if k in model.params}
            full, seconds = timed(run_discrete, model, params, verifier.oracle, inputs)
            verify["full"].append(seconds)
            agree &= all(torch.equal(out[name], full[name]) for name in full)
        same_outputs += agree

    result = {
        "restarts": args.restarts, "beam": args.beam, "train_seconds": round(train_seconds, 1),
        "beam_seconds": {k: round(sum(v), 3) for k, v in beam.items()},
        "beam_speedup": sum(beam["joint"]) / sum(beam["distinct"]),
        "restarts_with_the_same_scores": same_scores,
        "verify_seconds": {k: round(sum(v), 3) for k, v in verify.items()},
        "verify_median_ms": {k: round(1e3 * statistics.median(v), 2) for k, v in verify.items()},
        "verify_speedup": sum(verify["full"]) / sum(verify["specialised"]),
        "restarts_with_the_same_outputs": same_outputs,
        "test_lengths": len(verifier.test),
    }
    print(json.dumps(result, indent=1))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
