"""Sources that come back: a live camera or network stream followed through drops, with back-off.

``Follow`` yields a source's native frames as they arrive, ``(frame, fresh)``, where ``fresh`` marks the
first frame after a reconnection (the frames before the gap must not form a window with it). A network
stream unreachable at start gets the same back-off as one that drops later: a camera that is rebooting
or a network that is not up yet looks the same at start as later.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from stvad.data.sources import STREAM_SCHEMES, FrameSource, open_source
from stvad.errors import StvadError


@dataclass
class Backoff:
    """Reconnection delays: ``initial * 2**(attempt - 1)`` seconds, at most ``maximum``, ``retries`` tries."""

    initial: float = 0.5
    maximum: float = 30.0
    retries: int = 10

    def delay(self, attempt: int) -> float:
        return min(self.initial * 2 ** (attempt - 1), self.maximum)


class Follow:
    """Native frames of a source as they arrive, as ``(frame, fresh)``; ``fresh`` marks a restart.

    A file or frame folder ends at its end, or plays again from the start with ``loop`` (a continuous
    stream: the windows run on across the seam). A live camera or URL that stops delivering frames is
    reopened after ``backoff`` delays, each attempt passed to ``report``; the first frame after a
    reconnection is ``fresh`` (the frames before the gap must not form a window with it). After
    ``backoff.retries`` failed attempts in a row it raises StvadError.
    """

    def __init__(
        self,
        target: str | os.PathLike | int,
        loop: bool = False,
        backoff: Backoff | None = None,
        report: Callable[[dict], None] | None = None,
        sleep: Callable[[float], None] | None = None,
    ):
        self.target = target
        self.loop = loop
        self.backoff = backoff or Backoff()
        self.report = report or (lambda record: None)
        self.sleep = sleep or time.sleep
        self.source = self._first_open()
        self.live = bool(getattr(self.source, "live", False))

    def _first_open(self) -> FrameSource:
        """Open the source: a file, folder or camera at once (a bad one fails here, without retries); a
        network stream with the same back-off as a dropped one, since a camera that is rebooting or a
        network that is not up yet looks the same at start as later."""
        if not str(self.target).lower().startswith(STREAM_SCHEMES):
            return open_source(self.target)
        attempt = 0
        while True:
            try:
                source = open_source(self.target)
            except StvadError as e:
                attempt += 1
                if attempt > self.backoff.retries:
                    raise StvadError(
                        f"stream unreachable: no connection after {self.backoff.retries} attempts "
                        f"({e.message})",
                        str(self.target),
                    ) from e
                delay = self.backoff.delay(attempt)
                self.report(
                    {"type": "reconnect", "source": str(self.target), "attempt": attempt,
                     "of": self.backoff.retries, "delay_s": delay, "reason": e.message}
                )  # fmt: skip
                self.sleep(delay)
                continue
            if attempt:
                self.report({"type": "reconnected", "source": source.path, "attempts": attempt})
            return source

    def __iter__(self) -> Iterator[tuple[np.ndarray, bool]]:
        fresh, attempt = False, 0
        while True:
            reason, delivered = "the stream ended", False
            try:
                for frame in self.source:
                    if attempt:
                        self.report({"type": "reconnected", "source": self.source.path, "attempts": attempt})
                        attempt = 0
                    delivered = True
                    yield frame, fresh
                    fresh = False
            except (StvadError, cv2.error) as e:
                if not self.live:
                    raise
                reason = getattr(e, "message", str(e))
            if not self.live:
                if self.loop and delivered:
                    continue
                return
            while True:
                attempt += 1
                if attempt > self.backoff.retries:
                    raise StvadError(
                        f"stream lost: no frame after {self.backoff.retries} reconnections ({reason})",
                        self.source.path,
                    )
                delay = self.backoff.delay(attempt)
                self.report(
                    {
                        "type": "reconnect",
                        "source": self.source.path,
                        "attempt": attempt,
                        "of": self.backoff.retries,
                        "delay_s": delay,
                        "reason": reason,
                    }
                )
                self.sleep(delay)
                try:
                    self.source = open_source(self.target)
                    break
                except StvadError as e:
                    reason = e.message
            fresh = True
