"""``stvad demo``: the main job end to end on the built-in synthetic benchmark.

Generates the synthetic set, trains the ``cpu`` preset, fits the threshold on held-out normal clips,
evaluates every test frame and writes the HTML report. Re-running continues where it stopped: existing
data is reused and an interrupted training resumes from its last checkpoint.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from stvad.config import preset


def run_demo(
    out: str | os.PathLike = "runs/demo",
    preset_name: str = "cpu",
    seed: int = 0,
    size: str = "default",
    overrides: Sequence[str] = (),
) -> dict:
    from stvad.calibration import calibrate
    from stvad.data.synth import generate
    from stvad.evaluate import evaluate
    from stvad.train import train

    out = Path(out)
    data, run = out / "data", out / "run"
    t0 = time.perf_counter()
    stamps = {}

    if not (data / "synth.mat").exists():
        print(f"[1/4] generating the synthetic benchmark in {data}")
        generate(data, seed=seed, size=size)
    else:
        print(f"[1/4] reusing the synthetic benchmark in {data}")
    stamps["data_s"] = time.perf_counter() - t0

    cfg = preset(preset_name).override(list(overrides))
    cfg.train.seed = seed
    done = (run / "checkpoints" / "best.ckpt").exists() and (run / "DONE").exists()
    if done:
        print(f"[2/4] reusing the trained run in {run}")
    else:
        resume = (run / "checkpoints" / "last.ckpt").exists()
        print(f"[2/4] training preset '{preset_name}' into {run}" + (" (resuming)" if resume else ""))
        train(data, run, cfg, resume=resume)
        (run / "DONE").write_text("")
    stamps["train_s"] = time.perf_counter() - t0 - stamps["data_s"]

    print("[3/4] fitting the alarm threshold on held-out normal clips")
    cal = calibrate(run)
    q, n = cal["quantile"], cal["frames"]
    print(f"      threshold {cal['threshold']:.4g}: the {q:.0%} quantile of {n} normal frames")

    print("[4/4] scoring the test videos")
    res = evaluate(run, data, json_path=out / "eval.json", report_dir=out / "report")
    total = time.perf_counter() - t0
    print()
    print(res["table"])
    print(f"report: {res['report']}")
    print(f"metrics: {out / 'eval.json'}")
    print(f"total time: {total / 60:.1f} min")
    stamps["eval_s"] = total - stamps["data_s"] - stamps["train_s"]
    res["stages_seconds"] = {k: round(v, 1) for k, v in stamps.items()}
    return res
