"""Alarms from per-frame scores: events (runs above the threshold, merged across short gaps, a minimum
length), the anomalous region's box, and the JSON-lines event log that ``stvad watch`` writes."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from stvad._io import check_writable
from stvad.errors import StvadError


def anomaly_box(amap: np.ndarray, fraction: float = 0.5) -> tuple[int, int, int, int] | None:
    """Box (x0, y0, x1, y1), ends exclusive, of the connected region around the map's peak that is at least
    ``fraction`` of the peak. None for a map without a positive value."""
    peak = float(amap.max())
    if not peak > 0:
        return None
    mask = (amap >= fraction * peak).astype(np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    y, x = np.unravel_index(int(np.argmax(amap)), amap.shape)
    x0, y0, w, h = (int(v) for v in stats[labels[y, x], :4])
    return x0, y0, x0 + w, y0 + h


def _scale_box(box: tuple[int, int, int, int], src: tuple[int, int], dst: tuple[int, int]) -> list[int]:
    """A box on a (h, w) map -> the same box in pixels of a (H, W) frame, grown outwards to whole pixels."""
    sy, sx = dst[0] / src[0], dst[1] / src[1]
    x0, y0, x1, y1 = box
    return [
        int(np.floor(x0 * sx)),
        int(np.floor(y0 * sy)),
        min(int(np.ceil(x1 * sx)), dst[1]),
        min(int(np.ceil(y1 * sy)), dst[0]),
    ]


def _union(a: list[int] | None, b: list[int] | None) -> list[int] | None:
    if a is None or b is None:
        return a or b
    return [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]


TIMES = ("start_time", "end_time", "peak_time")
# Event defaults, in seconds: an alarm lasts at least MIN_EVENT_S, and alarms closer than MERGE_GAP_S are one.
MIN_EVENT_S = 0.5
MERGE_GAP_S = 1.0
ASSUMED_FPS = 25.0  # for sources that do not say their frame rate (live cameras, frame folders)


class EventTracker:
    """Turns per-frame scores into events: runs of frames scoring above the threshold, merged across gaps of
    at most ``gap_frames`` frames below it, and kept only when at least ``min_frames`` long.

    An event records its first and last frame and time, the peak score and its frame, the box of the
    anomalous region at the peak (``peak_box``) and the union of the per-frame boxes (``box``), in pixels of
    the native frame. Boxes come from each frame's map thresholded at ``box_fraction`` of its maximum.
    """

    def __init__(
        self,
        threshold: float,
        source: str = "",
        clock: str = "video",
        box_fraction: float = 0.5,
        min_frames: int = 1,
        gap_frames: int = 0,
    ):
        self.threshold = float(threshold)
        self.source = source
        self.clock = clock
        self.box_fraction = box_fraction
        self.min_frames, self.gap_frames = max(int(min_frames), 1), max(int(gap_frames), 0)
        self.count = 0  # events emitted
        self._open: dict[str, Any] | None = None
        self._below = 0  # frames below the threshold since the open event's last frame above it

    @classmethod
    def in_seconds(
        cls, threshold: float, fps: float, min_event_s: float, merge_gap_s: float, **kw: Any
    ) -> EventTracker:
        """A tracker whose minimum length and merged gap are given in seconds at ``fps`` frames a second."""
        return cls(
            threshold,
            min_frames=math.ceil(min_event_s * fps - 1e-9),
            gap_frames=round(merge_gap_s * fps),
            **kw,
        )

    def update(
        self, index: int, t: float | None, score: float, amap: np.ndarray, frame_size: tuple[int, int]
    ) -> dict | None:
        """Feed one scored frame; returns the event that this frame ends, if any."""
        if score <= self.threshold:
            if self._open is None:
                return None
            self._below += 1
            return self.close() if self._below > self.gap_frames else None
        self._below = 0
        box = anomaly_box(amap, self.box_fraction)
        box = None if box is None else _scale_box(box, amap.shape, frame_size)
        ev = self._open
        if ev is None:
            ev = self._open = {"start_frame": index, "start_time": t, "peak_score": -np.inf, "box": None}
        ev.update(end_frame=index, end_time=t)
        ev["box"] = _union(ev["box"], box)
        if score > ev["peak_score"]:
            ev.update(peak_frame=index, peak_time=t, peak_score=float(score), peak_box=box)
        return None

    def close(self) -> dict | None:
        """End the open event, if any, and return it as a finished record (None when it is too short)."""
        ev, self._open, self._below = self._open, None, 0
        if ev is None or ev["end_frame"] - ev["start_frame"] + 1 < self.min_frames:
            return None
        self.count += 1
        times = {k: None if ev[k] is None else round(ev[k], 3) for k in TIMES}
        return {
            "type": "anomaly",
            "event": self.count,
            "source": self.source,
            "start_frame": ev["start_frame"],
            "end_frame": ev["end_frame"],
            "frames": ev["end_frame"] - ev["start_frame"] + 1,
            "start_time": times["start_time"],
            "end_time": times["end_time"],
            "peak_frame": ev["peak_frame"],
            "peak_time": times["peak_time"],
            "peak_score": ev["peak_score"],
            "threshold": self.threshold,
            "peak_box": ev["peak_box"],
            "box": ev["box"],
            "clock": self.clock,
        }


class EventLog:
    """JSON lines: each record echoed (stdout by default) and appended to ``path``, one whole line per write.

    A log that grows while a camera runs cannot be replaced atomically at the end; instead each line is
    written in one call, flushed and synced, so a crash loses at most the line being written.
    """

    def __init__(self, path: str | os.PathLike | None = None, echo: Callable[[str], None] | None = print):
        self.path = None if path is None else Path(path)
        self.echo = echo
        self._file: IO[str] | None = None
        if self.path is not None:
            check_writable(self.path)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
            except OSError as e:
                raise StvadError(f"cannot write events ({e.strerror or e})", self.path) from e

    def write(self, record: dict) -> None:
        line = json.dumps(record)
        if self.echo is not None:
            self.echo(line)
        if self._file is not None:
            try:
                self._file.write(line + "\n")
                self._file.flush()
                os.fsync(self._file.fileno())
            except OSError as e:
                raise StvadError(f"cannot write events ({e.strerror or e})", self.path) from e

    def close(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            try:
                file.close()  # flushes what a failed write left in the buffer, which can fail again
            except OSError as e:
                raise StvadError(f"cannot write events ({e.strerror or e})", self.path) from e

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
