"""Public entry point of the language: :class:`Model` (a source) and :class:`CompiledModel`."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from .errors import NTPTError
from .frontend import Frontend
from .ir import Block, Decl, LearnFn, RuntimeFn
from .unroll import Unroller, used_names, used_nets


@dataclass(frozen=True)
class CompiledModel:
    """One NTPT source compiled for one setting of its hyper-parameters.

    ``params`` and ``nets`` hold only what the program uses: a declared Param that no
    statement reads is not learned.
    """

    name: str
    filename: str
    hypers: dict[str, int]
    decls: dict[str, Decl]
    runtime_fns: dict[str, RuntimeFn]
    learn_fns: dict[str, LearnFn]
    body: Block = field(repr=False)

    @cached_property
    def params(self) -> dict[str, Decl]:
        used = used_names(self.body, "Param")
        return {n: d for n, d in self.decls.items() if d.kind == "Param" and n in used}

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
        self.hypers = self.compile().hypers  # compiling the defaults checks the whole source

    @classmethod
    def from_file(cls, path: str | Path) -> "Model":
        path = Path(path)
        try:
            source = path.read_text()
        except OSError as exc:
            raise NTPTError(f"cannot read model: {exc.strerror}", filename=str(path)) from None
        return cls(source, filename=str(path))

    def compile(self, **hypers: int) -> CompiledModel:
        """Compile for ``hypers`` (overriding the source's defaults); results are cached."""
        key = tuple(sorted(hypers.items()))
        if key not in self._compiled:
            module = Frontend(self.tree, self.filename, hypers).run()
            body = Unroller(module).run()
            self._compiled[key] = CompiledModel(
                name=self.name, filename=self.filename, hypers=module.hypers, decls=module.decls,
                runtime_fns=module.runtime_fns, learn_fns=module.learn_fns, body=body)
        return self._compiled[key]
