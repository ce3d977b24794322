"""The two trivial floors of METHOD.md, as per-frame anomaly scores (higher = more anomalous).

- copy-last-frame: predict every frame as a copy of the previous one and score it by -PSNR;
- mean training frame: the mean squared distance of a frame to the mean of all training frames.

A model that does not clearly beat them has learned nothing useful. Both take a video (a ``Video``
record, a ``FrameSource`` or any iterable of uint8 HxW / HxWxC frames) and return one score per frame
from index T on, so that they line up with the scores of a T-frame predictor (the first T frames have
no prediction and are dropped).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import cv2
import numpy as np


def iter_frames(video: Any, size: tuple[int, int] | None = None, channels: int = 1) -> Iterator[np.ndarray]:
    """Frames of a ``Video``, a ``FrameSource`` or an iterable of frames, as float64 HxWxC in [0, 1],
    resized to ``size`` = (H, W) with cv2.INTER_AREA and converted to ``channels`` (1 grey, 3 colour)."""
    if hasattr(video, "source"):
        video = video.source
    frames: Iterable[np.ndarray] = (
        video.frames(size=size, channels=channels) if hasattr(video, "frames") else video
    )
    for f in frames:
        f = np.asarray(f)
        if f.ndim == 2:
            f = f[..., None]
        if size is not None and f.shape[:2] != tuple(size):
            f = cv2.resize(f, (size[1], size[0]), interpolation=cv2.INTER_AREA).reshape(size[0], size[1], -1)
        if channels == 1 and f.shape[2] == 3:
            f = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[..., None]
        elif channels == 3 and f.shape[2] == 1:
            f = np.repeat(f, 3, axis=2)
        yield f.astype(np.float64) / 255.0


def copy_last_scores(
    video: Any, T: int = 4, size: tuple[int, int] | None = None, channels: int = 1
) -> np.ndarray:
    """-PSNR of each frame against the frame before it, for frames T, T+1, ... (PSNR on [0, 1] images)."""
    scores, prev = [], None
    for i, f in enumerate(iter_frames(video, size, channels)):
        if i >= T:
            mse = float(np.mean((f - prev) ** 2))
            scores.append(10.0 * np.log10(max(mse, 1e-10)))
        prev = f
    return np.asarray(scores)


def mean_frame(videos: Iterable[Any], size: tuple[int, int] | None = None, channels: int = 1) -> np.ndarray:
    """The mean of all frames of the given (normal, training) videos, float64 HxWxC in [0, 1]."""
    total, count = None, 0
    for video in videos:
        for f in iter_frames(video, size, channels):
            total = f.copy() if total is None else total + f
            count += 1
    if total is None:
        raise ValueError("mean_frame needs at least one frame")
    return total / count


def mean_frame_scores(
    video: Any, mean: np.ndarray, T: int = 4, size: tuple[int, int] | None = None, channels: int = 1
) -> np.ndarray:
    """Mean squared distance of frames T, T+1, ... to ``mean`` (from :func:`mean_frame`)."""
    return np.asarray(
        [float(np.mean((f - mean) ** 2)) for i, f in enumerate(iter_frames(video, size, channels)) if i >= T]
    )
