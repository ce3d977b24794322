"""Probe: which normalisation of the score keeps a calibrated threshold from firing on normal footage?

    python experiments/alarm_normalisation.py RUNS/run RUNS/normal_heldout.avi   # RUNS of footage_alarms

RUN is a run of bench/footage_alarms.py (trained on the first frames of a clip, FOOTAGE the rest of it,
normal and unseen). Each candidate frame score is computed from the full method's per-pixel terms of the
run's held-out tail (the calibration frames) and of FOOTAGE; the threshold is each candidate's 0.99
quantile on the calibration frames. Prints, per candidate, the fraction of FOOTAGE's frames above it and
the ratio of FOOTAGE's 0.99 quantile to the threshold; then how each frame score follows the fraction of
moving pixels (|frame difference| > 10 grey levels), and that fraction in the calibration frames and in
FOOTAGE. Candidates: the frame sum (eq. 4); a causal mean of the last 3 frame scores; the map minus its
frame median; the map divided by its per-pixel calibration mean (plus that mean's spatial mean) or
z-scored per pixel; the worst window of 1/8, 1/4, 1/2 of the frame side, and the last with a causal mean.
bench/footage_alarms.py measures the ones that were kept as candidates against labelled sets.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from stvad.data.sources import open_source
from stvad.engine import Scorer
from stvad.scoring import causal_mean


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("footage")
    a = p.parse_args()
    torch.set_num_threads(1)
    sc = Scorer.from_run(a.run)
    cfg = sc.cfg
    val = sc.heldout_clips()
    cal = np.concatenate([sc.score_frames(sc.frames(s, i, j), keep_maps=True).maps for s, i, j in val])
    cal = cal.astype(np.float32)
    src = open_source(a.footage)
    test = sc.score_source(src, keep_maps=True).maps.astype(np.float32)
    mu, sd = cal.mean(0), cal.std(0)

    def window(m: np.ndarray, frac: float) -> np.ndarray:
        k = max(1, round(frac * min(m.shape[1:])))
        t = torch.from_numpy(m)[:, None]
        return (F.avg_pool2d(t, k, stride=max(1, k // 2)) * k * k).flatten(1).amax(1).numpy()

    candidates = {
        "frame sum": lambda m: m.sum((1, 2)),
        "frame sum, causal mean of 3": lambda m: causal_mean(m.sum((1, 2)), 3),
        "map minus its frame median": lambda m: np.clip(
            m - np.median(m.reshape(len(m), -1), 1)[:, None, None], 0, None
        ).sum((1, 2)),
        "map / per-pixel mean": lambda m: (m / (mu + mu.mean())).sum((1, 2)),
        "map z-scored per pixel": lambda m: (np.clip(m - mu, 0, None) / (sd + sd.mean())).sum((1, 2)),
        "worst window 1/8": lambda m: window(m, 0.125),
        "worst window 1/4": lambda m: window(m, 0.25),
        "worst window 1/2": lambda m: window(m, 0.5),
        "worst window 1/2, causal mean of 3": lambda m: causal_mean(window(m, 0.5), 3),
    }
    frames = np.stack(list(sc.frames(src))).astype(np.float32)[..., 0]
    moving = (np.abs(np.diff(frames, axis=0)) > 10).mean((1, 2))[cfg.data.T - 1 :][: len(test)]
    cal_moving = np.concatenate(
        [
            (
                np.abs(np.diff(np.stack(list(sc.frames(s, i, j))).astype(np.float32)[..., 0], axis=0)) > 10
            ).mean((1, 2))
            for s, i, j in val
        ]
    )
    print(f"{len(cal)} calibration frames, {len(test)} footage frames")
    print(f"{'candidate':36} {'above':>7} {'q99 ratio':>9} {'corr moving':>11}")
    for name, f in candidates.items():
        c, t = f(cal), f(test)
        thr = np.quantile(c, 0.99)
        r = np.corrcoef(t, moving)[0, 1]
        print(f"{name:36} {(t > thr).mean():>7.1%} {np.quantile(t, 0.99) / thr:>9.2f} {r:>11.2f}")
    print(f"moving pixels: calibration {cal_moving.mean():.4f}, footage {moving.mean():.4f}")


if __name__ == "__main__":
    main()
