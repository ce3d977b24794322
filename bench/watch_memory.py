"""`stvad watch` keeps memory flat: score a looped video online for 10,000+ frames and watch the peak RSS.

    python bench/watch_memory.py                        # ../shared/data/opencv/vtest.avi, 12,000 frames
    python bench/watch_memory.py --frames 20000 --preset cpu
    nice python bench/watch_memory.py --frames 30000 --out bench/results/soak_watch.json   # the soak run
    python bench/watch_memory.py --run runs/cam1 --frames 50000                          # a run of yours

It first trains a quick run (``--preset``, default ``tiny``, ``--steps`` steps) on the video itself with
``Detector.fit`` and calibrates its threshold, then runs ``stvad.stream.watch`` on the video played in a
loop (``--loop``), sampling the process's resident memory (VmRSS) and its peak so far (VmHWM) every 1,000
frames. An exception ends the run and is recorded with the frame it happened at (the soak's finding,
whatever it is). The claim: no error, and the peak grows by less than 50 MB from frame 1,000 to the end;
the least-squares slope of RSS over the samples is reported too. Torch runs on one thread: a small model
at batch 1 gains nothing from more, and the result does not depend on the load of the machine. Prints a
table and writes bench/results/watch_memory.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import traceback
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
    p.add_argument("--run", type=Path, default=None, help="a trained, calibrated run (default: train one)")
    p.add_argument("--preset", default="tiny", help="of the quick run")
    p.add_argument("--steps", type=int, default=60, help="training steps of the quick run")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "watch_memory.json")
    a = p.parse_args()
    if not a.video.is_file():
        sys.exit(f"{a.video} not found (the shared data folder is needed)")
    if a.frames < 2 * EVERY:
        sys.exit(f"--frames must be at least {2 * EVERY}")
    torch.set_num_threads(1)  # a small model at batch 1 gains nothing from more; results do not hang on load
    errors: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        if a.run is None:
            run = Path(tmp) / "run"
            det = Detector.fit(
                [a.video], run, preset=a.preset, max_steps=a.steps, val_every=20, progress=False
            )
        else:
            run, det = a.run, Detector.load(a.run)
        train_s = time.perf_counter() - t0
        events = Path(tmp) / "events.jsonl"
        engine = Sampled(det.engine)
        summary = None
        try:
            summary = watch(run, a.video, events, max_frames=a.frames, loop=True, engine=engine, echo=None)
        except Exception as e:  # the soak's finding, whatever it is: recorded, not raised
            errors.append(
                {
                    "type": type(e).__name__,
                    "message": str(e),
                    "at_frame": engine.frames,
                    "where": traceback.format_exc().strip().splitlines()[-3:],
                }
            )
        if engine.frames % EVERY:
            engine.sample()
        n_events = len(events.read_text().splitlines()) if events.exists() else 0
    rows = engine.rows
    at_1000 = next(r for r in rows if r["frames"] == EVERY)
    growth = round(rows[-1]["peak_rss_mb"] - at_1000["peak_rss_mb"], 1)
    later = [r for r in rows if r["frames"] >= EVERY]
    slope = (
        np.polyfit([r["frames"] for r in later], [r["rss_mb"] for r in later], 1)[0]
        if len(later) > 1
        else 0.0
    )
    result = {
        "command": " ".join(["python", "bench/watch_memory.py", *sys.argv[1:]]),
        "video": os.path.relpath(a.video, ROOT),
        "frames_requested": a.frames,
        "frames": engine.frames,
        "loop": True,
        "run": f"trained here: {a.preset} preset" if a.run is None else str(a.run),
        "preset": det.config.preset,
        "train_steps": a.steps if a.run is None else None,
        "train_seconds": round(train_s, 1) if a.run is None else None,
        "model_size": list(det.config.data.size),
        "threshold": det.threshold,
        "events": n_events,
        "errors": errors,
        "watch_seconds": summary["seconds"] if summary else rows[-1]["seconds"],
        "frames_per_second": summary["fps"] if summary else None,
        "peak_rss_at_1000_mb": at_1000["peak_rss_mb"],
        "peak_rss_at_end_mb": rows[-1]["peak_rss_mb"],
        "peak_rss_growth_mb": growth,
        "rss_slope_mb_per_10k_frames": round(float(slope) * 10000, 2),
        "limit_mb": LIMIT_MB,
        "flat": growth < LIMIT_MB,
        "passed": not errors and engine.frames == a.frames and growth < LIMIT_MB,
        "samples": rows,
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs (shared)",
        "versions": {"torch": torch.__version__, "opencv": cv2.__version__},
    }
    print(f"{result['video']} looped: {result['frames']} of {a.frames} frames in {result['watch_seconds']} s")
    print_samples(rows)
    print(
        f"errors: {len(errors)}; events: {n_events}; peak RSS growth from frame {EVERY} to the end: "
        f"{growth} MB (limit {LIMIT_MB} MB); RSS slope {result['rss_slope_mb_per_10k_frames']} MB per "
        f"10,000 frames; {'PASSED' if result['passed'] else 'FAILED'}"
    )
    for e in errors:
        print(f"  {e['type']} at frame {e['at_frame']}: {e['message']}")
    atomic_write_json(a.out, result)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
