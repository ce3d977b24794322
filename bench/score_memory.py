"""Peak memory of scoring a long video with ``Scorer.score_source``: resident memory as frames go by.

    python bench/score_memory.py                # ../shared/data/opencv/vtest.avi looped 10 times, cpu preset
    python bench/score_memory.py --video X.avi --loops 3 --batch 16

The video (a synthetic MJPG one when the shared data is absent) is played ``loops`` times back to back as one
long source and scored by ``Scorer.score_source`` (random weights: memory does not depend on them), once
with ``keep_maps=False`` (scores only: memory should stay flat) and once with ``keep_maps=True`` (the maps
are returned, float16 at model size: memory grows by that much, which shows the measurement can see growth).
Each pass runs in a fresh process, so memory that the allocator kept from one pass cannot hide the other's
growth. Prints a table of RSS per pass and writes bench/results/score_memory.json.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from perf_common import RESULTS, load_1min, machine, random_run, set_threads
from stream_memory import VTEST, proc_status_mb, synthetic_video
from stvad._io import atomic_write_json
from stvad.config import preset
from stvad.data.sources import FrameSource, open_source
from stvad.engine import Scorer

ROOT = Path(__file__).resolve().parent.parent


class Looped(FrameSource):
    """``source`` played ``loops`` times as one source; records the RSS when chosen frames are read."""

    def __init__(self, source: FrameSource, loops: int, marks: set[int]):
        self.source, self.loops, self.marks = source, loops, marks
        self.name, self.path = f"{source.name} x{loops}", source.path
        self.samples: list[dict] = []

    def __len__(self) -> int:
        return len(self.source) * self.loops

    def iter_range(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        stop = len(self) if stop is None else stop
        n = len(self.source)
        for i in range(start, stop):
            if i == start or i % n == 0:
                frames = self.source.iter_range(i % n)
            if i in self.marks:
                self.samples.append({"frames_read": i, "rss_mb": round(proc_status_mb("VmRSS"), 1)})
            yield next(frames)

    def read(self, i: int) -> np.ndarray:
        return self.source.read(i % len(self.source))


def score_pass(
    video: Path, cfg_name: str, batch: int, threads: int, loops: int, keep_maps: bool, first: int
) -> dict:
    """One pass in this process: load the model, score the looped video, sample the RSS."""
    set_threads(threads)
    rss_start = proc_status_mb("VmRSS")
    scorer = Scorer(random_run(preset(cfg_name)), batch_size=batch, variants=("full",))
    source = open_source(video)
    total = len(source) * loops
    looped = Looped(source, loops, set(np.linspace(first, total - 1, 13).astype(int).tolist()))
    start = time.perf_counter()
    result = scorer.score_source(looped, keep_maps=keep_maps)
    seconds = time.perf_counter() - start
    rss = [s["rss_mb"] for s in looped.samples]
    third = len(rss) - len(rss) // 3
    maps_mb = 0.0 if result.maps is None else result.maps.nbytes / 2**20
    return {
        "keep_maps": keep_maps,
        "frames": total,
        "scored_frames": int(result.index.size),
        "seconds": round(seconds, 1),
        "frames_per_s": round(total / seconds, 1),
        "rss_process_start_mb": round(rss_start, 1),
        "rss_at_first_mark_mb": rss[0],
        "first_mark_frame": looped.samples[0]["frames_read"],
        "rss_growth_after_first_mark_mb": round(max(rss) - rss[0], 1),
        "rss_growth_last_third_mb": round(max(rss[third:]) - rss[third], 1),
        "returned_maps_mb": round(maps_mb, 1),
        "peak_rss_mb": round(proc_status_mb("VmHWM"), 1),
        "samples": looped.samples,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", type=Path, default=None, help="default: vtest.avi, else a synthetic video")
    p.add_argument("--loops", type=int, default=10)
    p.add_argument("--preset", default="cpu")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--first", type=int, default=200, help="growth is measured after this many frames")
    p.add_argument("--threads", type=int, default=1, help="torch threads (see score_throughput.py)")
    p.add_argument("--out", type=Path, default=RESULTS / "score_memory.json")
    a = p.parse_args()
    threads = a.threads
    load_before = load_1min()
    cfg = preset(a.preset)
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        video = a.video or (VTEST if VTEST.is_file() else synthetic_video(Path(tmp) / "synthetic.avi"))
        native = list(open_source(video).read(0).shape)
        passes = []
        for keep in (False, True):
            with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
                job = pool.submit(score_pass, video, a.preset, a.batch, threads, a.loops, keep, a.first)
                passes.append(job.result())
    load_after = load_1min()
    print(
        f"{os.path.relpath(video, ROOT)} ({native[1]}x{native[0]}) x{a.loops}, {cfg.data.size} "
        f"batch {a.batch}, {threads} thread(s); load {load_before} -> {load_after}"
    )
    print(
        f"{'keep_maps':>9} {'frames':>7} {'frames/s':>9} {'RSS@first':>10} {'growth MB':>10} "
        f"{'last third':>10} {'peak MB':>8} {'maps MB':>8}"
    )
    for r in passes:
        print(
            f"{r['keep_maps']!s:>9} {r['frames']:>7} {r['frames_per_s']:>9.1f} "
            f"{r['rss_at_first_mark_mb']:>10.1f} {r['rss_growth_after_first_mark_mb']:>10.1f} "
            f"{r['rss_growth_last_third_mb']:>10.1f} {r['peak_rss_mb']:>8.1f} {r['returned_maps_mb']:>8.1f}"
        )
    atomic_write_json(
        a.out,
        {
            "command": f"python bench/score_memory.py --loops {a.loops} --preset {a.preset} "
            f"--batch {a.batch} --first {a.first} --threads {a.threads}"
            + (f" --video {a.video}" if a.video else ""),
            **machine(),
            "load_average_1min_before": load_before,
            "load_average_1min_after": load_after,
            "video": os.path.relpath(video, ROOT),
            "native_frame": native,
            "size": list(cfg.data.size),
            "channels": cfg.data.channels,
            "batch": a.batch,
            "note": (
                "each pass in a fresh process; RSS sampled as the source delivers frames; growth = largest "
                "sample minus the first (after --first frames); last third = the same over the last third of "
                "the samples"
            ),
            "passes": passes,
        },
    )
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
