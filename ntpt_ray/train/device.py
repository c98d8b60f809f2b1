"""Where gradient search runs: ``auto`` (CUDA where there is one), ``cpu`` or ``cuda``."""

from __future__ import annotations

from typing import Any, Literal, get_args

import torch

Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = get_args(Device)


def resolve_device(name: str) -> torch.device:
    """The torch device of setting ``name``; ValueError naming the setting when it is unknown,
    or ``cuda`` where this process sees no CUDA device."""
    if name not in DEVICES:
        raise ValueError(f"device: expected {', '.join(DEVICES[:-1])} or {DEVICES[-1]}, got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' but this process sees no CUDA device "
                         "(torch.cuda.is_available() is False); use 'auto' or 'cpu'")
    return torch.device(name)


def cluster_device(name: str, gpus: float) -> str:
    """The device a sweep's actors use (``cpu`` or ``cuda``) on a Ray cluster with ``gpus``
    GPUs: ``auto`` is ``cuda`` where the cluster has one."""
    if name == "cuda" and gpus < 1:
        raise ValueError("device: 'cuda' but the Ray cluster has no GPU; use 'auto' or 'cpu'")
    return "cuda" if name == "cuda" or (name == "auto" and gpus >= 1) else "cpu"


def actor_options(device: str) -> dict[str, Any]:
    """Ray options of a sweep actor on ``device``: one CPU, and one GPU on ``cuda``."""
    return {"num_cpus": 1, "max_restarts": 0, **({"num_gpus": 1} if device == "cuda" else {})}
