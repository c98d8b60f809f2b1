"""SMT search: the unrolled program and the examples as constraints for Z3, as TerpreT's SMT
back-end did, built from the same compiled IR as the other back-ends.

:class:`SmtInterpreter` gives the shared IR walk (:mod:`ntpt_ray.lang.interpret`) a third
meaning: a value is a Python integer where it is known (inputs, constants, what follows from
them) and a Z3 term where it depends on Params; a branch weight is a bool or a Z3 formula.
Each example adds ``Output == observed value``. A solver model is a candidate like any other:
the discrete interpreter screens and verifies it; a candidate that fails on a validation example
adds that example to the constraints (counterexample-guided), one that fails only on held-out
checks is excluded, and the solver runs again.
"""

from __future__ import annotations

import itertools
from collections import ChainMap
from collections.abc import Callable, Mapping

import numpy as np
import torch

from ..lang.discrete import NO_OUTPUT
from ..lang.interpret import Interpreter
from ..lang.ir import LearnFn, RuntimeFn, Slot
from ..lang.model import CompiledModel
from ..lang.relevance import relevant_mask
from ..problems import Problem
from ..tasks import UNOBSERVED, Examples
from ..train.verify import Verifier
from .base import SearchRestart, SearchSettings
from .screen import screen
from .space import ProgramSpace


def _known(x) -> bool:
    return isinstance(x, (bool, int))


class SmtInterpreter(Interpreter):
    """Runs a model on one example's concrete inputs with Param elements as Z3 integers."""

    def __init__(self, model: CompiledModel, variable: Callable[[Slot], object],
                 function: Callable[[RuntimeFn], object], library, inputs: Mapping[str, np.ndarray]):
        super().__init__(model, {}, library, inputs)
        self.variable, self.function = variable, function
        self.done: object = False
        self.out: dict[Slot, object] = {}

    def const(self, value: int, size: int):
        return int(value)

    def param(self, slot: Slot):
        return self.variable(slot)

    def input(self, slot: Slot):
        name, index = slot
        return int(self.inputs[name][index])

    tensor = input  # symbolic mode: a Tensor input holds a symbol id

    def fit(self, value, size: int):
        return value

    def soft_read(self, index, index_sizes, options, size):
        flat = 0
        for i, n in zip(index, index_sizes):
            flat = flat * n + i
        if _known(flat):
            return options[flat]
        out = options[-1]
        for k in range(len(options) - 2, -1, -1):
            out = _if(flat == k, options[k], out)
        return out

    def call(self, fn: RuntimeFn, args):
        if all(_known(a) for a in args):
            return int(fn.table[tuple(args)])
        return self.function(fn)(*args)

    def apply_net(self, fn: LearnFn, args):
        if not all(_known(a) for a in args):
            raise ValueError(f"@Learn function '{fn.name}' is called on a value that depends on Params: "
                             "the SMT back-end needs it applied to inputs only")
        return int(self.library.classify(fn, [torch.as_tensor(a) for a in args]).reshape(-1)[0])

    def test(self, value, mask):
        if _known(value):
            return bool(mask[value])
        allowed = [v for v, m in enumerate(mask) if m]
        if len(allowed) == len(mask):
            return True
        if not allowed:
            return False
        import z3

        if 2 * len(allowed) <= len(mask):
            return z3.Or([value == v for v in allowed])
        return z3.And([value != v for v, m in enumerate(mask) if not m])

    def same(self, a, b):
        return a == b

    def always(self):
        return True

    def both(self, a, b):
        if a is False or b is False:
            return False
        if a is True:
            return b
        if b is True:
            return a
        import z3

        return z3.And(a, b)

    def negate(self, w):
        if isinstance(w, bool):
            return not w
        import z3

        return z3.Not(w)

    def possible(self, w) -> bool:
        return w is not False

    def merge(self, weights, values):
        out = values[-1]
        for w, v in zip(weights[-2::-1], values[-2::-1]):
            out = _if(w, v, out)
        return out

    def emit(self, slot: Slot, value, path) -> None:
        fresh = self.both(path, self.negate(self.done))
        self.out[slot] = _if(fresh, value, self.out.get(slot, NO_OUTPUT))
        self.done = self.negate(self.both(self.negate(self.done), self.negate(path)))

    def output(self, slot: Slot, env: ChainMap):
        return self.out.get(slot, NO_OUTPUT) if self.model.halts else env[slot]


def _if(cond, a, b):
    if cond is True or (_known(a) and _known(b) and a == b):
        return a
    if cond is False:
        return b
    import z3

    return z3.If(cond, a, b)


class SmtEncoding:
    """Z3 constraints over one problem's Params: one integer per Param element (in its range),
    one uninterpreted function per ``@Runtime`` function (its table as axioms), and the
    constraints of every example added."""

    def __init__(self, problem: Problem, library, seed: int, timeout: float):
        import z3

        self.z3 = z3
        self.problem, self.library = problem, library
        self.solver = z3.Solver()
        self.solver.set("random_seed", seed % (1 << 31))
        self.solver.set("timeout", int(timeout * 1000))
        self.variables: dict[Slot, object] = {}
        self.functions: dict[tuple, object] = {}
        self.params = problem.compile().params

    def variable(self, slot: Slot):
        if slot not in self.variables:
            name, index = slot
            var = self.z3.Int(f"{name}{list(index)}")
            self.solver.add(var >= 0, var < self.params[name].size)
            self.variables[slot] = var
        return self.variables[slot]

    def function(self, fn: RuntimeFn):
        key = (fn.name, fn.arg_sizes, fn.table.tobytes())  # a table may differ between hypers
        if key not in self.functions:
            z3 = self.z3
            f = z3.Function(f"{fn.name}#{len(self.functions)}", *([z3.IntSort()] * (len(fn.arg_sizes) + 1)))
            for args in itertools.product(*(range(n) for n in fn.arg_sizes)):
                self.solver.add(f(*args) == int(fn.table[args]))
            self.functions[key] = f
        return self.functions[key]

    def outputs(self, examples: Examples, row: int) -> dict[str, object]:
        """Each Output element of example ``row`` as a term over the Params."""
        model = self.problem.compile(examples.hypers)
        inputs = {name: v[row].numpy() for name, v in examples.inputs.items()}
        return SmtInterpreter(model, self.variable, self.function, self.library, inputs).run()

    def add_example(self, examples: Examples, row: int) -> None:
        for name, value in self.outputs(examples, row).items():
            target = int(examples.outputs[name][row]) if name in examples.outputs else UNOBSERVED
            if target != UNOBSERVED:
                self.solver.add(self.z3.BoolVal(value == target) if _known(value) else value == target)

    def exclude(self, program: Mapping[str, np.ndarray], read: Mapping[str, np.ndarray]) -> None:
        """Rule out ``program`` (and every program reading the same values)."""
        terms = [self.variable((name, index)) != int(v[index])
                 for name, v in program.items() for index in np.ndindex(*v.shape) if read[name][index]]
        self.solver.add(self.z3.Or(terms) if terms else self.z3.BoolVal(False))

    def solve(self) -> dict[str, np.ndarray] | None | str:
        """A program satisfying every constraint; None when there is none; ``"unknown"`` on a timeout."""
        result = self.solver.check()
        if result == self.z3.unsat:
            return None
        if result != self.z3.sat:
            return "unknown"
        found = self.solver.model()
        values = {name: np.zeros(decl.shape, dtype=np.int64) for name, decl in self.params.items()}
        for (name, index), var in self.variables.items():
            if name in values:
                values[name][index] = found.eval(var, model_completion=True).as_long()
        return values


class SmtRestart(SearchRestart):
    """Counterexample-guided solving from ``settings.smt_examples`` training examples drawn
    from ``seed`` (the solver's random seed too); each :meth:`step` is one solver call."""

    def __init__(self, problem: Problem, space: ProgramSpace, verifier: Verifier, seed: int,
                 settings: SearchSettings):
        super().__init__()
        self.space, self.verifier, self.settings = space, verifier, settings
        self.encoding = SmtEncoding(problem, verifier.oracle, seed, settings.smt_timeout)
        start = problem.train_examples(settings.smt_examples, np.random.default_rng([seed, 0x53]))
        for row in range(len(start)):
            self.encoding.add_example(start, row)
        self.info.update(examples=len(start), rounds=0)

    def step(self) -> None:
        found = self.encoding.solve()
        self.info["rounds"] = int(self.info["rounds"]) + 1
        if not isinstance(found, dict):
            self.info["outcome"] = "unsat" if found is None else "timeout"
            self.done = True
            return
        program = self.space.canonical({k: v[None] for k, v in found.items()})
        self.examined += 1
        checked = screen(self.verifier, program)
        self.test_accuracy = checked.test_accuracy
        if checked.index is not None:
            self.found = {k: v[0] for k, v in program.items()}
            self.info["outcome"] = "verified"
            self.done = True
            return
        failing = self._counterexample(program)
        if failing is None:
            self.encoding.exclude({k: v[0] for k, v in program.items()},
                                  {k: v[0] for k, v in relevant_mask(self.space.guards, program).items()})
        else:
            self.encoding.add_example(*failing)
            self.info["examples"] = int(self.info["examples"]) + 1
        self.done = int(self.info["rounds"]) >= self.settings.smt_rounds
        if self.done:
            self.info["outcome"] = "rounds spent"

    def _counterexample(self, program: Mapping[str, np.ndarray]) -> tuple[Examples, int] | None:
        """The first validation example ``program`` gets wrong, if any."""
        from ..program import run_programs
        from ..tasks import discrete_correct

        for examples in self.verifier.val:
            outputs = run_programs(self.verifier.problem, program, examples.inputs,
                                   hypers=examples.hypers, library=self.verifier.oracle)
            wrong = np.flatnonzero(~discrete_correct(outputs, examples)[0].numpy())
            if len(wrong):
                return examples, int(wrong[0])
        return None
