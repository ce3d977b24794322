"""Probe: motion over a longer past than one flow (back-and-forth "sway"), chosen without test labels.

    python experiments/motion_history.py RUN DATA [--ks 4 8] [--json experiments/results/NAME.json]
    python experiments/motion_history.py --summary experiments/results/motion_history_*.json

The package's flow model (stvad.motion) judges one flow, from the last frame to the target. A jump in
place, a throw, someone waving, go up and come back: each flow looks like a walker's, their sum over a
few frames does not. For each pixel, over the last K flows (same place, not tracked), the sway is half
of the path minus the distance: ``(sum |f_k| - |sum f_k|) / 2``, zero for anything moving straight and
the amplitude of a movement that came back. Its prior is the package's per-cell histogram over the same
magnitude edges, without directions; its score the package's window-1/8 max of ``-log p``.

Scores compared, each standardised by its mean and deviation on the held-out normal windows:
``f2+flow`` (the default: z(f2) + z(flow)), ``f2+flow+sway{K}/{w}`` (+ w z(sway)), ``f2+sway{K}``, and
the motion scores alone.

Label-free choice: on the run's held-out normal clips, windows of K+1 consecutive frames (K the largest
of ``--ks``) against the same windows with a gliding copy of their largest figure through all K+1 frames
(``stvad.data.pseudo.glide_windows`` called with K for T: the criterion v3's three glides, fast, across
and stepping back, over the whole past the sway reads). The GAN scores the last T+1 frames of each. The
criterion is the mean of the three glides' micro AUROCs (per clip min-max). The rule that decides, fixed
before any run was scored (docs/discriminator.md, "Sway: motion that comes back"): the configuration
with the highest mean criterion over the five sets becomes the default candidate if it is above
``f2+flow`` on at least four of them. The test set's AUROCs are read afterwards, to measure.
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

from glide_rule import HELD, five, glide_aurocs, mixed_aurocs, test_aurocs, worst
from glide_rule import passes as passes_five
from stvad._io import atomic_write_json
from stvad.data.layouts import open_dataset
from stvad.data.pseudo import PseudoSpec, background, glide_windows, moving_side
from stvad.data.synth_events import read_events
from stvad.data.windows import split_train_val
from stvad.engine import Scorer
from stvad.motion import GRID, MAG_EDGES, STILL_FRAMES, MotionModel, SwayPrior, frame_score, sway
from stvad.motion import StillPrior as PackageStillPrior

GLIDES = ("fast", "across", "back")  # the criterion's; glide_rule.HELD adds the oscillating and standing
WEIGHTS = (0.5, 1.0, 2.0)
PATCH = 0.125
# the still term's candidates: name -> foreground threshold (grey levels) and how "still" is read, from the
# flows' path or from the frames' differences, against the scene's background or the clip's own ("c")
# (docs/discriminator.md, "Standing still" and "A clip's own background")
STILL = {
    "still12": (12, "path"),
    "still20": (20, "path"),
    "still20d": (20, "diff"),
    "still12c": (12, "diff"),
    "still20c": (20, "diff"),
    "still12s": (12, "diff"),  # against the training scene, matched to the clip's brightness (--scene)
}
STILL_K = STILL_FRAMES  # flows (frames) over which a still pixel has not moved: the sway's


def matched_scene(scene: np.ndarray, clip: np.ndarray, threshold: float) -> np.ndarray:
    """The training scene's grey background (H, W) with the gain and offset that best map it to the clip's
    median (least squares; refitted once on the pixels within ``threshold`` of the first fit, so that what
    stands in the clip's median does not pull it): the empty scene in the clip's light."""
    x, y = scene.ravel().astype(np.float64), clip.ravel().astype(np.float64)
    keep = np.ones_like(x, bool)
    for _ in range(2):
        a, b = np.polyfit(x[keep], y[keep], 1)
        keep = np.abs(a * x + b - y) < threshold
    return (a * scene + b).astype(np.float32)


class StillPrior(PackageStillPrior):
    """The package's still term (:class:`stvad.motion.StillPrior`: foreground above ``threshold`` against a
    background, 3x3 opening; "diff": within its STILL_DIFF grey levels of each of the last STILL_K frames)
    with this probe's research variants: ``how`` "path" reads stillness from the flows instead (path below
    the flow's first edge), and the background is the scene's unless ``clip`` (then each clip's own, set by
    :meth:`clip_background`). Its second argument everywhere is the flows into the frame judged."""

    def __init__(self, bg: np.ndarray, threshold: float, up: int, how: str = "path"):
        super().__init__(bg.shape[:2], up, threshold)
        self.bg, self.how = bg.astype(np.float32).mean(axis=2), how
        self.clip = False  # True: the background is the clip's own, set by clip_background
        self.scene: np.ndarray | None = None  # set: the scene matched to each clip (an "s" candidate)
        self.edge = float(MAG_EDGES[0] * min(self.size) * self.up)

    def clip_background(self, bg: np.ndarray) -> None:
        """The background of the clip about to be fitted or scored (a "c" candidate's; an "s" candidate's
        the scene matched to it, :func:`matched_scene`)."""
        if self.clip:
            self.bg = bg.astype(np.float32).mean(axis=2)
        if self.scene is not None:
            self.bg = matched_scene(self.scene, bg.astype(np.float32).mean(axis=2), self.threshold)

    def masks(self, frames: np.ndarray, flows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``frames`` end with the one judged, ``flows`` with the one into it."""
        fg, still = super().masks(frames, self.bg)
        if self.how == "diff":
            return fg, still
        path = np.hypot(*np.moveaxis(np.asarray(flows, np.float32), -1, 0)).sum(0)
        return fg, path < self.edge


def coherent_sway(flows: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """The sway of the flows averaged over boxes of 1/16 of the flow frame's shorter side (``cv2.blur``):
    a walker's limbs, swinging both ways inside a box, average out; a figure going up and down as a whole
    (a jump in place) does not."""
    k = max(3, round(min(np.asarray(flows[0]).shape[:2]) / 16))
    return sway(np.stack([cv2.blur(np.asarray(f, np.float32), (k, k)) for f in flows]))


def sway_xy(flows: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """(K, H, W, 2) flows, oldest first -> (H, W, 2) the sway of each axis alone, ``(sum |f_k,a| - |sum
    f_k,a|) / 2`` for a = x, y: a jump in place sways up and down, a walker's limbs along its way."""
    flows = np.asarray(flows, np.float32)
    return 0.5 * (np.abs(flows).sum(0) - np.abs(flows.sum(0)))


class SwayXYPrior(SwayPrior):
    """Per grid cell, counts of the pair of the two axes' sway bins (the magnitude edges, below the first
    its own bin) where either axis sways at least the first edge; Laplace smoothed."""

    def __init__(self, shape: tuple[int, int], alpha: float = 1.0):
        super().__init__(shape, alpha)
        n = len(self.edges) + 1
        self.counts = np.full((*self.counts.shape[:2], n * n), alpha)
        self.cell_offset = (self.ci * self.counts.shape[1] + self.cj) * n * n
        self.n = n

    def _pair(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b = np.searchsorted(self.edges, s, side="right").clip(0, self.n - 1)  # 0: below the first edge
        return s.max(-1) >= self.edges[0], b[..., 0] * self.n + b[..., 1]

    def fit(self, s: np.ndarray) -> None:
        m, b = self._pair(s)
        np.add.at(self.counts, (self.ci[m], self.cj[m], b[m]), 1.0)

    def terms(self, s: np.ndarray) -> np.ndarray:
        m, b = self._pair(s)
        t = self.nll_flat.take(self.cell_offset + b)
        t[~m] = 0.0
        return t


def occupancy(prior, n_flows: int) -> np.ndarray:
    """Per pixel of the flow frame, -log p(moving | its cell): the cell's moving pixels over all its pixels
    in the ``n_flows`` training flows the fitted ``prior`` counted, one count smoothed into each (float32;
    docs/discriminator.md, "Motion where nothing moves")."""
    moving = prior.counts.sum(-1) - prior.counts.shape[-1]  # less the Laplace count in every bin
    pixels = np.bincount((prior.ci * GRID + prior.cj).ravel(), minlength=GRID * GRID).reshape(GRID, GRID)
    nll = -np.log((moving + 1.0) / (n_flows * pixels + 2.0))
    return nll[prior.ci, prior.cj].astype(np.float32)


def motion_rows(
    motion: MotionModel,
    priors: dict[int, SwayPrior],
    flows: list[np.ndarray],
    frames: np.ndarray | None = None,
    stills: dict[str, StillPrior] | None = None,
    xy: SwayXYPrior | None = None,
    coh: SwayPrior | None = None,
    occ: np.ndarray | None = None,
) -> dict:
    """Scores of the frame after the last of ``flows`` (oldest first): the flow's, and each K's sway over
    the last K flows (fewer where fewer are given); with ``frames`` (ending with the one judged) and
    ``stills``, the flow, the sway over 8 and each still term summed; with ``occ`` (:func:`occupancy`) also
    the same with -log p(moving | cell) added where a pixel moves."""
    ft = motion.prior.terms(flows[-1])
    row = {"flow": frame_score(ft, PATCH)}
    for k, prior in priors.items():
        st = prior.terms(sway(np.stack(flows[-k:])))
        row[f"sway{k}"] = frame_score(st, PATCH)
        row[f"flow+sway{k}"] = frame_score(ft + st, PATCH)  # one motion score: both models' -log p, summed
        if k == STILL_K and stills:
            for name, still in stills.items():
                lt = still.terms(frames, flows[-k:])  # the still term's masks, once a frame and term
                row[f"flow+sway{k}+{name}"] = frame_score(ft + st + lt, PATCH)
                if name != "still12c":
                    continue
                if occ is not None:  # motion where motion is rare
                    ot = np.where(ft > 0, occ, np.float32(0))  # every moving pixel's term is above 0
                    row[f"flow+occ+sway{k}+{name}"] = frame_score(ft + ot + st + lt, PATCH)
                if coh is not None:  # the coherent sway in place of the sway
                    ct = coh.terms(coherent_sway(flows[-k:]))
                    row[f"flow+swaycoh{k}+{name}"] = frame_score(ft + ct + lt, PATCH)
                if xy is not None:  # the per-axis sway in place of the sway
                    xt = xy.terms(sway_xy(np.stack(flows[-k:])))
                    row[f"flow+swayxy{k}+{name}"] = frame_score(ft + xt + lt, PATCH)
    return row


def summary(files: list[str]) -> None:
    """The table of docs/discriminator.md: per set criterion / oscillating glide / test, and the rules'
    counts: above ``f2+flow`` on the criterion (the sway section's rule), and the fourth criterion's pass
    (criterion at most 0.5 below ``f2+flow``'s and the oscillating glide at least 2 above). Files with the
    standing glide also show it, and the still term's pass (criterion and oscillating glide at most 0.5
    below ``f2+[flow+sway8]``'s, the standing glide at least 2 above) and the fused scores' pass (the mean
    of all five held-out glides at least 0.5 above ``f2+[flow+sway8]``'s, none of them more than 2 below)."""
    res = {Path(f).stem.removeprefix("motion_history_"): json.loads(Path(f).read_text()) for f in files}
    names = list(next(iter(res.values()))["configs"])
    stand = all("stand" in r["configs"]["f2+flow"] for r in res.values())
    cols = "criterion / oscillate / " + ("stand / " if stand else "") + "test"
    print(
        "| configuration | "
        + " | ".join(f"{n}: {cols}" for n in res)
        + " | above f2+flow | passes | "
        + ("passes (still) | passes (five) | mean of five | " if stand else "")
        + "mean of four |"
    )
    print("|" + "---|" * (len(res) + 4 + 3 * stand))
    base = {n: r["configs"]["f2+flow"] for n, r in res.items()}
    sway8 = {n: r["configs"].get("f2+[flow+sway8]") for n, r in res.items()}
    for c in names:
        rows = {n: r["configs"][c] for n, r in res.items()}
        above = sum(rows[n]["criterion"] > base[n]["criterion"] for n in res)
        passes = sum(
            rows[n]["criterion"] >= base[n]["criterion"] - 0.005
            and rows[n].get("oscillate", np.nan) >= base[n].get("oscillate", np.nan) + 0.02
            for n in res
        )
        four = [np.mean([rows[n]["glides"][g] for g in HELD[:4]]) for n in res]
        cells = [
            f"{100 * x['criterion']:.2f} / {100 * x.get('oscillate', np.nan):.1f} / "
            + (f"{100 * x['stand']:.1f} / " if stand else "")
            + f"{100 * x['test']['all']:.1f}"
            for x in rows.values()
        ]
        still = ""
        if stand:
            held = sum(
                rows[n]["criterion"] >= sway8[n]["criterion"] - 0.005
                and rows[n]["oscillate"] >= sway8[n]["oscillate"] - 0.005
                and rows[n]["stand"] >= sway8[n]["stand"] + 0.02
                for n in res
            )
            fused = sum(passes_five(rows[n], sway8[n]) for n in res)
            still = f" {held} | {fused} | {100 * np.mean([five(rows[n]) for n in res]):.2f} |"
        print(f"| {c} | " + " | ".join(cells) + f" | {above} | {passes} |{still} {100 * np.mean(four):.2f} |")
    xy = [
        c
        for c in names
        if c.startswith(("f2|[flow+swayxy", "f2|[flow+swaycoh", "f2|[flow+occ", "asinh:"))
        or c.endswith("still12s]")
    ]
    if xy:  # "Sway per axis", "The training scene in each video's light": the five-glide rule against the
        # default, f2|[flow+sway8+still12c]
        base = "f2|[flow+sway8+still12c]"
        print(f"\n| five glides (mean, worst against `{base}`) | " + " | ".join(res) + " | passes |")
        print("|" + "---|" * (len(res) + 2))
        for c in [base, *xy]:
            rows = [(r["configs"][c], r["configs"][base]) for r in res.values()]
            cells = [
                f"{100 * five(x):.2f} ({100 * worst(x, b):+.1f})"
                + (f" / mixed {100 * x['mixed']:.2f}" if "mixed" in x else "")
                + f" / {100 * x['test']['all']:.1f}"
                for x, b in rows
            ]
            n_pass = sum(passes_five(x, b) for x, b in rows)
            print(f"| `{c}` | " + " | ".join(cells) + f" | {'—' if c == base else n_pass} |")


def main(argv=None) -> None:
    if argv is None and sys.argv[1:2] == ["--summary"]:
        return summary(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("data")
    ap.add_argument("--ks", nargs="+", type=int, default=[4, 8])
    ap.add_argument("--json")
    ap.add_argument("--coherent", action="store_true", help='also the coherent sway ("Coherent sway")')
    ap.add_argument("--scene", action="store_true", help="also the still term against the matched scene")
    ap.add_argument(
        "--xy", action="store_true", help='also the per-axis sway (docs/discriminator.md, "Sway per axis")'
    )
    ap.add_argument(
        "--occ",
        action="store_true",
        help='also motion where nothing moves and the asinh score ("Motion where nothing moves")',
    )
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    t0 = time.time()
    scorer = Scorer.from_run(a.run, variants=("f2",))
    cfg = scorer.cfg
    T, norm, K = cfg.data.T, cfg.score.normalisation, max(a.ks)
    ds = open_dataset(a.data)
    train, val = split_train_val(ds.train, cfg.data.val_fraction, T=T)

    def clip_frames(src, start, stop):
        return np.stack(list(scorer.frames(src, start, stop)))

    # the package's flow model, fitted as fit_motion fits it; the sways are this probe's own priors
    motion = MotionModel(cfg.data.size, sway=0)
    flow_shape = tuple(s * motion.up for s in cfg.data.size)
    priors = {k: SwayPrior(flow_shape) for k in a.ks}
    scene = background(np.concatenate([clip_frames(*c) for c in train]))  # the still term's background
    stills = {n: StillPrior(scene, thr, motion.up, how) for n, (thr, how) in STILL.items()}
    stills = stills if STILL_K in a.ks else {}
    xy = SwayXYPrior(flow_shape) if a.xy and stills else None
    coh = SwayPrior(flow_shape) if a.coherent and stills else None
    if not a.scene:
        stills.pop("still12s", None)
    for n, still in stills.items():
        still.clip = n.endswith("c")
        if n.endswith("s"):
            still.scene = still.bg.copy()
    n_flows = 0  # training flows the flow prior counted (the occupancy's denominator)
    for src, start, stop in train:
        fr = clip_frames(src, start, stop)
        for still in stills.values():
            still.clip_background(background(fr))
        fl = [motion.flow(fr[i - 1], fr[i]) for i in range(1, len(fr))]
        n_flows += len(fl)
        for i, f in enumerate(fl):
            motion.prior.fit(f)
            for k, prior in priors.items():
                if i >= k - 1:
                    prior.fit(sway(np.stack(fl[i - k + 1 : i + 1])))
            if xy is not None and i >= STILL_K - 1:
                xy.fit(sway_xy(np.stack(fl[i - STILL_K + 1 : i + 1])))
            if coh is not None and i >= STILL_K - 1:
                coh.fit(coherent_sway(fl[i - STILL_K + 1 : i + 1]))
            if i >= STILL_K - 1:
                for still in stills.values():
                    still.fit(fr[i + 1 - STILL_K : i + 2], fl[i - STILL_K + 1 : i + 1])
    motion.prior.finish()
    occ = occupancy(motion.prior, n_flows) if a.occ and stills else None
    for prior in [*priors.values(), *stills.values(), *(p for p in (xy, coh) if p is not None)]:
        prior.finish()
    print(f"priors fitted at {time.time() - t0:.0f} s", file=sys.stderr)

    # held-out: windows of K+1 frames, normal and with a gliding copy through all of them
    side = moving_side([clip_frames(*c) for c in train])
    spec = PseudoSpec(speeds=(2, 3), box=(0.75 * side, 1.25 * side))
    held: dict = {"normal": {}, **{g: {} for g in HELD}}
    for ci, (src, start, stop) in enumerate(val):
        fr = clip_frames(src, start, stop)
        groups = {"normal": [fr[t - K : t + 1] for t in range(K, len(fr))]}
        bg = background(clip_frames(src, 0, stop))
        for still in stills.values():
            still.clip_background(bg)
        for g in HELD:
            groups[g] = [
                np.concatenate([w[2], w[3][None]]) for w in glide_windows(fr, K, spec, ci, bg, kind=g)
            ]
        for g, wins in groups.items():
            if not wins:
                continue
            wins = np.stack(wins)
            rec = {"f2": scorer.score_many(wins[:, -T - 1 : -1], wins[:, -1], 32)[0]["f2"]}
            rows = []
            for w in wins:
                flows = [motion.flow(w[i - 1], w[i]) for i in range(1, K + 1)]
                rows.append(motion_rows(motion, priors, flows, w, stills, xy, coh, occ))
            rec |= {key: np.array([r[key] for r in rows]) for key in rows[0]}
            held[g][ci] = rec
    print(f"held-out scored at {time.time() - t0:.0f} s", file=sys.stderr)

    @functools.cache
    def z(key):
        x = np.concatenate([held["normal"][c][key] for c in held["normal"]])
        mu, sd = float(x.mean()), float(x.std() + 1e-12)
        scales[key] = {"mean": mu, "sd": sd, "nonzero": float((x > 0).mean())}
        return lambda s: (s - mu) / sd

    scales: dict = {}  # each score's standardiser on the held-out normal windows, and how often it is not 0

    configs = {"f2+flow": (("f2", 1.0), ("flow", 1.0)), "flow": (("flow", 1.0),)}
    for k in a.ks:
        configs[f"sway{k}"] = ((f"sway{k}", 1.0),)
        configs[f"f2+sway{k}"] = (("f2", 1.0), (f"sway{k}", 1.0))
        for w in WEIGHTS:
            configs[f"f2+flow+sway{k}/{w:g}"] = (("f2", 1.0), ("flow", 1.0), (f"sway{k}", w))
        configs[f"[flow+sway{k}]"] = ((f"flow+sway{k}", 1.0),)
        configs[f"f2+[flow+sway{k}]"] = (("f2", 1.0), (f"flow+sway{k}", 1.0))
    for name in stills:
        key = f"flow+sway{STILL_K}+{name}"
        configs[f"[{key}]"], configs[f"f2+[{key}]"] = ((key, 1.0),), (("f2", 1.0), (key, 1.0))
    # the larger of the two standardised scores instead of their sum ("either fires"; docs/discriminator.md,
    # "The larger of f2 and the motion score")
    maxed = set()
    xykeys = [f"flow+swayxy{STILL_K}+still12c"] if xy is not None else []
    xykeys += [f"flow+swaycoh{STILL_K}+still12c"] if coh is not None else []
    xykeys += [f"flow+occ+sway{STILL_K}+still12c"] if occ is not None else []
    for key in xykeys:
        configs[f"[{key}]"] = ((key, 1.0),)
    for key in [
        f"flow+sway{STILL_K}",
        *(f"flow+sway{STILL_K}+{n}" for n in stills if n in ("still12c", "still12s")),
        *xykeys,
    ]:
        if STILL_K in a.ks:
            configs[f"f2|[{key}]"] = (("f2", 1.0), (key, 1.0))
            maxed.add(f"f2|[{key}]")

    # the fused score's asinh (docs/discriminator.md, "Motion where nothing moves, and a compressed score")
    squash = set()
    if occ is not None:
        for key in (f"flow+sway{STILL_K}+still12c", f"flow+occ+sway{STILL_K}+still12c"):
            configs[f"asinh:f2|[{key}]"] = configs[f"f2|[{key}]"]
            maxed.add(f"asinh:f2|[{key}]")
            squash.add(f"asinh:f2|[{key}]")

    def combine(rec, name):
        terms = [w * z(key)(rec[key]) for key, w in configs[name]]
        out = functools.reduce(np.maximum, terms) if name in maxed else sum(terms)
        return np.arcsinh(out) if name in squash else out

    crit = glide_aurocs(held, combine, configs, norm)
    mixed = mixed_aurocs(held, combine, configs, norm)

    # test videos, read after the criterion is computed
    recs, labels, index = [], [], []
    for v in ds.test:
        fr = np.stack(list(scorer.frames(v.source)))
        sc = scorer.score_frames(iter(fr), name=v.name)
        fl = [None] + [motion.flow(fr[i - 1], fr[i]) for i in range(1, len(fr))]
        for still in stills.values():
            still.clip_background(background(fr))
        rows = [
            motion_rows(
                motion, priors, fl[max(1, i - K + 1) : i + 1], fr[max(0, i - K) : i + 1], stills, xy, coh, occ
            )
            for i in sc.index
        ]
        recs.append({"f2": sc.scores["f2"], **{key: np.array([r[key] for r in rows]) for key in rows[0]}})
        labels.append(np.asarray(v.labels)[sc.index])
        index.append(sc.index)
    print(f"test scored at {time.time() - t0:.0f} s", file=sys.stderr)
    tests = test_aurocs(configs, recs, labels, index, ds.test, read_events(a.data), norm, combine)
    out = {}
    for name, test in tests.items():
        c = float(np.mean([crit[name][g] for g in GLIDES]))
        out[name] = {
            "criterion": c,
            "oscillate": crit[name]["oscillate"],
            "stand": crit[name]["stand"],
            "glides": crit[name],
            "mixed": mixed[name],
            "test": test,
        }
        print(
            f"{name:26} criterion {100 * c:6.2f} oscillate {100 * crit[name]['oscillate']:6.2f} "
            f"stand {100 * crit[name]['stand']:6.2f}  "
            + " ".join(f"{k} {100 * x:.1f}" for k, x in test.items())
        )
    if a.json:
        atomic_write_json(
            Path(a.json),
            {
                "command": "python experiments/motion_history.py "
                + " ".join(sys.argv[1:] if argv is None else argv),
                "run": a.run,
                "data": a.data,
                "step": scorer.engine.step,
                "window_frames": K + 1,
                "pseudo": spec.to_dict(),
                "note": "the held-out criterion (mean of the three glides) chooses; test AUROCs read after",
                "configs": out,
                "standardisers": scales,
            },
        )


if __name__ == "__main__":
    main()
