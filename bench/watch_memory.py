"""`stvad watch` keeps memory flat: score a looped video online for 10,000+ frames and watch the peak RSS.

    python bench/watch_memory.py                        # ../shared/data/opencv/vtest.avi, 12,000 frames
    python bench/watch_memory.py --frames 20000 --preset cpu

It first trains a quick run (``--preset``, default ``tiny``, ``--steps`` steps) on the video itself with
``Detector.fit`` and calibrates its threshold, then runs ``stvad.stream.watch`` on the video played in a
loop (``--loop``), sampling the process's resident memory (VmRSS) and its peak so far (VmHWM) every 1,000
frames. The claim: the peak grows by less than 50 MB from frame 1,000 to the end. Torch runs on one
thread: a small model at batch 1 gains nothing from more, and the result does not depend on the load of
the machine. Prints a table and writes bench/results/watch_memory.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from stvad._io import atomic_write_json
from stvad.api import Detector
from stvad.engine import WindowEngine
from stvad.stream import watch

ROOT = Path(__file__).resolve().parent.parent
VTEST = ROOT.parent / "shared" / "data" / "opencv" / "vtest.avi"
LIMIT_MB = 50.0
EVERY = 1000


def proc_status_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak so far) of this process, from /proc/self/status, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


class Sampled:
    """Passes every frame to ``engine`` and records the memory every ``EVERY`` frames (watch pushes one
    frame per call)."""

    def __init__(self, engine: WindowEngine):
        self.engine, self.frames, self.rows = engine, 0, []
        self.cfg, self.T, self.variant = engine.cfg, engine.T, engine.variant
        self.calibration = engine.calibration
        self.start = time.perf_counter()

    def reset(self) -> None:
        self.engine.reset()

    def push(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self.engine.push(frames)
        self.frames += len(frames)
        if self.frames % EVERY == 0:
            self.sample()
        return out

    def sample(self) -> None:
        self.rows.append(
            {
                "frames": self.frames,
                "rss_mb": round(proc_status_mb("VmRSS"), 1),
                "peak_rss_mb": round(proc_status_mb("VmHWM"), 1),
                "seconds": round(time.perf_counter() - self.start, 1),
            }
        )


def print_samples(rows: list[dict]) -> None:
    """The memory samples as a table: frames watched, resident and peak resident MB, seconds."""
    print(f"{'frames':>8} {'RSS MB':>8} {'peak MB':>8} {'seconds':>8}")
    for r in rows:
        print(f"{r['frames']:>8} {r['rss_mb']:>8.1f} {r['peak_rss_mb']:>8.1f} {r['seconds']:>8.1f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", type=Path, default=VTEST)
    p.add_argument("--frames", type=int, default=12000, help="frames to watch (the video loops)")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--steps", type=int, default=60, help="training steps of the quick run")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "watch_memory.json")
    a = p.parse_args()
    if not a.video.is_file():
        sys.exit(f"{a.video} not found (the shared data folder is needed)")
    if a.frames < 2 * EVERY:
        sys.exit(f"--frames must be at least {2 * EVERY}")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        run, events = Path(tmp) / "run", Path(tmp) / "events.jsonl"
        t0 = time.perf_counter()
        det = Detector.fit([a.video], run, preset=a.preset, max_steps=a.steps, val_every=20, progress=False)
        train_s = time.perf_counter() - t0
        engine = Sampled(det.engine)
        summary = watch(run, a.video, events, max_frames=a.frames, loop=True, engine=engine, echo=None)
        if engine.frames % EVERY:
            engine.sample()
        n_events = len(events.read_text().splitlines()) if events.exists() else 0
    rows = engine.rows
    at_1000 = next(r for r in rows if r["frames"] == EVERY)
    growth = round(rows[-1]["peak_rss_mb"] - at_1000["peak_rss_mb"], 1)
    result = {
        "command": " ".join(["python", "bench/watch_memory.py", *sys.argv[1:]]),
        "video": os.path.relpath(a.video, ROOT),
        "frames": summary["frames"],
        "loop": True,
        "preset": a.preset,
        "train_steps": a.steps,
        "train_seconds": round(train_s, 1),
        "model_size": list(det.config.data.size),
        "threshold": summary["threshold"],
        "events": n_events,
        "watch_seconds": summary["seconds"],
        "frames_per_second": summary["fps"],
        "peak_rss_at_1000_mb": at_1000["peak_rss_mb"],
        "peak_rss_at_end_mb": rows[-1]["peak_rss_mb"],
        "peak_rss_growth_mb": growth,
        "limit_mb": LIMIT_MB,
        "flat": growth < LIMIT_MB,
        "samples": rows,
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.system()}",
        "versions": {"torch": torch.__version__, "opencv": cv2.__version__},
    }
    print(f"{result['video']} looped: {result['frames']} frames watched in {result['watch_seconds']} s")
    print_samples(rows)
    verdict = "flat" if result["flat"] else "NOT flat"
    print(
        f"peak RSS growth from frame {EVERY} to the end: {growth} MB ({verdict}; the limit is {LIMIT_MB} MB)"
    )
    atomic_write_json(a.out, result)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
