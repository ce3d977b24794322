"""How hard is the synthetic benchmark? The two trivial floors of METHOD.md on its test set.

    .venv/bin/python bench/synth_difficulty.py                       # default set, seed 0, plus seeds 1-4
    .venv/bin/python bench/synth_difficulty.py --size small --other-seeds "" --json /tmp/x.json

Generates the set (timed), reads it back through the FFP reader (labels from synth.mat, pixel masks) and
scores every test frame with the copy-last-frame -PSNR floor and the distance to the mean training frame,
at the CPU demo's evaluation setting: frames resized to 64x64 grey (cv2.INTER_AREA), the first T=4 frames
of each video dropped. Frame-level micro AUROC (sklearn), pooled raw and with per-video min-max
normalisation, over all test frames and over the normal + motion-only anomalous frames (frames whose
visible anomalies are all running or jumping), and per anomaly type (normal frames + that type's).
It also reports what a predictor has to work with: the median image speed of normal walkers and of each
moving anomaly, and the mean anomaly mask area at 64x64. The same floors on other seeds show the spread.
Writes bench/results/synth_difficulty.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from stvad.data.layouts import open_dataset
from stvad.data.synth import MOTION_ONLY, generate
from stvad.floors import copy_last_scores, mean_frame, mean_frame_scores

SIZE, T = (64, 64), 4
RESULTS = Path(__file__).resolve().parent / "results" / "synth_difficulty.json"


def minmax(s: np.ndarray) -> np.ndarray:
    span = s.max() - s.min()
    return (s - s.min()) / span if span > 0 else np.zeros_like(s)


def auroc(labels: np.ndarray, scores: np.ndarray, keep: np.ndarray) -> float | None:
    y = labels[keep]
    return round(float(roc_auc_score(y, scores[keep])), 4) if 0 < y.sum() < len(y) else None


def frame_kinds(meta: dict, video: str, n: int) -> list[set[str]]:
    """For each frame of a test video, the anomaly types visible in it (from events.json)."""
    kinds: list[set[str]] = [set() for _ in range(n)]
    for e in meta["events"]:
        if e["video"] == video and e["frames"] > 0:
            for t in range(e["start"], e["end"] + 1):
                kinds[t].add(e["type"])
    return kinds


def floors(root: Path) -> dict:
    """Floor AUROCs and what the anomalies look like at 64x64, for the synthetic set at ``root``."""
    meta = json.loads((root / "events.json").read_text())
    ds = open_dataset(root)
    mean = mean_frame(ds.train, SIZE, 1)
    scores: dict[str, list[np.ndarray]] = {"copy_last": [], "mean_frame": []}
    labels, kinds, mask_area = [], [], {}
    for v in ds.test:
        scores["copy_last"].append(copy_last_scores(v, T, SIZE, 1))
        scores["mean_frame"].append(mean_frame_scores(v, mean, T, SIZE, 1))
        labels.append(v.labels[T:])
        k = frame_kinds(meta, v.name, len(v.labels))
        kinds += k[T:]
        for t in range(T, len(v.labels)):
            for kind in k[t]:
                # the masked fraction of the frame is the same after resizing to 64x64
                mask_area.setdefault(kind, []).append(float(v.masks[t].mean()) * SIZE[0] * SIZE[1])
    y = np.concatenate(labels)
    normal = y == 0
    motion_only = np.array([bool(k) and k <= MOTION_ONLY for k in kinds])
    types = sorted({e["type"] for e in meta["events"]})
    out: dict = {
        "test_frames_scored": int(len(y)),
        "anomalous_frames": int(y.sum()),
        "motion_only_share_of_anomalous": round(float(motion_only.sum() / y.sum()), 3),
        "floors": {},
    }
    for name, per_video in scores.items():
        out["floors"][name] = {}
        for norm, s in (
            ("raw", np.concatenate(per_video)),
            ("per_video_minmax", np.concatenate([minmax(s) for s in per_video])),
        ):
            out["floors"][name][norm] = {
                "micro_auroc": auroc(y, s, np.ones_like(normal)),
                "motion_only_auroc": auroc(y, s, normal | motion_only),
                "per_type": {t: auroc(y, s, normal | np.array([t in k for k in kinds])) for t in types},
            }
    walk = float(np.median([v["walker_speed_px"] for v in meta["train"] + meta["test"]]))
    speeds = {
        t: float(np.median([e["speed_px"] for e in meta["events"] if e["type"] == t]))
        for t in types
        if t in ("run", "bicycle", "cart")
    }
    out["motion"] = {
        "note": "median image speed of the ground point in native pixels per frame, and its ratio to walkers",
        "native_size": [meta["height"], meta["width"]],
        "walker_speed_px": round(walk, 2),
        "event_speed_px": {t: round(v, 2) for t, v in speeds.items()},
        "event_speed_ratio": {t: round(v / walk, 2) for t, v in speeds.items()},
    }
    out["mask_area_px_at_64x64_mean"] = {t: round(float(np.mean(v)), 1) for t, v in sorted(mask_area.items())}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--other-seeds", default="1,2,3,4", help="comma-separated; the floors' spread over seeds")
    ap.add_argument("--json", default=str(RESULTS))
    a = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        root = generate(Path(tmp) / "synth", seed=a.seed, size=a.size)
        gen_s = time.perf_counter() - t0
        result = {
            "command": " ".join(
                ["python bench/synth_difficulty.py", *(sys.argv[1:] if argv is None else argv)]
            ),
            "setting": {"size": a.size, "seed": a.seed, "eval_frames": "64x64 grey, cv2.INTER_AREA", "T": T},
            "generation_seconds": round(gen_s, 2),
            **floors(root),
        }
        spread = {}
        for seed in [int(s) for s in a.other_seeds.split(",") if s.strip()]:
            other = floors(generate(Path(tmp) / f"synth{seed}", seed=seed, size=a.size))
            spread[str(seed)] = {
                f"{name}_{norm}": [r["micro_auroc"], r["motion_only_auroc"]]
                for name, by_norm in other["floors"].items()
                for norm, r in by_norm.items()
            }
        if spread:
            result["other_seeds"] = {"columns": ["micro_auroc", "motion_only_auroc"], **spread}
    out = Path(a.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
