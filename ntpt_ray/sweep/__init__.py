"""Distributed restart sweeps: specs, Ray workers, the coordinator and its durable state."""

from .convergence import ConvergenceRule
from .coordinator import SweepProgress, SweepResult, run_sweep
from .spec import SpecError, SweepSpec, load_spec, parse_spec
from .state import SweepError

__all__ = ["ConvergenceRule", "SpecError", "SweepError", "SweepProgress", "SweepResult", "SweepSpec",
           "load_spec", "parse_spec", "run_sweep"]
