"""Data: MNIST digits, handwritten operators, per-split symbol pools and task batches."""

from .mnist import ensure_mnist, load_mnist
from .operators import OperatorSplit, ensure_operators, load_operators
from .paths import DataError, cache_dir, data_dir
from .symbols import OPERATOR_OFFSET, SPLITS, SYMBOLS, SymbolPools
from .tasks import TASKS, TaskBatch, apply_op, make_batch

__all__ = ["DataError", "OPERATOR_OFFSET", "OperatorSplit", "SPLITS", "SYMBOLS", "SymbolPools",
           "TASKS", "TaskBatch", "apply_op", "cache_dir", "data_dir", "ensure_mnist", "ensure_operators",
           "load_mnist", "load_operators", "make_batch"]
