"""First look (test labels read): a flow prior that also knows where things stand still.

    python experiments/still_foreground.py DATA --preset cpu [--json experiments/results/NAME.json]

The package's flow model (stvad.motion) scores only pixels that move; a pixel that does not move adds 0.
On the synthetic set nobody stops in the training videos, and four of its seven anomaly types stand still
for a while (a jump in place, a fall, a throw, a bag left behind), where the flow, like G's error, sees
nothing. Here the prior gets one more bin per cell: *still foreground*, a pixel that differs from the
scene's background (the per-pixel median of the training frames) by more than 20 grey levels (the
threshold ``stvad.data.pseudo`` cuts figures with), after a morphological opening, and does not move
(below the flow's first edge). A pixel's term is -log p(its bin | its cell) where it moves or stands as
foreground; the frame score the package's window-1/8 maximum. Rows: ``flow`` (the package's prior),
``flow+still`` (49 bins), ``still`` (only the still-foreground bin's terms). Reported: the test micro
AUROC (per-video min-max) and per anomaly type where the set has events.json, and, label-free, each
score's mean and deviation on the held-out normal frames and the share of those frames with any
still-foreground term. A first look, to decide whether a criterion is worth fixing for it; nothing is
chosen on it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

from probe_data import preset_split, set_parser  # experiments/ is on sys.path when run as a script
from stvad import motion
from stvad._io import atomic_write_json
from stvad.data.synth_events import read_events
from stvad.evaluate import by_event_type
from stvad.metrics import auroc_micro
from stvad.motion import MotionModel, frame_score
from stvad.scoring import postprocess

FG_THRESHOLD = 20.0  # grey levels, as stvad.data.pseudo's figures


class StillPrior(motion.FlowPrior):
    """The package's per-cell flow histogram with one more bin: foreground that does not move."""

    def __init__(self, shape: tuple[int, int], alpha: float = 1.0):
        super().__init__(shape, alpha)
        self.still = self.counts.shape[-1]
        self.counts = np.concatenate([self.counts, np.full((*self.counts.shape[:2], 1), alpha)], -1)

    def ext_bins(self, flow: np.ndarray, fg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        moving, b = self.bins(flow)
        still = fg & ~moving
        return moving | still, np.where(still, self.still, b)

    def fit_fg(self, flow: np.ndarray, fg: np.ndarray) -> None:
        where, b = self.ext_bins(flow, fg)
        np.add.at(self.counts, (self.ci[where], self.cj[where], b[where]), 1.0)

    def finish(self) -> StillPrior:
        self.nll = -np.log(self.counts / self.counts.sum(-1, keepdims=True))
        return self

    def ext_terms(self, flow: np.ndarray, fg: np.ndarray, only_still: bool = False) -> np.ndarray:
        where, b = self.ext_bins(flow, fg)
        if only_still:
            where = where & (b == self.still)
        t = self.nll[self.ci, self.cj, b].astype(np.float32)
        t[~where] = 0.0
        return t


def main(argv=None) -> None:
    ap = set_parser(__doc__, "cpu")
    a = ap.parse_args(argv)
    cfg, ds, train, val, clip = preset_split(a.data, a.preset)
    size, T, ch = tuple(cfg.data.size), cfg.data.T, cfg.data.channels

    train_frames = [clip(c) for c in train]
    pool = np.stack([f[..., 0] for fr in train_frames for f in fr])
    bg = np.median(pool[:: max(1, len(pool) // 400)], axis=0).astype(np.float32)
    mm = MotionModel(size)
    up = mm.up
    prior = StillPrior(mm.prior.shape)

    def fg_mask(frame: np.ndarray) -> np.ndarray:
        fg = ndimage.binary_opening(np.abs(frame[..., 0].astype(np.float32) - bg) > FG_THRESHOLD)
        return np.repeat(np.repeat(fg, up, 0), up, 1)

    for fr in train_frames:
        for i in range(1, len(fr)):
            fl = mm.flow(fr[i - 1], fr[i])
            mm.prior.fit(fl)
            prior.fit_fg(fl, fg_mask(fr[i]))
    mm.prior.finish()
    prior.finish()

    def rows(fr: list[np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, list[float]] = {"flow": [], "flow+still": [], "still": []}
        for i in range(T, len(fr)):
            fl, fg = mm.flow(fr[i - 1], fr[i]), fg_mask(fr[i])
            out["flow"].append(frame_score(mm.prior.terms(fl), mm.patch))
            out["flow+still"].append(frame_score(prior.ext_terms(fl, fg), mm.patch))
            out["still"].append(frame_score(prior.ext_terms(fl, fg, only_still=True), mm.patch))
        return {k: np.asarray(v) for k, v in out.items()}

    held = [rows(clip(c)) for c in val]
    pooled = {k: np.concatenate([h[k] for h in held]) for k in held[0]}
    standardisers = {
        k: {"mean": float(x.mean()), "sd": float(x.std()), "nonzero": float((x > 0).mean())}
        for k, x in pooled.items()
    }
    got = [rows(list(v.source.frames(size, ch))) for v in ds.test]
    labels = [np.asarray(v.labels)[T:].astype(np.uint8) for v in ds.test]
    index = [np.arange(T, len(v.source)) for v in ds.test]
    scores = {k: [g[k] for g in got] for k in got[0]}
    norm = "per-video-minmax"
    events = read_events(a.data)
    by_type = by_event_type(events, ds.test, index, scores, labels, norm) if events else {}
    res = {
        k: {"all": auroc_micro(postprocess(s, norm), labels), **by_type.get(k, {})} for k, s in scores.items()
    }
    for k, r in res.items():
        print(f"{k:12} " + " ".join(f"{t} {100 * v:.1f}" for t, v in r.items()), file=sys.stderr)
    print(f"held-out standardisers: {standardisers}", file=sys.stderr)
    if a.json:
        atomic_write_json(
            Path(a.json),
            {
                "command": "python experiments/still_foreground.py "
                + " ".join(sys.argv[1:] if argv is None else argv),
                "note": "a first look with test labels read; nothing is chosen on it",
                "fg_threshold": FG_THRESHOLD,
                "test": res,
                "held_out_standardisers": standardisers,
            },
        )


if __name__ == "__main__":
    main()
