"""The demo's numbers for the README: `stvad demo` end to end, timed, written to bench/results/demo.json.

    .venv/bin/python bench/demo.py [--out runs/bench-demo] [--seed 0] [--preset cpu] [--json FILE]
    .venv/bin/python bench/demo.py --summary bench/results/demo.json bench/results/demo-seed*.json

Runs exactly what `make demo` runs (synthetic set, `cpu` preset training, threshold calibration,
evaluation, report) in a fresh folder, and records the evaluation JSON with the wall time of each stage
and the machine. ``--summary`` reads such files (one per data seed) and prints each variant's micro AUROC
per seed with the mean and sample standard deviation, as the README's table of seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

from stvad._io import atomic_write_json
from stvad.demo import run_demo
from stvad.errors import StvadError

OUT = Path(__file__).resolve().parent / "results" / "demo.json"


def summary(paths: list[str]) -> str:
    """Markdown: per variant, the micro AUROC (the run's primary normalisation) of each file's seed and
    their mean ± sample standard deviation. Files of ``stvad eval --json`` (no ``bench`` entry, so no
    seed) are named by their file name, in the order given."""
    runs = []
    for path in paths:
        try:
            d = json.loads(Path(path).read_text())
            label = f"seed {d['bench']['seed']}" if "bench" in d else Path(path).stem
            runs.append((d["bench"]["seed"] if "bench" in d else len(runs), label, d["results"]))
        except (OSError, ValueError, KeyError, TypeError) as e:
            what = f"not a bench/demo.py or stvad eval result ({type(e).__name__}: {e})"
            raise StvadError(what, path) from e
    runs.sort(key=lambda r: r[0])
    labels = [name for _, name, _ in runs]
    if len(set(labels)) != len(labels):
        raise StvadError(f"two files for the same seed among {paths}")
    runs = [(name, r) for _, name, r in runs]
    head = "| variant | " + " | ".join(labels) + " | mean ± sd |"
    lines = [head, "|---" * (len(labels) + 2) + "|"]
    for variant in runs[0][1]:
        vals = [100 * r[variant]["auroc_micro"] for _, r in runs]
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        cells = " | ".join(f"{v:.1f}" for v in vals)
        lines.append(f"| {variant} | {cells} | {statistics.mean(vals):.1f} ± {sd:.1f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/bench-demo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default="cpu", help="cpu (the default detector) or cpu-paper (the paper's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--json", default=str(OUT))
    p.add_argument("--summary", nargs="+", metavar="JSON", help="summarise result files instead of running")
    a = p.parse_args()
    if a.summary:
        try:
            print(summary(a.summary))
        except StvadError as e:
            sys.exit(f"error: {e}")
        return
    shutil.rmtree(a.out, ignore_errors=True)
    t0 = time.perf_counter()
    res = run_demo(a.out, preset_name=a.preset, seed=a.seed, overrides=a.set)
    wall = time.perf_counter() - t0
    res.pop("table")
    res["bench"] = {
        "command": " ".join(["python bench/demo.py", *sys.argv[1:]]),
        "seed": a.seed,
        "preset": a.preset,
        "overrides": a.set,
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
