"""Streaming keeps memory flat: read a long video frame by frame into windows and watch the process RSS.

    python bench/stream_memory.py                 # ../shared/data/opencv/vtest.avi looped 5 times
    python bench/stream_memory.py --video X.avi --loops 3

Without the shared data it writes a synthetic MJPG video to a temporary folder. Prints a table of
resident memory as frames go by and writes bench/results/stream_memory.json.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from stvad._io import atomic_write_json
from stvad.data.sources import open_source, to_model
from stvad.data.windows import iter_windows

ROOT = Path(__file__).resolve().parent.parent
VTEST = ROOT.parent / "shared" / "data" / "opencv" / "vtest.avi"


def proc_status_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak so far) of this process, from /proc/self/status, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def synthetic_video(path: Path, n: int = 1600, size: tuple[int, int] = (480, 640)) -> Path:
    """A moving gradient with noise, so every frame differs and the codec does real work."""
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (size[1], size[0]))
    ramp = np.linspace(0, 255, size[1], dtype=np.float32)[None, :, None]
    for i in range(n):
        frame = np.broadcast_to((ramp + 3 * i) % 256, (*size, 3)) + rng.normal(0, 8, (*size, 3))
        writer.write(np.clip(frame, 0, 255).astype(np.uint8))
    writer.release()
    return path


def run(video: Path, loops: int, size: tuple[int, int], channels: int, T: int, checkpoints: int) -> dict:
    src = open_source(video)
    native = src.read(0).shape
    total = len(src) * loops
    marks = set(np.linspace(T, total - 1, checkpoints).astype(int).tolist())
    frames = itertools.chain.from_iterable(src.frames(size, channels) for _ in range(loops))
    rows = []
    start = time.perf_counter()
    hwm_before = proc_status_mb("VmHWM")
    rss_first = None
    for index, past, target in iter_windows(frames, T):
        # the full path to the model's input, so its temporaries count too
        to_model(past), to_model(target)
        if rss_first is None:
            rss_first = proc_status_mb("VmRSS")
        if index in marks:
            rows.append({"frames_read": index + 1, "rss_mb": round(proc_status_mb("VmRSS"), 1)})
    seconds = time.perf_counter() - start
    frame_mb = native[0] * native[1] * native[2] / 2**20
    return {
        "video": os.path.relpath(video, ROOT),
        "native_frame": list(native),
        "loops": loops,
        "frames": total,
        "window": {"T": T, "size": list(size), "channels": channels},
        "seconds": round(seconds, 2),
        "frames_per_second": round(total / seconds, 1),
        "whole_video_in_memory_mb": round(total * frame_mb, 1),
        "rss_after_first_window_mb": round(rss_first, 1),
        "rss_growth_mb": round(max(r["rss_mb"] for r in rows) - rss_first, 1),
        "peak_rss_before_mb": round(hwm_before, 1),
        "peak_rss_after_mb": round(proc_status_mb("VmHWM"), 1),
        "checkpoints": rows,
        "machine": f"{platform.machine()} {platform.system()}, OpenCV {cv2.__version__}",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", type=Path, default=None, help="default: vtest.avi, else a synthetic video")
    p.add_argument("--loops", type=int, default=5)
    p.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--T", type=int, default=4)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "stream_memory.json")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video = a.video or (VTEST if VTEST.is_file() else synthetic_video(Path(tmp) / "synthetic.avi"))
        result = run(video, a.loops, tuple(a.size), a.channels, a.T, checkpoints=8)
    print(f"{result['video']}: {result['frames']} frames ({result['loops']} loops), {result['seconds']} s")
    print(f"{'frames read':>12} {'RSS MB':>8}")
    for row in result["checkpoints"]:
        print(f"{row['frames_read']:>12} {row['rss_mb']:>8.1f}")
    print(
        f"RSS growth after the first window: {result['rss_growth_mb']} MB; "
        f"the decoded video would take {result['whole_video_in_memory_mb']} MB"
    )
    atomic_write_json(a.out, result)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
