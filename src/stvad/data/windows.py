"""Windows of T past frames and the frame that follows, for training (strided) and scoring (stride 1).

A window's index is the index of its target frame, so scores line up with frame labels: frames
0..T-1 have no window, every later frame has exactly one.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch

from stvad.config import DataConfig
from stvad.data.sources import FrameSource, to_model
from stvad.errors import StvadError

Clip = tuple[FrameSource, int, int]  # source, first frame, one past the last frame


def iter_windows(frames: Iterable[np.ndarray], T: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Stream ``(index, past, target)``: ``past`` = frames index-T..index-1 as (T, H, W, C), stride 1."""
    if T < 1:
        raise ValueError(f"T must be at least 1, got {T}")
    past: deque[np.ndarray] = deque(maxlen=T)
    for index, frame in enumerate(frames):
        if len(past) == T:
            yield index, np.stack(past), frame
        past.append(frame)


def _decode(clip: Clip, size: tuple[int, int], channels: int) -> np.ndarray:
    source, start, stop = clip
    if not 0 <= start < stop:
        raise StvadError(f"clip {start}..{stop} holds no frames", source.path)
    frames = list(source.frames(size, channels, start, stop))
    if len(frames) != stop - start:
        raise StvadError(
            f"clip {start}..{stop} asks for frames past the end ({start + len(frames)})", source.path
        )
    return np.stack(frames)


class WindowDataset(torch.utils.data.Dataset):
    """Windows over clips, each clip decoded once into a resized uint8 cache.

    Item ``i`` is ``(x, y)``: x float (T, C, H, W) past frames, y float (C, H, W) target, in [-1, 1].
    ``targets[i]`` = (clip number, frame index in its source) of the target frame. With ``ahead`` k > 0 an
    item is ``(x, y, z)``, z the frame k frames after the target (the clip's last frame where the clip ends
    sooner): after the same past it is a skip-frame pseudo-anomaly, the scene sped up.
    """

    def __init__(
        self,
        clips: Sequence[Clip],
        T: int,
        size: tuple[int, int],
        channels: int,
        stride: int = 1,
        ahead: int = 0,
    ):
        if stride < 1:
            raise ValueError(f"stride must be at least 1, got {stride}")
        self.T, self.ahead = T, ahead
        self.cache = [_decode(clip, size, channels) for clip in clips]
        self.targets = [
            (c, clip[1] + t) for c, clip in enumerate(clips) for t in range(T, len(self.cache[c]), stride)
        ]
        self._local = [(c, t - clips[c][1]) for c, t in self.targets]

    def __len__(self) -> int:
        return len(self._local)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        c, t = self._local[i]
        frames = self.cache[c]
        if self.ahead:
            z = frames[min(t + self.ahead, len(frames) - 1)]
            return to_model(frames[t - self.T : t]), to_model(frames[t]), to_model(z)
        return to_model(frames[t - self.T : t]), to_model(frames[t])


def split_train_val(
    videos: Sequence, val_fraction: float, T: int = DataConfig.T
) -> tuple[list[Clip], list[Clip]]:
    """Hold out the tail of each training video (``val_fraction`` of it, at least T+1 frames).

    ``videos`` are layout records (with ``.source``) or frame sources. A video too short to give both
    parts T+1 frames stays whole in training.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise StvadError(f"val_fraction must be in [0, 1), got {val_fraction}")
    train: list[Clip] = []
    val: list[Clip] = []
    for video in videos:
        source = getattr(video, "source", video)
        n = len(source)
        n_val = max(math.ceil(val_fraction * n), T + 1) if val_fraction > 0 else 0
        if n_val and n - n_val >= T + 1:
            train.append((source, 0, n - n_val))
            val.append((source, n - n_val, n))
        else:
            train.append((source, 0, n))
    if val_fraction > 0 and not val:
        longest = max((getattr(v, "source", v) for v in videos), key=len, default=None)
        raise StvadError(
            f"no training video is long enough to hold out validation frames: each needs {2 * (T + 1)}, "
            f"the longest has {len(longest) if longest is not None else 0}",
            None if longest is None else longest.path,
        )
    return train, val
