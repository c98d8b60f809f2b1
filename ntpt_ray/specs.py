"""The specs shipped with the package, and spec arguments that name one.

The repository's ``search/`` folder is installed as the package ``ntpt_ray.search``
(``[tool.setuptools.package-dir]`` in pyproject.toml), so ``ntpt sweep math_onehot`` works
outside a checkout too. ``search/terpret_basic_block.toml`` is listed in a checkout only: it
reads TerpreT's files from beside the checkout, so the wheel leaves it out.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

PACKAGE = "ntpt_ray.search"


@dataclass(frozen=True)
class ShippedSpec:
    """One shipped spec: its name (the file's stem), kind, description line and file."""

    name: str
    kind: Literal["sweep", "lifelong"]
    description: str
    path: Path


class UnknownSpec(ValueError):
    """A spec argument that is neither a file nor the name of a shipped spec."""


def shipped_specs() -> list[ShippedSpec]:
    """The shipped specs, by name; a spec with a ``[problem]`` table is a sweep's."""
    out = []
    for entry in resources.files(PACKAGE).iterdir():
        if entry.is_file() and entry.name.endswith(".toml"):
            data = tomllib.loads(entry.read_text())
            out.append(ShippedSpec(entry.name.removesuffix(".toml"),
                                   "sweep" if "problem" in data else "lifelong",
                                   str(data.get("description", "")), Path(str(entry))))
    return sorted(out, key=lambda spec: spec.name)


def resolve_spec(ref: str | Path) -> Path:
    """The spec file ``ref`` means: a file that exists, else the shipped spec it names
    (``math_onehot``, ``math_onehot.toml`` or ``search/math_onehot.toml``)."""
    path = Path(ref)
    if path.is_file():
        return path
    if path.parent in (Path("."), Path("search")):
        name = path.name.removesuffix(".toml")
        for spec in shipped_specs():
            if spec.name == name:
                return spec.path
    names = ", ".join(spec.name for spec in shipped_specs())
    raise UnknownSpec(f"{ref}: no such spec file, nor a shipped spec of that name (shipped: {names})")
