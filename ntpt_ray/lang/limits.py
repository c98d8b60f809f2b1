"""What a model's source, and an input run through it, may ask for.

Each limit is checked while the source is read or unrolled, before anything of that size is
allocated or looped over, and reported as one line naming the model's file and line, the limit
and how to raise it: the environment variable ``NTPT_<NAME>`` (``NTPT_MAX_UNROLLED=5000000``),
as for a sweep spec's limits (:mod:`ntpt_ray.sweep.spec`).
"""

from __future__ import annotations

import os

MAX_RANGE = 100_000  # n of Param(n) / Var(n) / Input(n) / Output(n), @Runtime and @Learn result ranges
MAX_ELEMENTS = 10_000_000  # values a model declares (array elements x range, or tensor elements),
#                            and weights of one @Learn net: per restart and example
MAX_UNROLLED = 1_000_000  # statements, loop iterations and read options unrolled, per compile
#                            (MATH: 64 digits unroll to about 470 000)
MAX_TABLE = 4_000_000  # entries of one tabulated @Runtime function: the product of its argument ranges
MAX_INPUT = 10_000  # symbols of one `ntpt run --input`

_DEFAULTS = {"MAX_RANGE": MAX_RANGE, "MAX_ELEMENTS": MAX_ELEMENTS, "MAX_UNROLLED": MAX_UNROLLED,
             "MAX_TABLE": MAX_TABLE, "MAX_INPUT": MAX_INPUT}


def limit(name: str) -> int:
    """The limit ``name`` (``"MAX_RANGE"``): ``$NTPT_MAX_RANGE`` when set, else its default."""
    raw = os.environ.get(f"NTPT_{name}")
    if raw is None:
        return _DEFAULTS[name]
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ValueError(f"NTPT_{name} must be a positive integer, got {raw!r}")
    return int(raw)


def over(name: str, value: int, unit: str = "", bound: int | None = None) -> str | None:
    """``"<value> <unit>, above the limit of <bound> (set NTPT_<name> to raise it)"`` when
    ``value`` exceeds the limit (``bound``: its value, if already read), else None."""
    bound = limit(name) if bound is None else bound
    if value <= bound:
        return None
    return f"{value}{' ' + unit if unit else ''}, above the limit of {bound} (set NTPT_{name} to raise it)"
