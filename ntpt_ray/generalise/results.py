"""``DIR/results.json`` from the experiment's parts, and the table by length.

Schema: ``accuracy`` ``{model: {length: accuracy}}`` (models ``ntpt``, ``ntpt-onehot`` and the
baselines), ``params`` ``{model: count}``, ``restarts`` ``{"run", "verified", "interval"}`` (a
95% Wilson interval of the verified fraction), ``net_accuracy`` (the final nets' test accuracy;
``start_net_accuracy`` the library's), ``expected`` ``{"exact", "p^n"}`` by length,
``train_lengths``, ``examples`` per length, the parts' training records and the protocol.
"""

from __future__ import annotations

import math
from typing import Any

from .spec import GeneraliseSpec

MODELS = ("ntpt", "ntpt-onehot", "lstm-5", "lstm-2", "lstm-onehot", "ngpu-onehot")


def wilson(k: int, n: int, z: float = 1.96) -> list[float]:
    """The 95% Wilson score interval of ``k`` successes in ``n`` trials."""
    if n == 0:
        return [0.0, 1.0]
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def _by_length(values: dict) -> dict[str, float]:
    return {str(k): float(v) for k, v in sorted(values.items(), key=lambda kv: int(kv[0]))}


def aggregate(spec: GeneraliseSpec, parts: dict[str, dict], wall_s: float) -> dict[str, Any]:
    """The results of a run from its parts (``{part name: record}``)."""
    sweep = parts.get("sweep", {})
    results: dict[str, Any] = {
        "accuracy": {}, "params": {}, "train_lengths": {},
        "restarts": {"run": sweep.get("run", 0), "verified": sweep.get("verified", 0),
                     "interval": wilson(sweep.get("verified", 0), sweep.get("run", 0))},
        "net_accuracy": None, "start_net_accuracy": parts.get("library", {}).get("net_accuracy"),
        "library": parts.get("library", {}).get("source"), "expected": {},
        "examples": spec.evaluate.examples, "sweep": sweep, "baselines": {}, "protocol": spec.protocol(),
        "wall_s": wall_s,
    }
    if "ntpt" in parts:
        ntpt = parts["ntpt"]
        results["accuracy"]["ntpt"] = _by_length(ntpt["accuracy"])
        results["accuracy"]["ntpt-onehot"] = _by_length(ntpt["onehot_accuracy"])
        results["params"].update(ntpt["params"])
        results["net_accuracy"] = ntpt["net_accuracy"]
        results["expected"] = {"exact": _by_length(ntpt["exact"]), "p^n": _by_length(ntpt["p_n"])}
        results["program"] = ntpt["program"]
        for model in ("ntpt", "ntpt-onehot"):
            results["train_lengths"][model] = spec.train_lengths(model)
    if "continued" in parts:
        results["continued"] = parts["continued"]
    for model in MODELS[2:]:
        if model in parts:
            record = parts[model]
            results["accuracy"][model] = _by_length(record["accuracy"])
            results["params"][model] = record["params"]
            results["train_lengths"][model] = record["train_lengths"]
            kept = ("steps", "converged", "best_val", "device", "wall_s", "val_curve")
            results["baselines"][model] = {k: record[k] for k in kept}
    return results


def markdown_table(results: dict[str, Any]) -> str:
    """Accuracy by length (rows) for every model, the exact expectation and p^n (columns)."""
    columns = [m for m in MODELS if m in results["accuracy"]]
    extra = [k for k in ("exact", "p^n") if k in results["expected"]]
    lengths = sorted({int(n) for acc in results["accuracy"].values() for n in acc})
    head = ["digits", *columns, *(f"NTPT {k}" for k in extra)]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for n in lengths:
        cells = [f"{results['accuracy'][m][str(n)]:.1%}" if str(n) in results["accuracy"][m] else "-"
                 for m in columns]
        cells += [f"{results['expected'][k][str(n)]:.1%}" for k in extra]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines.append("| params | " + " | ".join(f"{results['params'].get(m, 0):,}" for m in columns)
                 + " |" + " |" * len(extra))
    return "\n".join(lines)
