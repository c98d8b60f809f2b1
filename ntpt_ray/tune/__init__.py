"""Tuning a sweep's learning rates and budgets with Optuna: every trial is a small sweep on Ray."""

from .storage import TuneError, open_storage
from .study import TuneResult, best_trial, run_study, tuned_spec

__all__ = ["TuneError", "TuneResult", "best_trial", "open_storage", "run_study", "tuned_spec"]
