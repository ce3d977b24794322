"""The one error type a user sees: a single line naming the file and the problem (CLI exit status 2).

A doubt that should not stop the work (a video that ends before the frame count its header declares) is a
``StvadWarning``, shown by the CLI as one line ``stvad: warning: PATH: message``.
"""

from __future__ import annotations

import os


class StvadError(Exception):
    """A problem with the user's input or environment, reported as one line without a traceback."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class StvadWarning(UserWarning):
    """Something the user should know about an input that can still be used, naming the file."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)
