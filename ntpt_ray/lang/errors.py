"""The one error type of the NTPT language: a message with the file and line it concerns."""

from __future__ import annotations


class NTPTError(ValueError):
    """A malformed NTPT model, reported as ``file:line: message``."""

    def __init__(self, message: str, *, filename: str = "<model>", line: int | None = None):
        self.message = message
        self.filename = filename
        self.line = line
        where = f"{filename}:{line}" if line is not None else filename
        super().__init__(f"{where}: {message}")
