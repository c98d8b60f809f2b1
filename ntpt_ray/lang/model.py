"""Public entry point of the language: :class:`Model` (a source) and :class:`CompiledModel`.

A source may leave hyper-parameters free (``N = Hyper()``, as TerpreT's models do): it is then
only parsed when constructed, and each :meth:`Model.compile` must give their values.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from .consteval import NotConstant, const_eval
from .errors import NTPTError
from .frontend import Frontend, ModuleLevel, _target_names, declared_hypers
from .ir import Block, Decl, LearnFn, RuntimeFn, Slot
from .unroll import Unroller, read_slots, used_nets


@dataclass(frozen=True)
class CompiledModel:
    """One NTPT source compiled for one setting of its hyper-parameters.

    ``params`` and ``nets`` hold only what the program uses: a declared Param that no
    statement reads (a warning), or whose every read element is fixed, is not learned; a
    partly fixed one is learned whole. ``fixed`` maps each element fixed by
    ``set_to_constant`` to its value, which both back-ends read whatever they are given for
    it. ``halts``: whether the program ends with ``halt_with`` (else it sets its Outputs).
    ``warnings``: ``file:line: message`` lines about the model that are not errors.
    """

    name: str
    filename: str
    hypers: dict[str, int]
    decls: dict[str, Decl]
    runtime_fns: dict[str, RuntimeFn]
    learn_fns: dict[str, LearnFn]
    body: Block = field(repr=False)
    fixed: dict[Slot, int] = field(default_factory=dict)
    halts: bool = False
    warnings: list[str] = field(default_factory=list)

    @cached_property
    def params(self) -> dict[str, Decl]:
        learned = {name for name, index in read_slots(self.body, "Param")
                   if (name, index) not in self.fixed}
        return {n: d for n, d in self.decls.items() if d.kind == "Param" and n in learned}

    @cached_property
    def nets(self) -> dict[str, LearnFn]:
        used = used_nets(self.body)
        return {n: f for n, f in self.learn_fns.items() if n in used}

    @property
    def inputs(self) -> dict[str, Decl]:
        return {n: d for n, d in self.decls.items() if d.kind == "Input"}

    @property
    def outputs(self) -> dict[str, Decl]:
        return {n: d for n, d in self.decls.items() if d.kind == "Output"}

    def param_shapes(self) -> dict[str, tuple[tuple[int, ...], int]]:
        """``{name: (array shape, range size)}`` of the learned Params."""
        return {n: (d.shape, d.size) for n, d in self.params.items()}


class Model:
    """An NTPT model source; :meth:`compile` instantiates it for given hyper-parameters.

    ``free_hypers`` names the ``Hyper()`` declarations, in order. A source without any is
    compiled with its defaults when constructed (so any error shows at once) and ``hypers``
    holds those defaults; for one with free hypers, ``hypers`` holds the module-level
    constants that do not depend on them.

    >>> model = Model.from_file("math.py")
    >>> program = model.compile(N_DIGITS=2)
    """

    def __init__(self, source: str, filename: str = "<model>", name: str | None = None):
        self.source = source
        self.filename = filename
        self.name = name or Path(filename).stem
        try:
            self.tree = ast.parse(source, filename=filename)
        except SyntaxError as exc:
            raise NTPTError(f"syntax error: {exc.msg}", filename=filename, line=exc.lineno) from None
        self._compiled: dict[tuple[tuple[str, int], ...], CompiledModel] = {}
        self._modules: dict[tuple[tuple[str, int], ...], ModuleLevel] = {}
        self.free_hypers: tuple[str, ...] = tuple(dict.fromkeys(declared_hypers(self.tree)))
        # compiling the defaults checks the whole source
        self.hypers = _known_hypers(self.tree) if self.free_hypers else self.compile().hypers

    @classmethod
    def from_file(cls, path: str | Path) -> "Model":
        path = Path(path)
        try:
            source = path.read_text()
        except OSError as exc:
            raise NTPTError(f"cannot read model: {exc.strerror}", filename=str(path)) from None
        return cls(source, filename=str(path))

    def module(self, **hypers: int) -> ModuleLevel:
        """The module level for ``hypers``: declarations and tabulated functions, nothing
        unrolled (cached)."""
        key = tuple(sorted(hypers.items()))
        if key not in self._modules:
            self._modules[key] = Frontend(self.tree, self.filename, hypers).run()
        return self._modules[key]

    def compile(self, **hypers: int) -> CompiledModel:
        """Compile for ``hypers`` (overriding the source's defaults); results are cached."""
        key = tuple(sorted(hypers.items()))
        if key not in self._compiled:
            module = self.module(**hypers)
            unroller = Unroller(module)
            body = unroller.run()
            if not any(d.kind == "Output" for d in module.decls.values()):
                raise NTPTError("the model declares no Output: nothing to learn from",
                                filename=self.filename)
            read = {name for name, _ in read_slots(body, "Param")}
            warnings = [f"{self.filename}:{d.line}: Param '{n}' is read nowhere: it is not learned"
                        for n, d in module.decls.items() if d.kind == "Param" and n not in read]
            self._compiled[key] = CompiledModel(
                name=self.name, filename=self.filename, hypers=module.hypers, decls=module.decls,
                runtime_fns=module.runtime_fns, learn_fns=module.learn_fns, body=body,
                fixed=unroller.fixed, halts=unroller.halts, warnings=warnings)
        return self._compiled[key]


def _known_hypers(tree: ast.Module) -> dict[str, int]:
    """The top-level integer constants of a source that do not depend on its free hypers."""
    known: dict[str, int] = {}
    for stmt in tree.body:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1):
            continue
        target = stmt.targets[0]
        names = _target_names(target)
        if not names:
            continue
        try:
            value = const_eval(stmt.value, known)
            values = (value,) if isinstance(target, ast.Name) else tuple(value)
        except (NotConstant, ArithmeticError, TypeError, ValueError):
            continue
        if len(values) == len(names) and all(type(v) is int for v in values):
            known.update(zip(names, values))
    return known
