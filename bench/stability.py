"""The paper's second claim, training stability: each stabiliser switched off in turn, three seeds each.

    python bench/stability.py --data runs/bench-demo/data --runs RUNS          # all 15 runs, then the table
    python bench/stability.py --data DATA --runs RUNS &  python bench/stability.py --data DATA --runs RUNS
    python bench/stability.py --runs RUNS --table                              # table of what has finished

On the synthetic set (``--data``, a ``stvad synth`` folder; the demo's seed-0 set by default), the ``cpu``
preset (the default detector) trains with every stabiliser, then without each of the paper's four: TTUR
(D's learning rate set to G's), self-attention (in G and D), spectral normalisation (D), CutMix
consistency (its consistency and augmentation losses), for training seeds 0, 1 and 2 on the same data.
Per run it records whether training diverged (a non-finite loss stops it; a validation PSNR more than 3 dB
below the best one before it counts as a collapse), G's best validation PSNR over the copy-last floor on
held-out normal clips, D's AUROCs on held-out real frames against predictions at every validation (its
health over training), the fraction of D's logged steps whose loss sat within 0.05 of 4 ln 2 (chance), and
the test set's micro AUROC (per-video min-max) of `full` and `only-stn`. Test labels only measure.

Runs are resumable and can be shared among several processes on the same --runs folder (a run is claimed
by a lock on a file, which a killed process releases; start one process per free core, each with
OMP_NUM_THREADS=1). The JSON (bench/results/stability.json) and the table are rebuilt from the finished
runs each time.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from stvad._io import atomic_write_json, claim_lock
from stvad.checkpoint import check_reusable, validation_rows
from stvad.config import preset
from stvad.errors import StvadError

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results" / "stability.json"
ABLATIONS = {
    "all stabilisers": [],
    "no TTUR": ["train.lr_d=LR_G"],
    "no self-attention": ["model.g_attention=false", "model.d_attention=false"],
    "no spectral norm": ["model.d_spectral_norm=false"],
    "no CutMix consistency": ["train.cutmix=false", "train.cutmix_aug=false"],
}
SEEDS = (0, 1, 2)
CHANCE = 4 * math.log(2)
COLLAPSE_DB = 3.0


def slug(name: str) -> str:
    return name.replace(" ", "-")


def overrides(name: str, seed: int, steps: int | None) -> list[str]:
    lr_g = preset("cpu").train.lr_g
    sets = [s.replace("LR_G", str(lr_g)) for s in ABLATIONS[name]] + [f"train.seed={seed}"]
    return sets + ([f"train.max_steps={steps}"] if steps else [])


def summarise_run(run: Path, diverged: str | None) -> dict:
    rows = validation_rows(run)
    out: dict = {"diverged": diverged, "validations": rows}
    if rows:
        best, collapse = -math.inf, None
        for r in rows:
            if r["val_psnr"] < best - COLLAPSE_DB and collapse is None:
                collapse = int(r["step"])
            best = max(best, r["val_psnr"])
        top = max(rows, key=lambda r: r["val_psnr"])
        out["collapse_step"] = collapse
        out["best_val_psnr"] = top["val_psnr"]
        out["best_gain_over_copy_last_db"] = top["val_psnr"] - top["val_psnr_copy_last"]
        out["final_d_auc"] = rows[-1].get("val_d_auc")
        out["final_d_pixel_auc"] = rows[-1].get("val_d_pixel_auc")
    with open(run / "metrics.csv", newline="") as f:
        logged = [r for r in csv.DictReader(f) if r.get("loss_d")]
    # D's four real/fake terms (d_gan, logged by newer versions) are at chance at 4 ln 2 whatever CutMix
    # adds; in runs without that column loss_d is used and a step with a CutMix batch never counts as chance
    key = "d_gan" if logged and logged[0].get("d_gan") not in (None, "") else "loss_d"
    losses = [float(r[key]) for r in logged if r.get(key)]
    out["d_loss_column"] = key
    out["loss_d_at_chance_fraction"] = sum(abs(v - CHANCE) < 0.05 for v in losses) / max(len(losses), 1)
    return out


def do_run(data: Path, runs: Path, name: str, seed: int, steps: int | None) -> None:
    from stvad.evaluate import evaluate
    from stvad.train import train

    run = runs / f"{slug(name)}-s{seed}"
    result, last = run / "stability.json", run / "checkpoints" / "last.ckpt"
    cfg = preset("cpu").override(overrides(name, seed, steps))
    if (run / "config.json").exists():  # a run of an older preset is neither reused nor resumed
        check_reusable(run, cfg)
    if result.exists():
        return
    runs.mkdir(parents=True, exist_ok=True)
    lock = claim_lock(runs / f"{slug(name)}-s{seed}.lock")
    if lock is None:
        return  # another process has it
    try:
        if result.exists():
            return  # finished by another process since the check above
        if run.exists() and not last.exists():
            shutil.rmtree(run)  # stopped before its first checkpoint: nothing to resume, start it again
        t0, diverged = time.monotonic(), None
        try:
            train(data, run, cfg, resume=last.exists())
        except StvadError as e:
            if "diverged" not in str(e):
                raise
            diverged = str(e)
        out = summarise_run(run, diverged)
        out.update(
            ablation=name, seed=seed, overrides=overrides(name, seed, steps), train_s=time.monotonic() - t0
        )
        if diverged is None:
            res = evaluate(run, data, progress=False)["results"]
            out["test_auroc_micro"] = {k: res[k]["auroc_micro"] for k in ("full", "only-stn", "copy-last")}
        atomic_write_json(result, out)
    finally:
        os.close(lock)


def _ms(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    v = [x * scale for x in values if x is not None]
    if not v:
        return "-"
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{statistics.mean(v):.{digits}f} ± {statistics.stdev(v):.{digits}f}"


def table(runs: Path) -> tuple[str, dict]:
    import json

    done: dict[str, list[dict]] = {name: [] for name in ABLATIONS}
    for name in ABLATIONS:
        for seed in SEEDS:
            f = runs / f"{slug(name)}-s{seed}" / "stability.json"
            if f.exists():
                done[name].append(json.loads(f.read_text()))
    lines = [
        "| configuration | seeds done | diverged / collapsed | full AUROC | only-STN AUROC "
        "| G over copy-last, dB | D AUROC global / pixel, last validation | D loss at chance |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, rs in done.items():
        if not rs:
            lines.append(f"| {name} | none yet | | | | | | |")
            continue
        div = sum(r["diverged"] is not None for r in rs)
        col = sum(r.get("collapse_step") is not None for r in rs)
        full = [r["test_auroc_micro"]["full"] for r in rs if "test_auroc_micro" in r]
        stn = [r["test_auroc_micro"]["only-stn"] for r in rs if "test_auroc_micro" in r]
        lines.append(
            f"| {name} | {', '.join(str(r['seed']) for r in rs)} | {div} / {col} | {_ms(full, 100)} | "
            f"{_ms(stn, 100)} | {_ms([r.get('best_gain_over_copy_last_db') for r in rs], digits=2)} | "
            f"{_ms([r.get('final_d_auc') for r in rs], digits=2)} / "
            f"{_ms([r.get('final_d_pixel_auc') for r in rs], digits=2)} | "
            f"{_ms([r['loss_d_at_chance_fraction'] for r in rs], 100, 0)}% |"
        )
    return "\n".join(lines), done


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT / "runs" / "bench-demo" / "data"))
    p.add_argument("--runs", default=str(ROOT / "runs" / "stability"))
    p.add_argument("--steps", type=int, default=None, help="train.max_steps (default: the cpu preset's)")
    p.add_argument("--only", nargs="+", choices=list(ABLATIONS), default=None)
    p.add_argument("--table", action="store_true", help="only rebuild the table and JSON from finished runs")
    p.add_argument("--json", default=str(OUT))
    a = p.parse_args()
    runs = Path(a.runs)
    if not a.table:
        for seed in SEEDS:  # seed-major: every configuration gets its first seed before any gets a second
            for name in a.only or ABLATIONS:
                do_run(Path(a.data), runs, name, seed, a.steps)
    md, done = table(runs)
    atomic_write_json(
        a.json,
        {
            "command": " ".join(["python bench/stability.py", *sys.argv[1:]]),
            "data": a.data,
            "preset": "cpu",
            "steps": a.steps or preset("cpu").train.max_steps,
            "ablations": ABLATIONS,
            "runs": done,
            "table": md,
        },
    )
    print(md)


if __name__ == "__main__":
    main()
