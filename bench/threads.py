"""Torch threads for scoring: 1, 2 and `--threads auto`, at batch 1 and batched, idle and busy machine.

    python bench/threads.py                      # cpu preset, full score, 300 frames a measurement
    python bench/threads.py --frames 100 --warmup 5 --json /tmp/threads.json    # a quick look

Each measurement runs in a fresh process (``--worker``) that sets its torch threads (a number, or what
``stvad --threads auto`` picks: the cores the 1-minute load average leaves idle) and scores the same
moving frames through the scoring engine with random weights (speed does not depend on them), one frame
a call as ``stvad watch`` does and 16 frames a call as ``stvad score`` does; frames/s is the median of
three passes. "Busy" starts a second process that keeps one core loaded with single-thread matrix
products (as a training job beside it would) and waits ``--warmup`` seconds first, so that the load
average, which `auto` reads, has risen. On a machine that is shared already "idle" is only as idle as
it is: the load averages are recorded beside each row. Prints a table and writes bench/results/threads.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from stvad._io import atomic_write_json

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results" / "threads.json"
SETTINGS = ("1", "2", "auto")
BATCHES = (1, 16)


def worker(setting: str, batch: int, frames: int) -> dict:
    import numpy as np
    import torch

    from perf_common import random_run
    from stvad.cli import threads_for
    from stvad.config import preset
    from stvad.engine import TorchEngine, score_frames

    load = os.getloadavg()[0]
    n = threads_for(setting)
    torch.set_num_threads(n)
    cfg = preset("cpu")
    engine = TorchEngine(random_run(cfg), variants=("full",))
    rng = np.random.default_rng(0)
    h, w = cfg.data.size
    clip = [rng.integers(0, 255, (h, w, 1), dtype=np.uint8) for _ in range(frames)]
    score_frames(engine, clip[:32], chunk=batch)  # warm-up: allocation, oneDNN kernels
    rates = []
    for _ in range(3):
        t = time.perf_counter()
        score_frames(engine, clip, chunk=batch)
        rates.append(frames / (time.perf_counter() - t))
    return {
        "setting": setting,
        "threads": n,
        "batch": batch,
        "frames_per_s": sorted(rates)[1],
        "load_1min": load,
    }


def busy_loop(seconds: float) -> None:
    import torch

    torch.set_num_threads(1)
    a = torch.randn(512, 512)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        a = torch.tanh(a @ a)


def measure(setting: str, batch: int, frames: int) -> dict:
    args = [sys.executable, __file__, "--worker", setting, str(batch), "--frames", str(frames)]
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)  # the worker sets its own threads
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--warmup", type=float, default=70.0, help="seconds the loader runs before measuring")
    p.add_argument("--json", default=str(OUT))
    p.add_argument("--worker", nargs=2, metavar=("SETTING", "BATCH"), help=argparse.SUPPRESS)
    p.add_argument("--busy", type=float, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker[0], int(a.worker[1]), a.frames)))
        return
    if a.busy:
        busy_loop(a.busy)
        return
    rows = []
    for condition in ("idle", "busy"):
        loader = None
        if condition == "busy":
            loader = subprocess.Popen([sys.executable, __file__, "--busy", "3600"])
            time.sleep(a.warmup)
        try:
            for batch in BATCHES:
                for setting in SETTINGS:
                    rows.append({"condition": condition, **measure(setting, batch, a.frames)})
                    r = rows[-1]
                    print(
                        f"{condition:5} batch {batch:>2} threads {setting:>4} ({r['threads']}): "
                        f"{r['frames_per_s']:7.1f} frames/s, load {r['load_1min']:.2f}",
                        flush=True,
                    )
        finally:
            if loader is not None:
                loader.kill()
                loader.wait()
    best = {}
    for r in rows:
        key = (r["condition"], r["batch"])
        best[key] = max(best.get(key, 0.0), r["frames_per_s"])
    for r in rows:
        r["of_best"] = r["frames_per_s"] / best[(r["condition"], r["batch"])]
    result = {
        "command": " ".join(["python bench/threads.py", *sys.argv[1:]]),
        "cpus": os.cpu_count(),
        "preset": "cpu",
        "variant": "full",
        "frames": a.frames,
        "warmup_s": a.warmup,
        "rows": rows,
    }
    atomic_write_json(a.json, result)
    print("| machine | batch | 1 thread | 2 threads | auto (threads) |")
    print("|---|---|---|---|---|")
    for condition in ("idle", "busy"):
        for batch in BATCHES:
            cells = {r["setting"]: r for r in rows if r["condition"] == condition and r["batch"] == batch}
            auto = cells["auto"]
            one, two, n = cells["1"]["frames_per_s"], cells["2"]["frames_per_s"], auto["threads"]
            print(f"| {condition} | {batch} | {one:.1f} | {two:.1f} | {auto['frames_per_s']:.1f} ({n}) |")
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
