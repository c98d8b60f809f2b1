"""Reading the project's JSON files (records, saved programs, sweep state) with one-line errors
that name the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class BadFile(ValueError):
    """A file that cannot be read or is not what it should be; the message starts with its path."""


def read_json(path: Path, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The JSON object in ``path``, which must have the keys ``required``; else :class:`BadFile`,
    e.g. ``state.json: not valid JSON: Expecting ',' delimiter (line 40, column 3)``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BadFile(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise BadFile(f"{path}: not valid JSON: not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadFile(f"{path}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(data, dict):
        raise BadFile(f"{path}: expected a JSON object {{...}}, found {_kind(data)}")
    missing = [key for key in required if key not in data]
    if missing:
        raise BadFile(f"{path}: missing {', '.join(repr(key) for key in missing)}")
    return data


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")
