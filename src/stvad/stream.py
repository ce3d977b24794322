"""Online scoring for live footage (``stvad watch``): each frame encoded once, events as JSON lines.

The plain scorer (:class:`stvad.inference.Scorer`) runs G on whole windows, so every frame goes through
G's per-frame encoder T times. Here a frame is encoded once (``G.encode_frames``) and its features are kept
in a ring of the last T feature sets that every window containing the frame reuses; only the ConvLSTM, the
decoder and D run per window. The scores equal the plain path up to float rounding (tests/test_stream.py).

Memory stays flat however long a stream runs: the ring holds T feature sets, the event tracker at most one
open event, and nothing else accumulates. A live camera or network stream that drops is reopened with
exponential back-off, each attempt reported; a file or frame folder simply ends.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from stvad.checkpoint import LoadedRun, load_run
from stvad.config import Config
from stvad.data.sources import STREAM_SCHEMES, FrameSource, open_source, resize_frame, to_model
from stvad.errors import StvadError
from stvad.events import ASSUMED_FPS, MERGE_GAP_S, MIN_EVENT_S, EventLog, EventTracker
from stvad.inference import judge, prepare, read_calibration
from stvad.model import Features, feature_windows
from stvad.scoring import VARIANTS

BACKENDS = ("torch", "onnxruntime")


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


def load_engine(
    run: str | os.PathLike, backend: str = "torch", device: str | torch.device = "cpu", which: str = "best"
) -> WindowEngine:
    """A scoring engine for RUN (a run folder, a checkpoint, or for onnxruntime an exported .onnx file)."""
    if backend == "torch":
        engine: WindowEngine = TorchEngine(load_run(run, which=which), device)
    elif backend == "onnxruntime":
        from stvad.export import OnnxEngine

        engine = OnnxEngine.from_run(run)
    else:
        raise StvadError(f"unknown backend '{backend}' (choose from: {', '.join(BACKENDS)})")
    if Path(run).suffix != ".onnx":
        engine.calibration = read_calibration(run_folder(run)) or engine.calibration
    return engine


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


def watch(
    run: str | os.PathLike,
    source: str | os.PathLike | int,
    events: str | os.PathLike | None = None,
    backend: str = "torch",
    max_frames: int | None = None,
    loop: bool = False,
    threshold: float | None = None,
    backoff: Backoff | None = None,
    device: str = "cpu",
    echo: Callable[[str], None] | None = print,
    engine: WindowEngine | None = None,
    min_event_s: float = MIN_EVENT_S,
    merge_gap_s: float = MERGE_GAP_S,
) -> dict:
    """Score SOURCE online with RUN and write an event per run of frames above the threshold.

    Events (and reconnection notices) are JSON lines, echoed and appended to ``events``. ``threshold``
    defaults to the run's calibrated one. Runs above it closer than ``merge_gap_s`` seconds are one event,
    and an event shorter than ``min_event_s`` is dropped (seconds at the source's frame rate, or at
    ASSUMED_FPS when it has none). Returns a summary: frames read, events, seconds, frames per second.
    """
    engine = engine or load_engine(run, backend, device)
    if threshold is None:
        if engine.calibration is None:
            raise StvadError(
                "no threshold: the run has no calibration.json (fit one with stvad.inference.calibrate or "
                "Detector.calibrate) and no --threshold was given",
                run,
            )
        threshold = float(engine.calibration["threshold"])
    if max_frames is not None and max_frames < 1:
        raise StvadError(f"--max-frames must be at least 1, got {max_frames}")
    size, channels = engine.cfg.data.size, engine.cfg.data.channels
    # a bad source fails before the log is created; the attempts to reach a stream at start are echoed
    early = (lambda record: echo(json.dumps(record))) if echo else None
    stream = Follow(source, loop=loop, backoff=backoff, report=early)
    with EventLog(events, echo) as log:
        stream.report = log.write
        fps = getattr(stream.source, "fps", None)
        clock = "video" if fps and not stream.live else "wall"
        rate = fps or ASSUMED_FPS
        tracker = EventTracker(
            threshold,
            source=stream.source.name,
            clock=clock,
            min_frames=math.ceil(min_event_s * rate - 1e-9),
            gap_frames=round(merge_gap_s * rate),
        )
        engine.reset()
        n, start = 0, time.monotonic()
        try:
            for frame, fresh in stream:
                if fresh:
                    engine.reset()
                    if (ev := tracker.close()) is not None:
                        log.write(ev)
                score, amap = engine.push(resize_frame(frame, size, channels)[None])
                if score.size:
                    t = n / fps if clock == "video" else time.monotonic() - start
                    ev = tracker.update(n, t, float(score[0]), amap[0], frame.shape[:2])
                    if ev is not None:
                        log.write(ev)
                n += 1
                if max_frames is not None and n >= max_frames:
                    break
        finally:
            if (ev := tracker.close()) is not None:
                log.write(ev)
        seconds = time.monotonic() - start
    if n <= engine.T and not stream.live and (max_frames is None or n < max_frames):
        raise StvadError(
            f"only {n} frames: a score needs T = {engine.T} frames before the one judged, so at least "
            f"{engine.T + 1}",
            stream.source.path,
        )
    return {
        "frames": n,
        "events": tracker.count,
        "seconds": round(seconds, 3),
        "fps": round(n / seconds, 2) if seconds > 0 else None,
        "source_fps": fps,
        # how far scoring fell behind a source that plays at its frame rate: > 0 means it cannot keep up
        "lag_s": round(seconds - n / fps, 3) if fps else None,
        "threshold": threshold,
    }
