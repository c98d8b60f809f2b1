"""``ntpt specs``: the sweep and lifelong specs shipped with the package."""

from __future__ import annotations

from .common import COMPACT, console, new_table, print_table


def specs() -> None:
    """List the shipped specs: `ntpt sweep NAME`, `ntpt lifelong NAME` and `ntpt tune NAME`
    take one by name."""
    from ..specs import shipped_specs

    found = shipped_specs()
    table = new_table("name", "kind", "description", wrap=("description",), **COMPACT)
    for spec in found:
        table.add_row(spec.name, spec.kind, spec.description)
    print_table(table)
    if found:
        console.print(f"files in {found[0].path.parent} (copy one to change it)", markup=False,
                      highlight=False)
