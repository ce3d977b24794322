"""Atomic file output: write to a temporary file beside the target, fsync, then rename over it.

A reader never sees a half-written file, and an interrupted write leaves the previous version intact.
``claim_lock`` lets processes share a queue of jobs without two taking the same one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from stvad.errors import StvadError


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on clean exit it replaces ``path`` atomically."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise StvadError(f"cannot write here ({e.strerror or e})", path.parent) from e
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StvadError(f"cannot write ({e.strerror or e})", path) from e
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_writable(path: str | os.PathLike, folder: bool = False) -> None:
    """Fail before the long work, not after it, when ``path`` (a file, or a ``folder``) cannot be written:
    a part of it that exists is a file, or the nearest existing folder is not writable."""
    path = Path(path)
    if path.is_dir() and not folder:
        raise StvadError("cannot write here: this is a folder, not a file", path)
    existing = path if folder else path.parent
    while not existing.is_dir():
        if existing.exists() or existing.is_symlink():
            raise StvadError(f"cannot write here: {existing} exists and is not a folder", path)
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.is_dir() and not os.access(existing, os.W_OK | os.X_OK):
        raise StvadError(f"cannot write here: no permission to write in {existing}", path)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def ctrl_c_deferred() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) that arrives inside the block until the block ends, then deliver it to the
    handler that was in place.

    torch.save's writer turns a KeyboardInterrupt raised in the middle of its zip stream into a
    RuntimeError ("unexpected pos"), which reads as a crash rather than the interruption it is; a
    checkpoint a few milliseconds from done is also worth finishing. A process that ignores SIGINT (a
    background job of a shell without job control, nohup) keeps ignoring it here, and a handler of the
    caller's own is the one called. Only the main thread can do this.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN or previous is None:  # ignored, or set outside Python: leave it be
        yield
        return
    caught: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        signal.raise_signal(signal.SIGINT)  # Python's default handler raises KeyboardInterrupt from here


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> None:
    import torch

    with ctrl_c_deferred(), atomic_open(path, "wb") as f:
        torch.save(obj, f)


def claim_lock(path: str | os.PathLike) -> int | None:
    """An exclusive lock on the file ``path`` (created if absent) for this process: the open descriptor,
    to close when done, or None when another process holds it. The kernel releases a holder's lock when
    it dies, so a job left behind by a killed process is claimed again, not skipped for good as the mere
    existence of a lock file would make it."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
