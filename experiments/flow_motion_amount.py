"""Probe: does the flow score measure how things move, or only how much moves where the prior saw little?

    python experiments/flow_motion_amount.py RUN DATA [--json experiments/results/NAME.json]

For a run with a motion model (RUN/motion.json) and a benchmark's test videos: the test AUROC (per-video
min-max, micro) of the flow score and of the count of pixels whose flow is at least 1/64 of the side (the
third magnitude edge), their Spearman correlation over all scored frames, and how many of the prior's grid
cells saw fewer than 100 moving pixels in training. Written after partial Avenue's flow score came out
below chance (47.3) with the f2+flow default (docs/discriminator.md); it reads test labels, to diagnose,
not to choose.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from scipy.stats import spearmanr

from stvad._io import atomic_write_json
from stvad.checkpoint import load_run
from stvad.data.layouts import open_dataset
from stvad.metrics import auroc_micro
from stvad.motion import read_motion
from stvad.scoring import postprocess


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("data")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    cv2.setNumThreads(1)
    motion, cfg = read_motion(a.run), load_run(a.run).config
    if motion is None:
        sys.exit(f"{a.run}: no motion model (stvad fit-motion RUN)")
    per_cell = (motion.prior.counts - 1).sum(-1)  # the counts start at one in every bin
    scores, moving, labels = [], [], []
    for v in open_dataset(a.data).test:
        fr = list(v.source.frames(cfg.data.size, cfg.data.channels))
        s, m = [], []
        for i in range(cfg.data.T, len(fr)):
            fl = motion.flow(fr[i - 1], fr[i])
            m.append(float((np.hypot(fl[..., 0], fl[..., 1]) >= motion.prior.edges[2]).sum()))
            s.append(motion.score(fr[i - 1], fr[i])[0])
        scores.append(np.asarray(s))
        moving.append(np.asarray(m))
        labels.append(np.asarray(v.labels)[cfg.data.T :].astype(np.uint8))
    norm = "per-video-minmax"
    args = sys.argv[1:] if argv is None else argv
    res = {
        "command": "python experiments/flow_motion_amount.py " + " ".join(args),
        "flow_auroc": auroc_micro(postprocess(scores, norm), labels),
        "moving_pixels_auroc": auroc_micro(postprocess(moving, norm), labels),
        "spearman_flow_moving": float(spearmanr(np.concatenate(scores), np.concatenate(moving))[0]),
        "cells_under_100_moving_pixels": float((per_cell < 100).mean()),
        "note": "test labels read to diagnose the flow score, not to choose anything",
    }
    for k, v in res.items():
        print(f"{k:32} {v:.3f}" if isinstance(v, float) else f"{k:32} {v}")
    if a.json:
        atomic_write_json(Path(a.json), res)


if __name__ == "__main__":
    main()
