"""Check: does the flow model of motion_prior.py see a turned box (``rotated_windows``) at all?

    python experiments/flow_box_check.py RUN DATA [--clips 6]

On the run's first held-out clips, for every turned window: the mean |flow| (DIS medium, frames x2) over
the box with and without the turn, the flow model's -log p summed over the box, and the frame score (worst
1/8 window), with the share of windows whose frame score the turn raises. Prints one line.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from stvad.data.layouts import open_dataset
from stvad.data.pseudo import PseudoSpec, moving_side, rotated_windows
from stvad.data.windows import split_train_val
from stvad.engine import Scorer
from stvad.motion import Flow, FlowPrior, frame_score


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("data")
    ap.add_argument("--clips", type=int, default=6)
    a = ap.parse_args(argv)
    cv2.setNumThreads(1)
    scorer = Scorer.from_run(a.run)
    cfg = scorer.cfg
    train, val = split_train_val(open_dataset(a.data).train, cfg.data.val_fraction, T=cfg.data.T)
    clips = [np.stack(list(scorer.frames(*c))) for c in train]
    side = moving_side(clips)
    spec = PseudoSpec(box=(0.75 * side, 1.25 * side))
    flow, prior = Flow(2), FlowPrior(tuple(2 * s for s in cfg.data.size))
    for c in clips:
        for i in range(1, len(c)):
            prior.fit(flow(c[i - 1], c[i]))
    prior.finish()
    rows = []
    for ci, (src, start, stop) in enumerate(val[: a.clips]):
        fr = np.stack(list(scorer.frames(src, start, stop)))
        for t, past, turned_past, turned in rotated_windows(fr, cfg.data.T, spec, clip_seed=ci):
            box = (turned != fr[t]).any(-1) | (turned_past != past).any(axis=(0, 3))
            box = cv2.resize(box.astype(np.uint8), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST) > 0
            row = []
            for f in (flow(past[-1], fr[t]), flow(turned_past[-1], turned)):
                terms = prior.terms(f).astype(np.float32)
                speed = np.hypot(f[..., 0], f[..., 1])[box].mean()
                row += [speed, terms[box].sum(), frame_score(terms, 0.125)]
            rows.append(row)
    r = np.asarray(rows)
    m = r.mean(0)
    print(
        f"{len(r)} turned windows; mean |flow| in the box {m[0]:.2f} -> {m[3]:.2f} px (x2, moving from "
        f"{prior.edges[0]:.1f}); -log p over the box {m[1]:.1f} -> {m[4]:.1f}; frame score {m[2]:.1f} -> "
        f"{m[5]:.1f}, raised in {100 * (r[:, 5] > r[:, 2]).mean():.0f}% of windows"
    )


if __name__ == "__main__":
    main()
