"""The demo's numbers for the README: `stvad demo` end to end, timed, written to bench/results/demo.json.

    .venv/bin/python bench/demo.py [--out runs/bench-demo] [--seed 0]

Runs exactly what `make demo` runs (synthetic set, `cpu` preset training, threshold calibration,
evaluation, report) in a fresh folder, and records the evaluation JSON with the wall time of each stage
and the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import time
from pathlib import Path

import torch

from stvad._io import atomic_write_json
from stvad.demo import run_demo

OUT = Path(__file__).resolve().parent / "results" / "demo.json"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/bench-demo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=str(OUT))
    a = p.parse_args()
    shutil.rmtree(a.out, ignore_errors=True)
    t0 = time.perf_counter()
    res = run_demo(a.out, seed=a.seed)
    wall = time.perf_counter() - t0
    res.pop("table")
    res["bench"] = {
        "command": "python bench/demo.py",
        "seed": a.seed,
        "wall_seconds": round(wall, 1),
        "stages_seconds": res.pop("stages_seconds", None),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.platform(),
        "processor": platform.processor(),
    }
    atomic_write_json(a.json, res)
    print(f"wrote {a.json} ({wall / 60:.1f} min)")


if __name__ == "__main__":
    main()
