"""Discrete program search beside gradient descent: random, exhaustive and SMT back-ends.

Each searches the distinct programs of a model with exact (symbolic) perception and hands
every candidate to the discrete interpreter's screen and the verifier, as decoded gradient
restarts are. :class:`~ntpt_ray.sweep.worker.SearchWorker` runs them in Ray sweeps.
"""

from .base import DISCRETE, METHODS, SearchRestart, SearchSettings, check_searchable
from .runner import MethodRunner, space_size

__all__ = ["DISCRETE", "METHODS", "MethodRunner", "SearchRestart", "SearchSettings",
           "check_searchable", "space_size"]
