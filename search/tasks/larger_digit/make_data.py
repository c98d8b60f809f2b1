"""Write the examples of the larger-digit task: ``larger_digit.json`` and ``larger_digit.npz``.

    python search/tasks/larger_digit/make_data.py OUT_DIR [--train 400] [--check 200] [--seed 0]

Batch ``train`` draws digits from MNIST's training images, batch ``check`` from its test
images (the data directory is $NTPT_DATA_DIR, or --data-dir). The JSON holds the answers in
TerpreT's format; the .npz beside it holds the images and the digits they show.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ntpt_ray.data.symbols import SymbolPools


def write(out: Path, *, train: int = 400, check: int = 200, seed: int = 0, data_dir=None) -> Path:
    rng = np.random.default_rng(seed)
    batches, arrays = [], {}
    for name, count, split in (("train", train, "train"), ("check", check, "test")):
        digits = rng.integers(0, 10, (count, 2))
        pools = SymbolPools.load(data_dir, split)
        arrays[f"{name}.digits"] = pools.images[pools.sample_indices(digits, rng)]
        arrays[f"{name}.digits.symbols"] = digits
        batches.append({"batch_name": name,
                        "instances": [{"larger": int(row.max())} for row in digits]})
    out.mkdir(parents=True, exist_ok=True)
    (out / "larger_digit.json").write_text(json.dumps(batches))
    np.savez_compressed(out / "larger_digit.npz", **arrays)
    return out / "larger_digit.json"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--check", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    print(write(args.out, train=args.train, check=args.check, seed=args.seed, data_dir=args.data_dir))
