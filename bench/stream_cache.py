"""Streaming with the per-frame feature cache against the plain sliding window, on the same frames.

    python bench/stream_cache.py                  # cpu preset (64x64 grey), T=4 and T=8, 200 frames
    python bench/stream_cache.py --T 4 --frames 400 --repeats 7

Four ways to score every frame of one clip with the full method, all through the code users run, with
random weights (speed does not depend on them):

- ``cached-live``: ``stream.score_frames(TorchEngine(run), frames, chunk=1)``, what ``stvad watch`` does:
  each new frame is encoded once and its features reused by the T windows that contain it.
- ``plain-live``: ``Scorer.score_windows`` one window a call, the naive live scorer: every new window
  goes through the whole generator, so each frame is encoded T times (what every path did before the
  engine, and what ``Scorer.score_windows`` still does for windows that are not a stream).
- ``cached-batched`` / ``plain-batched``: the same with 16 frames (windows) per call, as offline scoring
  of a file does.

Timed interleaved (A B C D A B C D ...), medians of the repeats; the cached and plain scores are compared
(largest relative difference). FLOPs per scored frame (torch.utils.flop_counter: convolutions and matrix
products) give each path's share of the matmul peak measured in the same run. Writes
bench/results/stream_cache.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from perf_common import (
    RESULTS,
    flops_per_call,
    interleaved,
    load_1min,
    machine,
    matmul_peak,
    median,
    random_run,
    set_threads,
)
from stvad._io import atomic_write_json
from stvad.config import preset
from stvad.data.windows import iter_windows
from stvad.engine import Scorer, TorchEngine, score_frames

BATCH = 16


def moving_frames(n: int, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """Grey uint8 (H, W, 1) frames: two discs crossing a noisy floor, so consecutive frames differ."""
    rng = np.random.default_rng(seed)
    H, W = size
    floor = cv2.GaussianBlur(rng.uniform(40, 110, (H, W)).astype(np.float32), (0, 0), 2.0)
    frames = []
    for i in range(n):
        f = floor.copy()
        cv2.circle(f, (int(W * (0.1 + 0.8 * (i % 50) / 50)), H // 3), max(H // 12, 2), 200, -1)
        cv2.circle(f, (W // 2, int(H * (0.9 - 0.8 * (i % 70) / 70))), max(H // 16, 2), 20, -1)
        f += rng.normal(0, 3, f.shape)
        frames.append(np.clip(f, 0, 255).astype(np.uint8)[..., None])
    return frames


def window_by_window(scorer: Scorer, frames: list[np.ndarray], batch: int) -> np.ndarray:
    """The plain sliding window: ``batch`` windows a call, G run on each whole window."""
    windows = list(iter_windows(frames, scorer.T))
    past, target = np.stack([w[1] for w in windows]), np.stack([w[2] for w in windows])
    return scorer.score_many(past, target, batch)[0]["full"]


def measure(T: int, n: int, size: tuple[int, int], repeats: int, peak: float) -> dict:
    cfg = preset("cpu").override([f"data.T={T}", f"data.size={size[0]},{size[1]}"])
    frames = moving_frames(n, size)
    engine = TorchEngine(random_run(cfg))
    plain = Scorer(random_run(cfg), variants=("full",))
    paths = {
        "cached-live": lambda: score_frames(engine, frames, chunk=1).scores[engine.variant],
        "plain-live": lambda: window_by_window(plain, frames, 1),
        "cached-batched": lambda: score_frames(engine, frames, chunk=BATCH).scores[engine.variant],
        "plain-batched": lambda: window_by_window(plain, frames, BATCH),
    }
    scores = {k: np.asarray(fn(), np.float64) for k, fn in paths.items()}
    ref = scores["plain-batched"]
    rel = {k: float(np.max(np.abs(s - ref) / np.abs(ref))) for k, s in scores.items()}
    scored = n - T
    flops = {k: flops_per_call(fn) / scored for k, fn in paths.items()}
    samples = interleaved(paths, repeats, min_seconds=0.0, warmup=1)
    seconds = {k: median(v) for k, v in samples.items()}
    rows = {
        k: {
            "frames_per_s": round(scored / s, 1),
            "ms_per_frame": round(1e3 * s / scored, 3),
            "mflop_per_frame": round(flops[k] / 1e6, 1),
            "achieved_gflops": round(flops[k] * scored / s / 1e9, 1),
            "fraction_of_peak": round(flops[k] * scored / s / 1e9 / peak, 3),
            "max_rel_diff_to_plain_batched": rel[k],
        }
        for k, s in seconds.items()
    }
    return {
        "T": T,
        "size": list(size),
        "frames": n,
        "scored_frames": scored,
        "repeats": repeats,
        "rows": rows,
        "cached_over_plain_live": round(seconds["plain-live"] / seconds["cached-live"], 3),
        "cached_over_plain_batched": round(seconds["plain-batched"] / seconds["cached-batched"], 3),
        "cached_batched_over_plain_live": round(seconds["plain-live"] / seconds["cached-batched"], 3),
        "flop_ratio": round(flops["plain-live"] / flops["cached-live"], 3),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--T", type=int, nargs="+", default=[4, 8])
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--size", type=int, nargs=2, default=(64, 64), metavar=("H", "W"))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch threads (see score_throughput.py)")
    p.add_argument("--out", type=Path, default=RESULTS / "stream_cache.json")
    a = p.parse_args()
    threads = set_threads(a.threads)
    load_before = load_1min()
    peak = matmul_peak()
    results = [measure(T, a.frames, tuple(a.size), a.repeats, peak["peak_gflops"]) for T in a.T]
    load_after = load_1min()
    print(
        f"{threads} thread(s), matmul peak {peak['peak_gflops']} GFLOP/s; load {load_before} -> {load_after}"
    )
    print(
        f"{'T':>2} {'path':15} {'frames/s':>9} {'ms/frame':>9} {'MFLOP/fr':>9} {'of peak':>7} {'rel diff':>8}"
    )
    for r in results:
        for k, row in r["rows"].items():
            print(
                f"{r['T']:>2} {k:15} {row['frames_per_s']:>9.1f} {row['ms_per_frame']:>9.2f} "
                f"{row['mflop_per_frame']:>9.0f} {100 * row['fraction_of_peak']:>6.1f}% "
                f"{row['max_rel_diff_to_plain_batched']:>8.1e}"
            )
        print(
            f"T={r['T']}: cached / plain {r['cached_over_plain_live']:.2f}x live, "
            f"{r['cached_over_plain_batched']:.2f}x batched (FLOP ratio {r['flop_ratio']:.2f}); "
            f"cached batched / plain live {r['cached_batched_over_plain_live']:.2f}x"
        )
    atomic_write_json(
        a.out,
        {
            "command": "python bench/stream_cache.py "
            + f"--T {' '.join(map(str, a.T))} --frames {a.frames} --size {a.size[0]} {a.size[1]} "
            + f"--repeats {a.repeats} --threads {a.threads}",
            **machine(),
            "load_average_1min_before": load_before,
            "load_average_1min_after": load_after,
            "matmul_peak": peak,
            "note": (
                "full variant, random weights; each sample scores the whole clip from a fresh start; "
                "frames/s counts scored frames (all but the first T)"
            ),
            "results": results,
        },
    )
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
