"""UCSD Ped2, the real benchmark: train the full method and the FFP-style baseline per seed, evaluate.

    python bench/ped2.py --data ../shared/data/ped2                 # seeds 0 1 2, `ped2` preset
    python bench/ped2.py --data ../shared/data/ped2 --seeds 0       # one seed (add more later: results merge)
    python bench/ped2.py --readme                                   # only regenerate the table (docs)

Seeds can also run as parallel processes, one thread each (``OMP_NUM_THREADS=1 ... --seeds 0 &`` and
``--seeds 1 &``): two single-thread trainings use 2 cores better than one two-thread training on a
machine that is not idle. Each finished seed is merged into the JSON.

For each seed it trains, in RUNS/stgan-sN, the full method (`ped2` preset) and, in RUNS/ffp-sN, the
FFP-style baseline (same preset with ``model.arch=ffp``, same loop, same steps), then runs ``stvad eval``'s
``evaluate`` once with the baseline attached: per-video min-max and global-max normalisation (eq. 6), no
smoothing, and the same with temporal Gaussian smoothing (sigma = --sigma frames). The checkpoint scored is
``best.ckpt``, chosen by the validation PSNR of held-out normal training clips, never by test labels.

Everything is resumable: a finished run (RUN/DONE) is reused if it was trained with the config asked for
(otherwise the script stops and names the differing fields), an interrupted one resumes from its last
checkpoint, a seed already evaluated with the same checkpoint is not scored again. The output,
bench/results/ped2.json, holds every seed's eval JSON, the mean and standard deviation over seeds of every
row, training time and hardware; the Ped2 table of docs/results_ped2.md is generated from it (--readme).

The loop itself is not Ped2's: ``--data`` may name any benchmark folder with frame labels, with ``--runs``
and ``--json`` elsewhere (the partial Avenue run of docs/ is one). Only ``--readme``, with its published
rows, is for Ped2.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import time
from pathlib import Path

import torch

from perf_common import cpu_model
from stvad._io import atomic_write_json
from stvad.checkpoint import check_reusable
from stvad.config import overrides_for_arch, preset
from stvad.errors import StvadError
from stvad.evaluate import BASELINE, evaluate
from stvad.train import train

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results" / "ped2.json"
README = ROOT / "docs" / "results_ped2.md"  # the Ped2 table lives in the results page
ROWS = ("f2+flow", "full", "only-stn", "psnr", "dmap", "f2", "flow", BASELINE, "copy-last")
PUBLISHED = {"FFP (Liu et al. 2018)": 95.4, "STAN (Lee et al. 2018)": 96.5, "MNAD (Park et al. 2020)": 97.0}
BEGIN, END = "<!-- ped2-table:begin (bench/ped2.py --readme) -->", "<!-- ped2-table:end -->"


def train_run(data: str, run: Path, preset_name: str, seed: int, arch: str, overrides: list[str]) -> float:
    """Train (or resume, or reuse) one run; returns the wall seconds of training summed over invocations."""
    times_file = run / "bench_times.json"
    times = json.loads(times_file.read_text()) if times_file.exists() else []
    own = overrides_for_arch(arch, overrides)
    cfg = preset(preset_name).override([f"model.arch={arch}", f"train.seed={seed}", *own])
    if (run / "DONE").exists():
        check_reusable(run, cfg)
    else:
        resume = (run / "checkpoints" / "last.ckpt").exists()
        print(f"== training {arch} seed {seed} into {run}" + (" (resuming)" if resume else ""), flush=True)
        t0 = time.perf_counter()
        train(data, run, cfg, resume=resume)
        times.append(
            {
                "seconds": round(time.perf_counter() - t0, 1),
                "torch_threads": torch.get_num_threads(),
                "load_1min_after": os.getloadavg()[0],
            }
        )
        atomic_write_json(times_file, times)
        (run / "DONE").write_text("")
    return sum(t["seconds"] for t in times)


def run_seed(a: argparse.Namespace, seed: int) -> dict:
    runs = Path(a.runs)
    stgan, ffp = runs / f"stgan-s{seed}", runs / f"ffp-s{seed}"
    t_stgan = train_run(a.data, stgan, a.preset, seed, "stgan", a.set)
    t_ffp = train_run(a.data, ffp, a.preset, seed, "ffp", a.set)
    cached = runs / f"eval-s{seed}.json"
    if cached.exists():
        res = json.loads(cached.read_text())
        print(f"== seed {seed}: reusing {cached}")
    else:
        print(f"== evaluating seed {seed}", flush=True)
        t0 = time.perf_counter()
        res = evaluate(stgan, a.data, baseline_run=ffp, smoothing_sigma=a.sigma, progress=True)
        res.pop("table")
        res["eval_seconds"] = round(time.perf_counter() - t0, 1)
        atomic_write_json(cached, res)
    res["train_seconds"] = {"stgan": t_stgan, "ffp": t_ffp}
    res["bench_times"] = {
        name: json.loads(f.read_text()) if (f := r / "bench_times.json").exists() else []
        for name, r in (("stgan", stgan), ("ffp", ffp))
    }
    res["seed"] = seed
    return res


def _mean_std(xs: list[float]) -> dict:
    return {
        "mean": statistics.fmean(xs),
        "std": statistics.stdev(xs) if len(xs) > 1 else 0.0,
        "n": len(xs),
        "values": xs,
    }


def summarise(per_seed: list[dict]) -> dict:
    """Mean and sample standard deviation over seeds of every row, metric and normalisation."""
    out: dict = {}
    for key in ("results", "results_smoothed"):
        rows: dict = {}
        for row in ROWS:
            entries = [s[key][row] for s in per_seed if key in s and row in s[key]]
            if not entries:
                continue
            rows[row] = {
                norm: {
                    m: _mean_std([e["by_normalisation"][norm][m] for e in entries])
                    for m in ("auroc_micro", "auroc_macro", "aupr", "eer")
                }
                for norm in entries[0]["by_normalisation"]
            }
        out[key] = rows
    return out


def _cell(stat: dict) -> str:
    if stat["n"] == 1:
        return f"{100 * stat['mean']:.1f}"
    return f"{100 * stat['mean']:.1f} ± {100 * stat['std']:.1f}"


def render(result: dict, published: bool = True) -> str:
    """The README's Ped2 section body (Markdown) from bench/results/ped2.json; without the published rows
    (which are Ped2's) when ``published`` is false."""
    s, b = result["summary"], result["bench"]
    seeds = b["seeds_done"]
    has_smooth = bool(s.get("results_smoothed"))
    sigma = b["smoothing_sigma"]
    head = ["row", "micro AUROC min-max", "macro AUROC", "micro AUROC global-max (eq. 6)"]
    if has_smooth:
        head += [f"micro AUROC min-max, smoothed σ={sigma:g}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    names = {
        "full": "**full** (eq. 4-5)",
        BASELINE: "FFP-style baseline (same loop)",
        "copy-last": "copy-last floor",
    }
    for row, by_norm in s["results"].items():
        mm, gm = by_norm["per-video-minmax"], by_norm["global-max"]
        cells = [names.get(row, row), _cell(mm["auroc_micro"]), _cell(mm["auroc_macro"])]
        cells.append(_cell(gm["auroc_micro"]))
        if has_smooth:
            cells.append(_cell(s["results_smoothed"][row]["per-video-minmax"]["auroc_micro"]))
        lines.append("| " + " | ".join(cells) + " |")
    for name, value in PUBLISHED.items() if published else ():
        lines.append(f"| {name}, published | {value:.1f} |" + " |" * (len(head) - 2))
    mins = ", ".join(f"{m:.0f}" for m in b["train_minutes_stgan"])
    threads = sorted(
        {t.get("torch_threads") for s in result["per_seed"] for t in s["bench_times"]["stgan"]} - {None}
    )
    hw = b["hardware"]
    text = (
        f"Seeds {', '.join(map(str, seeds))} (mean ± sample standard deviation over seeds; one value where "
        f"one seed has finished), preset `{b['preset']}` ({b['resolution'][0]}×{b['resolution'][1]} grey, "
        f"{b['max_steps']} steps), checkpoint chosen by validation PSNR on held-out normal training clips. "
        f"Protocol: all {b['test_videos']} test videos, the first {b['frames_dropped']} frames of each "
        f"dropped, {b['scored_frames']} frames scored. Training time of the full method per seed: "
        f"{mins} min on {hw['cpu']} ({hw['cpus']} cores{', GPU ' + hw['gpu'] if hw['gpu'] else ''}; "
        f"{'/'.join(map(str, threads)) or '?'} torch thread(s) per training run, single-thread seeds trained "
        f"side by side; wall time on a machine that may have been shared: `bench_times` in the JSON). "
        + (
            "Published rows are the papers' own numbers (256×256, their protocols), not reproduced here."
            if published
            else ""
        )
        + "\n\n"
    )
    return text + "\n".join(lines) + "\n"


def update_readme(result: dict, check: bool = False) -> None:
    """Write the table rendered from ``result`` into the docs page; with ``check``, only say whether the
    page holds it already (exit 1 when stale)."""
    text = README.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{README} has no {BEGIN} ... {END} block")
    body = render(result)
    block = re.escape(BEGIN) + r".*?" + re.escape(END)
    new = re.sub(block, lambda m: f"{BEGIN}\n{body}{END}", text, flags=re.S)
    if check:
        if new != text:
            raise SystemExit(
                f"{README}: the Ped2 table is stale; regenerate it with python bench/ped2.py --readme"
            )
        print(f"the Ped2 table in {README} is the one {OUT.name} renders")
        return
    README.write_text(new)
    print(f"updated the Ped2 table in {README}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "ped2"))
    p.add_argument("--runs", default="runs/ped2", help="folder of the training runs (resumable)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--preset", default="ped2")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--sigma", type=float, default=3.0, help="temporal smoothing of the smoothed rows")
    p.add_argument("--json", default=str(OUT))
    p.add_argument("--readme", action="store_true", help="only regenerate the README table from --json")
    p.add_argument("--check", action="store_true", help="with --readme: exit 1 if the table is stale")
    a = p.parse_args()
    if a.readme:
        update_readme(json.loads(Path(a.json).read_text()), check=a.check)
        return

    for seed in a.seeds:
        done_seed = run_seed(a, seed)
        # seeds may run in parallel processes (one per core): merge with what the file holds right now
        previous = json.loads(Path(a.json).read_text()) if Path(a.json).exists() else {}
        per_seed = {s["seed"]: s for s in previous.get("per_seed", [])}
        per_seed[seed] = done_seed
        seeds = sorted(per_seed)
        done = [per_seed[s] for s in seeds]
        cfg = preset(a.preset).override(a.set)
        proto = done[0]["protocol"]
        result = {
            "bench": {
                "command": " ".join(
                    ["python bench/ped2.py --data DATA", *(f"--set {o}" for o in a.set)]
                    + ["--seeds", *map(str, seeds)]
                ),
                "preset": a.preset,
                "overrides": a.set,
                "seeds_done": seeds,
                "resolution": list(cfg.data.size),
                "max_steps": cfg.train.max_steps,
                "smoothing_sigma": a.sigma,
                "test_videos": proto["test_videos"],
                "scored_frames": proto["scored_frames"],
                "frames_dropped": proto["frames_dropped_per_video"],
                "train_minutes_stgan": [s["train_seconds"]["stgan"] / 60 for s in done],
                "train_minutes_ffp": [s["train_seconds"]["ffp"] / 60 for s in done],
                "hardware": {
                    "cpu": cpu_model(),
                    "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(),
                    "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                    "machine": platform.platform(),
                    "torch": torch.__version__,
                },
            },
            "summary": summarise(done),
            "per_seed": done,
        }
        atomic_write_json(a.json, result)
        print(render(result, published=False))  # the run's own numbers; --readme adds Ped2's published rows
    print(f"wrote {a.json}")


if __name__ == "__main__":
    try:
        main()
    except StvadError as e:
        raise SystemExit(f"ped2.py: error: {e}") from None
