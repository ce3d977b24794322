"""Training throughput: windows per second of one full G+D training step (``stvad.train.gan_step``).

    python bench/train_throughput.py                       # cpu and ped2 presets, both architectures
    python bench/train_throughput.py --presets ped2 --steps 10 --threads 2

Random input at each preset's size and batch, CutMix on every step (the most expensive case after the
warm-up). Data loading is not included: WindowDataset serves windows from a decoded cache. Prints a
table and writes bench/results/train_throughput.json with the load average before and after: on a
shared machine the median step is used and the load says how much of the CPU the run had.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from stvad._io import atomic_write_json
from stvad.config import preset
from stvad.model import build_discriminator, build_generator
from stvad.train import gan_step

OUT = Path(__file__).resolve().parent / "results" / "train_throughput.json"


def measure(name: str, arch: str, steps: int) -> dict:
    cfg = preset(name).override([f"model.arch={arch}", "train.cutmix_warmup=0", "train.cutmix_prob=1.0"])
    torch.manual_seed(0)
    G, D = build_generator(cfg), build_discriminator(cfg)
    tc = cfg.train
    opt_g = torch.optim.Adam(G.parameters(), lr=tc.lr_g, betas=tc.betas_g)
    opt_d = torch.optim.Adam(D.parameters(), lr=tc.lr_d, betas=tc.betas_d)
    B, (H, W), C = tc.batch_size, cfg.data.size, cfg.data.channels
    x = torch.rand(B, cfg.data.T, C, H, W) * 2 - 1
    y = torch.rand(B, C, H, W) * 2 - 1
    times = []
    for step in range(1, steps + 3):
        t = time.perf_counter()
        gan_step(G, D, opt_g, opt_d, x, y, tc, step, torch.Generator().manual_seed(step),
                 backward=torch.Tensor.backward, check=lambda name, loss: None)  # fmt: skip
        if step > 2:  # the first steps allocate and warm up oneDNN
            times.append(time.perf_counter() - t)
    step_s = statistics.median(times)
    return {
        "preset": name,
        "arch": arch,
        "size": list(cfg.data.size),
        "channels": C,
        "g_width": cfg.model.g_width,
        "d_width": cfg.model.d_width,
        "batch_size": B,
        "step_s_median": round(step_s, 4),
        "windows_per_s": round(B / step_s, 2),
        "steps_timed": len(times),
        "max_steps": tc.max_steps,
        "est_train_minutes": round(tc.max_steps * step_s / 60, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["cpu", "ped2"])
    p.add_argument("--archs", nargs="+", default=["stgan", "ffp"])
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    load_before = round(os.getloadavg()[0], 2)  # the machine may be shared: record how busy it was
    rows = [measure(name, arch, a.steps) for name in a.presets for arch in a.archs]
    print(f"{'preset':8} {'arch':6} {'size':>9} {'batch':>5} {'step s':>7} {'windows/s':>9} {'est. min':>8}")
    for r in rows:
        size = "x".join(map(str, r["size"]))
        print(
            f"{r['preset']:8} {r['arch']:6} {size:>9} {r['batch_size']:>5} {r['step_s_median']:>7.3f} "
            f"{r['windows_per_s']:>9.1f} {r['est_train_minutes']:>8.1f}"
        )
    atomic_write_json(
        OUT,
        {
            "command": "python bench/train_throughput.py "
            + " ".join(
                [f"--presets {' '.join(a.presets)}", f"--archs {' '.join(a.archs)}", f"--steps {a.steps}"]
                + ([f"--threads {a.threads}"] if a.threads else [])
            ),
            "threads": torch.get_num_threads(),
            "torch": str(torch.__version__),
            "machine": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1min_before": load_before,
            "load_average_1min_after": round(os.getloadavg()[0], 2),
            "processor": platform.processor(),
            "note": "G+D step on random input with CutMix every step; excludes data loading and validation",
            "rows": rows,
        },
    )
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
