"""Where a frame-prediction score cannot look: anomalous frames whose anomaly does not move.

    .venv/bin/python experiments/static_anomalies.py RUN DATA [--json FILE] [--thresholds 0.05 0.2]

A frame-prediction error is small wherever the next frame equals the last one, and the paper's map
(equations 4-5) multiplies that error, so an anomaly that stands still (a person lying after a fall, a bag
left behind, a jumper at the top of a hop) adds to the score only what static background adds. This script
measures how much of a run's frame-level AUROC that costs, on any test set with pixel masks (the synthetic
set, Ped2, Avenue).

Every test frame after the first T is scored once (`Scorer`, all variants plus copy-last), per-video
min-max normalised and pooled, as `stvad eval` does. Each anomalous frame t is called *static* when its
anomaly mask barely changed since frame t-1: |M_t xor M_t-1| / |M_t or M_t-1| below a threshold (masks at
native resolution). For each variant it reports the micro AUROC over all anomalous frames, over the static
ones and over the moving ones (each against all normal frames), and a ceiling: the micro AUROC if every
moving anomalous frame ranked above every normal frame while the static ones kept their measured AUROC.
Micro AUROC is the frame-weighted mean of those two parts, so the ceiling is exact, not an estimate.
With a synthetic set's events.json the split is also given per anomaly type.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from stvad._io import atomic_write_json
from stvad.data.labels import mask_change
from stvad.data.layouts import Dataset, open_dataset
from stvad.data.synth_events import event_types, read_events
from stvad.engine import COPY_LAST, Scorer
from stvad.errors import StvadError
from stvad.metrics import auroc_micro, auroc_of_part
from stvad.scoring import postprocess

ROWS = ("full", "only-stn", "psnr", COPY_LAST)


def analyse(
    scores: dict[str, np.ndarray],
    labels: np.ndarray,
    change: np.ndarray,
    threshold: float,
    types: np.ndarray | None,
) -> dict:
    anomalous = labels == 1
    static = anomalous & (change < threshold)
    moving = anomalous & ~static
    share = float(static.sum() / anomalous.sum())
    out: dict = {
        "threshold": threshold,
        "static_frames": int(static.sum()),
        "moving_frames": int(moving.sum()),
        "static_share": share,
        "variants": {},
    }
    for name, s in scores.items():
        a_static = auroc_of_part(s, labels, static)
        row = {
            "auroc_micro": auroc_micro([s], [labels]),
            "auroc_static": a_static,
            "auroc_moving": auroc_of_part(s, labels, moving),
            # every moving frame ranked first, static ones as measured
            "ceiling_moving_perfect": (1 - share) + share * (a_static if a_static is not None else 0.0),
        }
        if types is not None:
            row["by_type"] = {
                t: {
                    "frames": int((types == t).sum()),
                    "static_frames": int(((types == t) & static).sum()),
                    "auroc_static": auroc_of_part(s, labels, static & (types == t)),
                    "auroc_moving": auroc_of_part(s, labels, moving & (types == t)),
                }
                for t in sorted(set(types[anomalous]) - {""})
            }
        out["variants"][name] = row
    return out


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def study(scorer: Scorer, ds: Dataset, thresholds: list[float]) -> dict:
    """Score every test video of ``ds`` once and split its anomalous frames at each threshold."""
    missing = [v.name for v in ds.test if v.masks is None or v.labels is None]
    if missing:
        raise StvadError(f"test videos without pixel masks or labels: {', '.join(missing)}", ds.root)
    events = read_events(ds.root)
    per_video = [scorer.score_source(v.source) for v in ds.test]
    labels = np.concatenate(
        [np.asarray(v.labels)[s.index].astype(np.uint8) for v, s in zip(ds.test, per_video)]
    )
    change = np.concatenate(
        [mask_change(v.masks, s.index, np.asarray(v.labels)[s.index]) for v, s in zip(ds.test, per_video)]
    )
    types = (
        np.concatenate([event_types(events, v.name, s.index) for v, s in zip(ds.test, per_video)])
        if events is not None
        else None
    )
    norm = scorer.cfg.score.normalisation
    scores = {k: np.concatenate(postprocess([s.scores[k] for s in per_video], norm)) for k in ROWS}
    return {
        "checkpoint": str(scorer.run.meta.get("checkpoint", "")),
        "normalisation": norm,
        "scored_frames": int(len(labels)),
        "anomalous_frames": int(labels.sum()),
        "splits": [analyse(scores, labels, change, th, types) for th in thresholds],
    }


def print_study(res: dict) -> None:
    for sp in res["splits"]:
        print(
            f"\nstatic = mask changed by less than {sp['threshold']:g} since the previous frame: "
            f"{sp['static_frames']} of {res['anomalous_frames']} anomalous frames "
            f"({100 * sp['static_share']:.0f}%)\n"
        )
        print("| variant | micro AUROC | static frames | moving frames | ceiling (moving perfect) |")
        print("|---|---|---|---|---|")
        for k, r in sp["variants"].items():
            print(
                f"| {k} | {fmt(r['auroc_micro'])} | {fmt(r['auroc_static'])} | {fmt(r['auroc_moving'])} "
                f"| {fmt(r['ceiling_moving_perfect'])} |"
            )
        full = sp["variants"]["full"].get("by_type")
        if full:
            print("\nfull, by type: frames (static), AUROC static / moving")
            for t, r in full.items():
                print(
                    f"  {t:12s} {r['frames']:4d} ({r['static_frames']:3d})  "
                    f"{fmt(r['auroc_static']):>5s} / {fmt(r['auroc_moving']):>5s}"
                )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("data")
    p.add_argument("--json")
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.05, 0.2])
    a = p.parse_args()
    t0 = time.perf_counter()
    try:
        res = study(Scorer.from_run(a.run), open_dataset(a.data), a.thresholds)
    except StvadError as e:
        sys.exit(f"error: {e}")
    res = {
        "command": "python experiments/static_anomalies.py " + " ".join(sys.argv[1:]),
        "run": a.run,
        "data": str(Path(a.data).resolve()),
        **res,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print_study(res)
    if a.json:
        atomic_write_json(a.json, res)
        print(f"\nwrote {a.json}")


if __name__ == "__main__":
    main()
