"""Probe: objects and their velocity beside the per-pixel motion score, judged by a nearest-neighbour density.

    python experiments/object_motion.py RUN DATA [--json experiments/results/object_motion_NAME.json]
    python experiments/object_motion.py --summary experiments/results/object_motion_*.json

The package's motion score (stvad.motion) judges each pixel's flow against what its grid cell has seen; it
does not know which pixels belong together. Attribute-based detectors (Reiss & Hoshen, "Attribute-based
representations for accurate and interpretable video anomaly detection", 2022) describe each object by a
magnitude-weighted histogram of the flow's orientations inside it and score a frame by its least usual
object: the distance to its nearest training objects. Without a detector (nothing is downloaded), the
objects here are the foreground blobs against the source's median (the still term's foreground: more than
12 grey levels from the background, 3x3 opening, then a 3x3 closing to join a figure's parts), at least
1/2000 of the frame's area.

- **velocity** (8 numbers): per orientation bin (8 of 45 degrees), the sum of the flow's magnitudes of the
  blob's pixels in that bin divided by the blob's pixel count, in fractions of the flow frame's shorter side
  (DIS flow of the package's motion model, the last flow into the frame);
- **velocity+shape** (12): the same, with the blob's bounding-box height and width and its centroid's
  row and column, as fractions of the frame; every feature divided by its deviation over the training
  objects.

A frame's object score is the largest, over its blobs, of the mean Euclidean distance to the 3 nearest
training objects (scikit-learn's ``NearestNeighbors``); 0 without a blob. Candidates, each standardised on
held-out normal windows like the default's two scores: ``f2|[motion]|vel`` (the larger of the three
standardised scores) and ``f2|[motion]|velshape``. The default is ``f2|[motion]`` (the package's
f2|[flow+sway8+still12c], recomputed here on the same windows).

Label-free choice, as "The larger of f2 and the motion score" (docs/discriminator.md): on the run's
held-out normal clips, windows of 9 frames against the same windows with a gliding copy of their largest
figure (fast, across, back, oscillate, stand; ``stvad.data.pseudo.glide_windows``) at the model size. The
rule is in docs/discriminator.md ("Objects and their velocity"), fixed before any of its numbers. Test
AUROCs are read after.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors

from glide_rule import HELD, five, glide_aurocs, passes, spread_background, test_aurocs, worst
from stvad._io import atomic_write_json
from stvad.data.layouts import open_dataset
from stvad.data.pseudo import PseudoSpec, glide_windows, moving_side
from stvad.data.pseudo import background as scene
from stvad.data.synth_events import read_events
from stvad.data.windows import split_train_val
from stvad.engine import Scorer
from stvad.motion import N_DIR, SWAY, MotionModel, _grey, background

STILL = 12.0  # the default's still term, and the blobs' foreground threshold
K_NEAR = 3
CONFIGS = {
    "f2|[motion]": ("f2", "motion"),
    "f2|[motion]|vel": ("f2", "motion", "vel"),
    "f2|[motion]|velshape": ("f2", "motion", "velshape"),
    "vel": ("vel",),
    "velshape": ("velshape",),
    "motion": ("motion",),
}
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
_SQUARE = np.ones((3, 3), np.uint8)


def blobs(frame: np.ndarray, bg: np.ndarray, flow: np.ndarray, up: int) -> np.ndarray:
    """The frame's foreground blobs -> (n, 12) features: 8 velocity numbers, then box height and width,
    centroid row and column (fractions of the frame)."""
    h, w = bg.shape
    fg = (np.abs(_grey(frame) - bg) > STILL).astype(np.uint8)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, _CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, _SQUARE)
    n, lab, stats, cent = cv2.connectedComponentsWithStats(fg, connectivity=8)
    lab = lab.repeat(up, 0).repeat(up, 1)
    mag, ang = cv2.cartToPolar(np.ascontiguousarray(flow[..., 0]), np.ascontiguousarray(flow[..., 1]))
    d = (ang * np.float32(N_DIR / (2 * np.pi))).astype(np.int32) % N_DIR
    side = min(h, w) * up
    out = []
    for i in range(1, n):
        if stats[i, cv2.CC_STAT_AREA] < max(4, h * w / 2000):
            continue
        m = lab == i
        vel = np.bincount(d[m], weights=mag[m], minlength=N_DIR) / m.sum() / side
        box = [
            stats[i, cv2.CC_STAT_HEIGHT] / h,
            stats[i, cv2.CC_STAT_WIDTH] / w,
            cent[i, 1] / h,
            cent[i, 0] / w,
        ]
        out.append(np.concatenate([vel, box]))
    return np.asarray(out, np.float64).reshape(-1, N_DIR + 4)


class Density:
    """Mean distance to the K_NEAR nearest training objects, over the features ``cols``, each divided by
    its training deviation when ``scaled``."""

    def __init__(self, train: np.ndarray, cols: slice, scaled: bool):
        x = train[:, cols]
        self.cols, self.sd = cols, (x.std(0) + 1e-9 if scaled else np.ones(x.shape[1]))
        self.nn = NearestNeighbors(n_neighbors=K_NEAR).fit(x / self.sd)

    def frame(self, objs: np.ndarray) -> float:
        if not len(objs):
            return 0.0
        dist, _ = self.nn.kneighbors(objs[:, self.cols] / self.sd)
        return float(dist.mean(1).max())


def summary(files: list[str]) -> None:
    """Per set: the mean of the five glides (worst glide's difference from the default) / test AUROC."""
    res = {Path(f).stem.removeprefix("object_motion_"): json.loads(Path(f).read_text()) for f in files}
    print("| configuration | " + " | ".join(res) + " | passes |")
    print("|" + "---|" * (len(res) + 2))
    base = {n: r["configs"]["f2|[motion]"] for n, r in res.items()}
    for c in CONFIGS:
        rows = {n: r["configs"][c] for n, r in res.items()}
        fell = {n: worst(rows[n], base[n]) for n in res}
        n_pass = sum(passes(rows[n], base[n]) for n in res)
        cells = [
            f"{100 * five(rows[n]):.2f} ({100 * fell[n]:+.1f}) / {100 * rows[n]['test']['all']:.1f}"
            for n in res
        ]
        print(f"| `{c}` | " + " | ".join(cells) + f" | {'—' if c == 'f2|[motion]' else n_pass} |")


def main(argv=None) -> None:
    if argv is None and sys.argv[1:2] == ["--summary"]:
        return summary(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("data")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    t0 = time.time()
    scorer = Scorer.from_run(a.run, variants=("f2",))
    cfg = scorer.cfg
    size, T, norm, K = cfg.data.size, cfg.data.T, cfg.score.normalisation, SWAY
    ds = open_dataset(a.data)
    train, val = split_train_val(ds.train, cfg.data.val_fraction, T=T)

    def frames(src, start=0, stop=None):
        return np.stack(list(scorer.frames(src, start, stop)))

    motion = MotionModel(size, still=STILL).fit(frames(*c) for c in train)
    up = motion.up
    objs = []
    for c in train:
        fr = frames(*c)
        bg = background(fr)  # each training clip against its own median, as the still term is fitted
        for i in range(1, len(fr)):
            objs.append(blobs(fr[i], bg, motion.flow(fr[i - 1], fr[i]), up))
    objs = np.concatenate(objs)
    dens = {"vel": Density(objs, slice(0, N_DIR), False), "velshape": Density(objs, slice(None), True)}
    print(f"models fitted at {time.time() - t0:.0f} s ({len(objs)} training objects)", file=sys.stderr)

    def window_scores(w: np.ndarray, bg: np.ndarray) -> dict[str, float]:
        flows = [motion.flow(w[i - 1], w[i]) for i in range(1, len(w))]
        ob = blobs(w[-1], bg, flows[-1], up)
        return {
            "motion": motion.score_flows(flows, list(w), bg)[0],
            **{k: d.frame(ob) for k, d in dens.items()},
        }

    side = moving_side([frames(*c) for c in train])
    spec = PseudoSpec(speeds=(2, 3), box=(0.75 * side, 1.25 * side))
    held: dict = {"normal": {}, **{g: {} for g in HELD}}
    for ci, (src, start, stop) in enumerate(val):
        fr, whole = frames(src, start, stop), frames(src)
        bg = spread_background(whole)
        groups = {"normal": [fr[t - K : t + 1] for t in range(K, len(fr))]}
        for g in HELD:
            groups[g] = [
                np.concatenate([w[2], w[3][None]])
                for w in glide_windows(fr, K, spec, ci, scene(whole), kind=g)
            ]
        for g, wins in groups.items():
            if not wins:
                continue
            wins = np.stack(wins)
            rec = {"f2": scorer.score_many(wins[:, -T - 1 : -1], wins[:, -1], 32)[0]["f2"]}
            rows = [window_scores(w, bg) for w in wins]
            rec |= {k: np.array([r[k] for r in rows]) for k in rows[0]}
            held[g][ci] = rec
    print(f"held-out scored at {time.time() - t0:.0f} s", file=sys.stderr)

    scales = {}
    for key in ("f2", "motion", "vel", "velshape"):
        x = np.concatenate([held["normal"][c][key] for c in held["normal"]])
        scales[key] = (float(x.mean()), float(x.std() + 1e-12))

    def combine(rec, name):
        return functools.reduce(np.maximum, [(rec[k] - scales[k][0]) / scales[k][1] for k in CONFIGS[name]])

    crit = glide_aurocs(held, combine, CONFIGS, norm)

    # test videos, read after the criterion is computed
    recs, labels, index = [], [], []
    for v in ds.test:
        fr = frames(v.source)
        sc = scorer.score_frames(iter(fr), name=v.name)
        bg = spread_background(fr)
        rows = [window_scores(fr[max(0, i - K) : i + 1], bg) for i in sc.index]
        recs.append({"f2": sc.scores["f2"], **{k: np.array([r[k] for r in rows]) for k in rows[0]}})
        labels.append(np.asarray(v.labels)[sc.index])
        index.append(sc.index)
    print(f"test scored at {time.time() - t0:.0f} s", file=sys.stderr)
    tests = test_aurocs(CONFIGS, recs, labels, index, ds.test, read_events(a.data), norm, combine)
    out = {}
    for name, test in tests.items():
        out[name] = {"glides": crit[name], "five": five({"glides": crit[name]}), "test": test}
        print(
            f"{name:22} five {100 * out[name]['five']:6.2f}  "
            + " ".join(f"{g} {100 * crit[name][g]:.1f}" for g in HELD)
            + "  | test "
            + " ".join(f"{k} {100 * x:.1f}" for k, x in test.items())
        )
    if a.json:
        atomic_write_json(
            Path(a.json),
            {
                "command": "python experiments/object_motion.py "
                + " ".join(sys.argv[1:] if argv is None else argv),
                "run": a.run,
                "data": a.data,
                "step": scorer.engine.step,
                "training_objects": len(objs),
                "pseudo": spec.to_dict(),
                "note": "the mean of the five held-out glides chooses; test AUROCs read after",
                "configs": out,
                "standardisers": scales,
                "seconds": time.time() - t0,
            },
        )


if __name__ == "__main__":
    main()
