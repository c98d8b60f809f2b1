"""Tasks: the examples a program is learned from (built-in generators, or a user's files)."""

from . import builtin  # noqa: F401  (registers the nine built-in tasks)
from .base import Task, get_task, register_task, registered_tasks
from .builtin import GeneratedTask
from .examples import UNOBSERVED, Examples, discrete_correct, relaxed_correct, relaxed_nll
from .files import FileTask, TaskDataError, TaskFiles

__all__ = ["Examples", "FileTask", "GeneratedTask", "Task", "TaskDataError", "TaskFiles", "UNOBSERVED",
           "discrete_correct", "get_task", "register_task", "registered_tasks", "relaxed_correct",
           "relaxed_nll"]
