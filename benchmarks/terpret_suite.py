"""TerpreT's published models with their data files, trained through the public path.

For each model/data pair in ../shared/terpret: restarts run, restarts whose decoded program fits
every training instance, restarts verified (right on every held-out batch too; test1 is checked
on `difficulty2`, since its `test1` batch contradicts `train`), and the wall time.

    python benchmarks/terpret_suite.py --restarts 20 --out terpret.json     # about 10 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ntpt_ray.problems import file_problem
from ntpt_ray.train.restarts import TrainConfig
from ntpt_ray.train.run import train_restarts

PAIRS = [("test1", "test1", ["difficulty2"]), ("circuit", "circuit_swap", None),
         ("turing", "turing_invert", None), ("turing", "turing_prepend", None),
         ("turing", "turing_decrement", None), ("basic_block", "basic_block_access", None)]


def measure(root: Path, restarts: int, config: TrainConfig, seed: int) -> list[dict]:
    rows = []
    for model, data, checks in PAIRS:
        prob = file_problem(root / "models" / f"{model}.py", root / "data" / f"{data}_data.json",
                            root / "data" / f"{data}_hypers.json", check_batches=checks)
        began = time.perf_counter()
        summary = train_restarts(prob, restarts=restarts, vectorise=restarts, config=config, seed=seed)
        fit = sum(r.verification.val_accuracy == 1.0 for r in summary.results)
        rows.append({"model": model, "data": data, "restarts": restarts, "fit": fit,
                     "fit_by_argmax": sum(r.verification.argmax_verified for r in summary.results)
                     if not prob.task.held_out else None,
                     "verified": summary.verified, "held_out": list(prob.task.check_batches),
                     "seconds": round(time.perf_counter() - began, 1)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--terpret", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "terpret")
    parser.add_argument("--restarts", type=int, default=20)
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    parser.add_argument("--entropy", type=float, nargs=2, default=(TrainConfig.entropy_start, TrainConfig.entropy_end),
                        metavar=("START", "END"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = TrainConfig(steps=args.steps, lr=args.lr, entropy_start=args.entropy[0], entropy_end=args.entropy[1])
    rows = measure(args.terpret, args.restarts, config, args.seed)
    print("| model | data | restarts | fit | verified (held out) | wall time (s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        held = f"{r['verified']} ({', '.join(r['held_out'])})" if r["held_out"] else "nothing held out"
        print(f"| {r['model']} | {r['data']} | {r['restarts']} | {r['fit']} | {held} | {r['seconds']} |")
    if args.out:
        args.out.write_text(json.dumps({"config": vars(config), "rows": rows}, indent=1, default=str))


if __name__ == "__main__":
    main()
