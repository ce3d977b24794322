"""MATLAB .mat files read with SciPy, but first parsed in a child process that may crash instead of us.

``scipy.io.loadmat`` is not hardened against damaged files: in SciPy's compiled v5 reader the type code of a
data element indexes a 20-slot table unchecked, so one flipped byte can make it read a NULL or wild pointer
and end the interpreter with a segmentation fault (found by tests/test_fuzz_readers.py; scipy/scipy pull
request #25349). A ground-truth file from a bad download must give one clear error, not a crash. So a file
is parsed once in a child Python; only when the child survives is it parsed here. Files that passed are
remembered by path, inode, size and modification time, so each costs one child per process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterable

import scipy.io

from stvad.errors import StvadError

# Prints "@i" before parsing file i, so the parent knows which file a crash happened on. A Python exception
# is not a crash: the parse in the parent reports it, with its message.
_CHILD = """
import sys, scipy.io
for i, path in enumerate(sys.argv[1:]):
    print(f"@{i}", flush=True)
    try:
        scipy.io.loadmat(path)
    except Exception:
        pass
"""

_parsed: set[tuple[str, int, int, int]] = set()


def _identity(path: str | os.PathLike) -> tuple[str, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return os.path.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns


def check_parsable(paths: Iterable[str | os.PathLike]) -> None:
    """Parse each file in one child process; StvadError naming the file on which SciPy's parser crashed."""
    todo = [(p, key) for p in paths if (key := _identity(p)) is not None and key not in _parsed]
    if not todo:
        return
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, *(os.fspath(p) for p, _ in todo)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        check=False,
    )
    started = [int(t[1:]) for t in proc.stdout.split() if t.startswith("@") and t[1:].isdigit()]
    if proc.returncode == 0 or not started:
        # no crash, or the child could not start at all (no file reached): the parse here has the last word
        _parsed.update(key for _, key in todo)
        return
    at = started[-1]
    _parsed.update(key for _, key in todo[:at])
    rc = proc.returncode
    how = signal.Signals(-rc).name if rc < 0 and -rc in signal.valid_signals() else f"exit status {rc}"
    raise StvadError(
        f"cannot read .mat file: SciPy's MAT parser crashed on it ({how}); the file is damaged", todo[at][0]
    )


def loadmat(path: str | os.PathLike) -> dict:
    """``scipy.io.loadmat(path)``; a damaged or foreign file raises StvadError naming it, never crashes."""
    check_parsable([path])
    try:
        return scipy.io.loadmat(path)
    except Exception as e:  # on malformed bytes the parser raises TypeError, IndexError, EOFError, ...
        raise StvadError(f"cannot read .mat file ({type(e).__name__}: {e})", path) from e
