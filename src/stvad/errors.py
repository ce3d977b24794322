"""The one error type a user sees: a single line naming the file and the problem (CLI exit status 2)."""

from __future__ import annotations

import os


class StvadError(Exception):
    """A problem with the user's input or environment, reported as one line without a traceback."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)
