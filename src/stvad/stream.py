"""Online scoring for live footage (``stvad watch``): each frame encoded once, events as JSON lines.

Frames go through the scoring engine (:mod:`stvad.engine`) one at a time as they arrive: a frame is
encoded once (``G.encode_frames``) and its features are kept in a ring of the last T feature sets that
every window containing the frame reuses; only the ConvLSTM, the decoder and D run per window. The scores
equal those of G run on each whole window up to float rounding (tests/test_stream.py).

Memory stays flat however long a stream runs: the ring holds T feature sets, the event tracker at most one
open event, and nothing else accumulates. A live camera or network stream that drops is reopened with
exponential back-off (:mod:`stvad.data.follow`), each attempt reported; a file or frame folder simply ends.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

from stvad.calibration import alarm_config, read_calibration
from stvad.checkpoint import load_run
from stvad.data.follow import Backoff, Follow
from stvad.data.sources import resize_frame
from stvad.engine import TorchEngine, WindowEngine, run_folder
from stvad.errors import StvadError
from stvad.events import ASSUMED_FPS, MERGE_GAP_S, MIN_EVENT_S, EventLog, EventTracker
from stvad.scoring import CausalMean

BACKENDS = ("torch", "onnxruntime")


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
        # alarms score as the threshold was fitted (an exported graph was exported so)
        engine.cfg = alarm_config(engine.cfg, engine.calibration)
    return engine


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
                "no threshold: the run has no calibration.json (fit one with stvad.calibration.calibrate or "
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
        tracker = EventTracker.in_seconds(
            threshold, rate, min_event_s, merge_gap_s, source=stream.source.name, clock=clock
        )
        engine.reset()
        smooth = CausalMean(engine.cfg.score.causal_window)  # as the threshold was fitted
        n, start = 0, time.monotonic()
        try:
            for frame, fresh in stream:
                if fresh:
                    engine.reset()
                    smooth.reset()
                    if (ev := tracker.close()) is not None:
                        log.write(ev)
                score, amap = engine.push(resize_frame(frame, size, channels)[None])
                if score.size:
                    t = n / fps if clock == "video" else time.monotonic() - start
                    ev = tracker.update(n, t, smooth(float(score[0])), amap[0], frame.shape[:2])
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
