"""Probe: does the flow prior of stvad.motion overfit its training clips? Held-out likelihood with sharing.

    python experiments/flow_share.py DATA --preset ped2 [--json experiments/results/flow_share_NAME.json]

Written to diagnose partial Avenue's flow score, below chance there (docs/discriminator.md). The package's
prior is a histogram per grid cell, fitted on the training clips (the held-out tails of the preset's
split left out). Here the same counts are shared with other cells, as a Dirichlet prior of strength k:
p(bin | cell) = (n + 1 + k q) / (N + 48 + k), q the histogram of all cells (``cell+kg``) or half of it
and half the cell's 3 x 3 neighbourhood's (``cell+knb``); ``global`` is one histogram for every cell.
For each: the mean -log p per moving pixel of the held-out normal clips' flows (lower: the prior
generalises to normal motion it has not seen), then the flow score's test AUROC alone (per-video min-max
micro, all videos and the videos with both classes only, and the macro mean), read to diagnose.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from probe_data import preset_split, set_parser  # experiments/ is on sys.path when run as a script
from stvad._io import atomic_write_json
from stvad.metrics import auroc_micro
from stvad.motion import MotionModel, frame_score
from stvad.scoring import postprocess


def main(argv=None) -> None:
    ap = set_parser(__doc__, "ped2")
    a = ap.parse_args(argv)
    cfg, ds, train, val, clip = preset_split(a.data, a.preset)
    size, T, ch = tuple(cfg.data.size), cfg.data.T, cfg.data.channels

    mm = MotionModel(size).fit(clip(c) for c in train)
    n = mm.prior.counts - 1.0
    held = [[mm.flow(f[i - 1], f[i]) for i in range(1, len(f))] for f in map(clip, val)]
    test, labels = [], []
    for v in ds.test:
        f = list(v.source.frames(size, ch))
        test.append([mm.flow(f[i - 1], f[i]) for i in range(T, len(f))])
        labels.append(np.asarray(v.labels)[T:].astype(np.uint8))
    mixed = [i for i, y in enumerate(labels) if 0 < y.sum() < len(y)]
    total = n.sum((0, 1))
    g = (total + 1) / (total + 1).sum()
    box = np.ones((3, 3))
    nb = np.stack(
        [cv2.filter2D(n[..., b], -1, box, borderType=cv2.BORDER_CONSTANT) for b in range(n.shape[-1])], -1
    )
    nb = nb / nb.sum(-1, keepdims=True).clip(1)
    priors = {"cell": n + 1}
    priors |= {f"cell+{k}g": n + 1 + k * g for k in (10, 100, 1000, 10000)}
    priors |= {f"cell+{k}nb": n + 1 + k * (0.5 * nb + 0.5 * g) for k in (100, 1000)}
    priors["global"] = np.broadcast_to(total + 1, n.shape).copy()
    out = {}
    for name, counts in priors.items():
        mm.prior.counts = counts
        mm.prior.finish()
        nll = moving = 0.0
        for flows in held:
            for fl in flows:
                t = mm.prior.terms(fl)
                nll, moving = nll + float(t.sum()), moving + float((t > 0).sum())
        scores = [np.array([frame_score(mm.prior.terms(fl), mm.patch) for fl in flows]) for flows in test]
        norm = postprocess(scores, "per-video-minmax")
        row = {
            "heldout_nll_per_moving_pixel": nll / max(moving, 1.0),
            "test_micro": auroc_micro(norm, labels),
            "test_micro_two_class_videos": auroc_micro([norm[i] for i in mixed], [labels[i] for i in mixed]),
            "test_macro": float(np.mean([auroc_micro([scores[i]], [labels[i]]) for i in mixed])),
        }
        out[name] = row
        print(f"{name:12} " + "  ".join(f"{k} {v:.4f}" for k, v in row.items()), flush=True)
    if a.json:
        args = sys.argv[1:] if argv is None else argv
        atomic_write_json(
            Path(a.json),
            {
                "command": "python experiments/flow_share.py " + " ".join(args),
                "test_videos": len(labels),
                "two_class_videos": len(mixed),
                "note": "held-out likelihood is label-free; test AUROCs read to diagnose, not to choose",
                "priors": out,
            },
        )


if __name__ == "__main__":
    main()
