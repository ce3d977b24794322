"""Overlay video: each frame with its anomaly map, and the score curve with the threshold along the bottom.

Written with OpenCV (MJPG in .avi, mp4v in .mp4) to a temporary name beside the target, then renamed, so
a half-written video never carries the final name.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from stvad.errors import StvadError
from stvad.report.overlay import overlay, to_rgb

CODECS = {".avi": "MJPG", ".mp4": "mp4v"}
CURVE = (255, 255, 255)
THRESHOLD = (255, 64, 64)
CURSOR = (255, 210, 0)
ALARM = (255, 40, 40)
FONT = cv2.FONT_HERSHEY_SIMPLEX


class ScoreStrip:
    """The score curve of a whole video, drawn once; ``at(frame)`` adds the cursor for one frame."""

    def __init__(
        self, index: np.ndarray, scores: np.ndarray, n_frames: int, width: int, height: int, threshold=None
    ):
        self.n, self.width, self.height = max(n_frames, 1), width, height
        values = np.asarray(scores, dtype=np.float64)
        ref = values if threshold is None else np.append(values, threshold)
        lo, hi = (float(ref.min()), float(ref.max())) if ref.size else (0.0, 1.0)
        pad = 0.08 * (hi - lo) if hi > lo else 1.0
        self.lo, self.hi = lo - pad, hi + pad
        img = np.full((height, width, 3), 24, np.uint8)
        if threshold is not None:
            y = self.y(threshold)
            for x0 in range(0, width, 8):  # dashed, so it reads as a reference line, not data
                cv2.line(img, (x0, y), (min(x0 + 4, width - 1), y), THRESHOLD, 1)
            cv2.putText(img, "threshold", (4, max(y - 3, 9)), FONT, 0.3, THRESHOLD, 1, cv2.LINE_AA)
        if len(index) > 1:
            pts = np.stack([[self.x(i) for i in index], [self.y(s) for s in values]], axis=1)
            cv2.polylines(img, [pts.astype(np.int32)], False, CURVE, 1, cv2.LINE_AA)
        self.image = img

    def x(self, frame: int) -> int:
        return int(round(frame / max(self.n - 1, 1) * (self.width - 1)))

    def y(self, score: float) -> int:
        return int(round((self.hi - score) / (self.hi - self.lo) * (self.height - 1)))

    def at(self, frame: int) -> np.ndarray:
        img = self.image.copy()
        cv2.line(img, (self.x(frame), 0), (self.x(frame), self.height - 1), CURSOR, 1)
        return img


def _even(v: int) -> int:
    return v + (v % 2)


def overlay_frames(
    frames: Iterable[np.ndarray],
    index: np.ndarray,
    scores: np.ndarray,
    maps: np.ndarray,
    n_frames: int,
    threshold: float | None = None,
    min_height: int = 240,
) -> Iterator[np.ndarray]:
    """Composed uint8 RGB frames: the map over the frame (frames without a score shown plain) above the
    score strip. ``index[k]`` is the frame that ``scores[k]`` and ``maps[k]`` belong to; frames smaller
    than ``min_height`` are enlarged so the text and the curve stay legible."""
    where = {int(i): k for k, i in enumerate(index)}
    vmax = float(np.max(maps)) if len(maps) else 0.0  # one colour scale for the whole video
    strip: ScoreStrip | None = None
    for i, frame in enumerate(frames):
        rgb = to_rgb(frame)
        k = where.get(i)
        if k is not None:
            rgb = overlay(rgb, maps[k].astype(np.float32), vmax=vmax)
        h, w = rgb.shape[:2]
        scale = max(1, math.ceil(min_height / h))
        size = (_even(w * scale), _even(h * scale))
        if size != (w, h):
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_NEAREST)
        if strip is None:
            strip = ScoreStrip(index, scores, n_frames, size[0], max(48, size[1] // 4), threshold)
        text = f"frame {i}" + ("" if k is None else f"  score {scores[k]:.4g}")
        (tw, th), base = cv2.getTextSize(text, FONT, 0.45, 1)
        cv2.rectangle(rgb, (3, 3), (9 + tw, 9 + th + base), (0, 0, 0), -1)  # legible on any heatmap colour
        cv2.putText(rgb, text, (6, 6 + th), FONT, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        if k is not None and threshold is not None and scores[k] > threshold:
            cv2.rectangle(rgb, (0, 0), (size[0] - 1, size[1] - 1), ALARM, 3)
        yield np.vstack([rgb, strip.at(i)])


def write_overlay_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    index: np.ndarray,
    scores: np.ndarray,
    maps: np.ndarray,
    n_frames: int,
    threshold: float | None = None,
    fps: float | None = None,
    min_height: int = 240,
) -> int:
    """Write the overlay video of ``frames`` (native uint8 RGB) to ``path`` (.avi or .mp4); returns the
    number of frames written, one per input frame."""
    path = Path(path)
    codec = CODECS.get(path.suffix.lower())
    if codec is None:
        raise StvadError(f"overlay video must be {' or '.join(CODECS)}", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # OpenCV picks the container from the suffix
    writer: cv2.VideoWriter | None = None
    written = 0
    try:
        for img in overlay_frames(frames, index, scores, maps, n_frames, threshold, min_height):
            if writer is None:
                h, w = img.shape[:2]
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), fps or 10.0, (w, h))
                if not writer.isOpened():
                    raise StvadError(f"OpenCV cannot write {codec} video here", path)
            writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            written += 1
        if writer is None:
            raise StvadError("no frames to write", path)
        writer.release()
        writer = None
        # OpenCV's writer reports no I/O error: a disk that fills up leaves a short file without a word
        cap = cv2.VideoCapture(str(tmp))
        found = 0
        while cap.grab():
            found += 1
        cap.release()
        if found != written:
            raise StvadError(
                f"cannot write the video whole: {found} of {written} frames in the file (disk full?)", path
            )
        os.replace(tmp, path)
    finally:
        if writer is not None:
            writer.release()
        tmp.unlink(missing_ok=True)
    return written
