"""The scoring engine: windows of T past frames and the next one, pushed through a backend, out come
scores and maps. ``WindowEngine`` keeps the last T per-frame states and batches the windows; a backend
says how a frame is encoded and a window judged: ``TorchEngine`` here (each frame through G's encoder once,
its features reused by every window that holds it), ``stvad.export.OnnxEngine`` for an exported graph.
The API, ``stvad score`` and ``stvad watch`` score through it (:func:`score_frames`, ``push``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from stvad.checkpoint import LoadedRun
from stvad.config import Config
from stvad.data.sources import to_model
from stvad.errors import StvadError
from stvad.inference import judge, prepare
from stvad.model import Features, feature_windows
from stvad.scoring import VARIANTS


class WindowEngine:
    """Scores a stream of frames window by window; subclasses say how frames are encoded and judged.

    ``push`` takes the next frames and returns the scores of those that complete a window. The engine keeps
    the per-frame states (features, or the frames themselves) of the last T frames and nothing more.
    """

    calibration: dict | None = None  # the run's fitted threshold and normal-score statistics, when known

    def __init__(self, cfg: Config, device: str | torch.device = "cpu"):
        if cfg.score.variant not in VARIANTS:
            raise StvadError(f"score.variant must be one of {', '.join(VARIANTS)}, got '{cfg.score.variant}'")
        self.cfg = cfg
        self.T = cfg.data.T
        self.variant = cfg.score.variant
        self.device = torch.device(device)
        self._ring: Features | None = None

    def encode_frames(self, x: torch.Tensor) -> Features:
        """(N, C, H, W) frames in [-1, 1] -> per-frame states, one (N, ...) tensor per entry."""
        raise NotImplementedError

    def judge_windows(self, windows: Features, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """States stacked over M windows, (M, T, ...) each, and the targets -> scores (M,), maps (M, H, W)."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the past (after a break in the stream): the next T frames only refill the ring."""
        self._ring = None

    @torch.no_grad()
    def push(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The next N frames, uint8 (N, H, W, C) at model size -> scores (M,) and maps (M, H, W).

        The results belong to the last M of the N frames: those with T frames before them since the last
        reset (M = N once the ring is full).
        """
        x = to_model(np.asarray(frames)).to(self.device)  # (N, C, H, W)
        state = self.encode_frames(x)
        if self._ring is not None:
            state = tuple(torch.cat([r, s]) for r, s in zip(self._ring, state))
        # a copy, so the chunk's tensors are freed and the ring never holds more than T frames
        self._ring = tuple(s[-self.T :].clone() for s in state)
        m = state[0].shape[0] - self.T
        if m <= 0:
            return np.zeros(0, np.float32), np.zeros((0, *x.shape[-2:]), np.float32)
        score, amap = self.judge_windows(feature_windows(state, self.T), x[-m:])
        # the scores copied out of torch's tensor: callers keep them (score_frames), and a kept view pins
        # a small block among each call's large temporaries, which fragments the heap so that memory grows
        return score.float().cpu().numpy().copy(), amap.float().cpu().numpy()


class TorchEngine(WindowEngine):
    """The trained G and D in PyTorch; each frame goes through G's encoder once.

    A discriminator conditioned on past frames (``model.d_context`` > 0) also needs the frames themselves,
    so then each frame's state is G's features plus the frame.
    """

    def __init__(self, run: LoadedRun, device: str | torch.device = "cpu"):
        super().__init__(run.config, device)
        self.G = prepare(run.generator, self.device)
        self.D = prepare(run.discriminator, self.device)
        self.keep_frames = self.cfg.model.d_context > 0

    def encode_frames(self, x: torch.Tensor) -> Features:
        feats = self.G.encode_frames(x)
        return (*feats, x) if self.keep_frames else feats

    def judge_windows(self, windows: Features, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.keep_frames:
            windows, past = windows[:-1], windows[-1]
        else:
            past = None  # the single-frame D does not look at the past frames
        sb = judge(self.D, target, self.G.predict_from_features(windows), self.cfg.score, past)
        return sb.scores[self.variant], sb.anomaly_map


def run_folder(run: str | os.PathLike) -> Path:
    """The run folder of RUN, which may also name one of its checkpoint files."""
    path = Path(run)
    return path.parent.parent if path.suffix == ".ckpt" else path


def score_frames(
    engine: WindowEngine, frames: Iterable[np.ndarray], keep_maps: bool = False, chunk: int = 16
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
    """Score a finite stream of model-size frames from a fresh start.

    Returns (frame numbers (n,), scores (n,), maps (n, H, W) float16 or None, frames read).
    """
    engine.reset()
    index: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    maps: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    seen = 0

    def flush() -> None:
        score, amap = engine.push(np.stack(batch))
        index.append(np.arange(seen - len(score), seen))
        scores.append(score)
        if keep_maps:
            maps.append(amap.astype(np.float16))
        batch.clear()

    for frame in frames:
        batch.append(frame)
        seen += 1
        if len(batch) == chunk:
            flush()
    if batch:
        flush()
    h, w = engine.cfg.data.size
    return (
        np.concatenate(index) if index else np.zeros(0, np.int64),
        np.concatenate(scores).astype(np.float64) if scores else np.zeros(0),
        (np.concatenate(maps) if maps else np.zeros((0, h, w), np.float16)) if keep_maps else None,
        seen,
    )


# ---------------------------------------------------------------- sources that come back
