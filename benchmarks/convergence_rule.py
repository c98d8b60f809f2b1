"""How well does a jump in validation accuracy predict a verifiable restart? (symbolic MATH)

Trains restarts with the default budget, verifies *every* restart at *every* validation (beam
1024), then replays convergence rules on the recorded curves: how many restarts each rule
catches at a validation where they verify, how early, and how many verifications it orders.

    python benchmarks/convergence_rule.py --chunks 2 --out curves.json   # ~25 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from ntpt_ray.problems import problem
from ntpt_ray.sweep import ConvergenceRule
from ntpt_ray.train.restarts import RestartBatch, TrainConfig
from ntpt_ray.train.run import restart_seeds

RULES = [(0.2, 4, 0.4), (0.15, 4, 0.4), (0.1, 4, 0.3), (0.3, 4, 0.5), (0.1, 6, 0.3)]


def record(chunks: int, per_chunk: int) -> list[list[tuple[int, float, bool]]]:
    """Per restart: (step, relaxed validation accuracy, verifiable then) at every validation."""
    prob, out = problem("math"), []
    for chunk in range(chunks):
        seeds = restart_seeds(7 + chunk, per_chunk)
        batch = RestartBatch(prob, seeds, TrainConfig(), data_seed=seeds[0])
        curves = [[] for _ in seeds]

        def on_step(b, loss, accuracy, curves=curves):
            if accuracy is not None:
                for r, curve in enumerate(curves):
                    curve.append((b.step_count, float(accuracy[r]), bool(b.verify(r, 1024).verified)))

        batch.train(on_step)
        out.extend(curves)
    return out


def replay(curves, rule: ConvergenceRule) -> tuple[int, int, list[int]]:
    """(verifications ordered, restarts caught, validation index at which each was caught)."""
    ordered, caught = 0, []
    for curve in curves:
        last = None
        for i, (_, accuracy, verifiable) in enumerate(curve):
            if rule.fires([a for _, a, _ in curve[:i + 1]], last):
                ordered += 1
                if verifiable:
                    caught.append(i)
                    break
                last = accuracy
    return ordered, len(caught), caught


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=2)
    parser.add_argument("--per-chunk", type=int, default=32)
    parser.add_argument("--curves", help="replay recorded curves instead of training")
    parser.add_argument("--out", help="write the recorded curves here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    curves = json.loads(Path(args.curves).read_text()) if args.curves else record(args.chunks,
                                                                                   args.per_chunk)
    if args.out:
        Path(args.out).write_text(json.dumps(curves))
    first = [next((i for i, (*_, ok) in enumerate(c) if ok), None) for c in curves]
    verifiable = [i for i in first if i is not None]
    print(f"{len(curves)} restarts; {sum(c[-1][2] for c in curves)} verify at the end of the budget; "
          f"{len(verifiable)} at some validation, first at validation "
          f"{statistics.median(verifiable) if verifiable else '-'} (median)")
    for jump, window, least in RULES:
        ordered, caught, at = replay(curves, ConvergenceRule(jump, window, least))
        print(f"jump {jump}, window {window}, min accuracy {least}: {ordered} verifications, "
              f"{caught} restarts caught early, at validation "
              f"{statistics.median(at) if at else '-'} (median)")


if __name__ == "__main__":
    main()
