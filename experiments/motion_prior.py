"""Probe: a model of normal optical flow as a second score beside the GAN's, chosen without test labels.

    python experiments/motion_prior.py RUN DATA [--also dmap] [--json experiments/results/NAME.json]
    python experiments/motion_prior.py RUN DATA --criterion v3 --flows 2 2u --small --json ...
    python experiments/motion_prior.py --summary experiments/results/motion_prior_*.json

Dense optical flow (OpenCV DIS, preset medium) from each frame to the next, on the run's model-size
frames upsampled ``up`` times; for every cell of a 16 x 16 grid, a histogram of the flow vectors of
moving pixels in the normal training clips (8 directions x 6 magnitude bins, edges a fraction of the
frame side, Laplace smoothed). A pixel's term is -log p(its flow's bin | its cell) where it moves, 0 where
it does not; a frame's score is the sum of the terms (``sum``) or the largest sum over a window of
``patch`` of the frame side. The combination with the GAN's ``full`` adds the two scores, each
standardised by its mean and deviation on the run's held-out normal windows, with the flow's weighted.

Label-free choice: on the run's held-out normal clips (the tails of the training videos, not used to fit
the histograms), the speed-up, reversal and U-turn pseudo-anomalies of ``stvad.data.pseudo`` (one box of
the past or of the target changed; the flow runs from the window's last past frame to its target) against
the normal windows, micro AUROC per clip min-max as choose_d.py. The mean of the speed-up and reversal
proxies (the criterion fixed before this probe) ranks every configuration; the mean of all three is
reported beside it.
``--criterion v2`` and ``v3`` are the second and third criteria (docs/discriminator.md): v2 sizes the boxes
by ``moving_side`` and adds the turned box; v3 replaces the boxes by ``glide_windows`` (a figure's copy
gliding beside it: fast, across, stepping back) with each video's median as the background. ``--flows``
picks the upsampling and DIS preset (``2u``: x2, ultrafast; ``2f``: fast), ``--small`` the window 1/8 alone.
``--base f2`` adds the flow's score to the run's ``f2`` instead of ``full`` (``f2`` alone needs only D's
first two layers, so it scores at about 1.1x ``only-stn`` where ``full`` takes 1.5x: flow_cost.py).
The test set's AUROCs are read afterwards for every configuration, to measure, not to choose.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import re
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from stvad import motion
from stvad._io import atomic_write_json
from stvad.data.layouts import open_dataset
from stvad.data.pseudo import (
    PseudoSpec,
    background,
    glide_windows,
    moving_side,
    reversal_windows,
    rotated_windows,
    speedup_windows,
    uturn_windows,
)
from stvad.data.synth_events import read_events
from stvad.data.windows import iter_windows, split_train_val
from stvad.engine import Scorer
from stvad.evaluate import by_event_type
from stvad.metrics import auroc_micro
from stvad.motion import N_DIR, Flow, frame_score
from stvad.scoring import postprocess

KINDS = {
    "speed-up": speedup_windows,
    "reversal": reversal_windows,
    "u-turn": uturn_windows,
    "rotated": rotated_windows,
    **{f"glide-{k}": functools.partial(glide_windows, kind=k) for k in ("fast", "across", "back")},
}
FIXED = ("speed-up", "reversal")  # the criterion fixed before this probe: the mean of these two
# each fixed before it was run (docs/discriminator.md): v1 the first; v2 boxes of the scene's moving size,
# speed-ups of 2 and 3, the mean of speed-up, turned box and U-turn; v3 the mean of the three glides (no box)
CRITERIA = {
    "v1": dict(kinds=("speed-up", "reversal", "u-turn"), fixed=FIXED, box=None, speeds=(2,)),
    "v2": dict(kinds=("speed-up", "rotated", "u-turn", "reversal"), fixed=("speed-up", "rotated", "u-turn"),
               box="moving", speeds=(2, 3)),
    "v3": dict(kinds=("glide-fast", "glide-across", "glide-back", "speed-up"),
               fixed=("glide-fast", "glide-across", "glide-back"), box="moving", speeds=(2, 3)),
}  # fmt: skip
TAGS = {"u": "ultrafast", "f": "fast"}  # --flows 2u, 2f: upsampling, then the DIS preset (none: medium)


def parse_flow(tag: str) -> tuple[int, str, int]:
    """A ``--flows`` tag -> (upsampling, DIS preset, span): ``2``, ``2u``, ``2f``, and ``2s4`` for the flow
    from the frame 4 before the target to the target (span 1, the default: from the last past frame)."""
    m = re.fullmatch(r"(\d+)([uf]?)(?:s(\d+))?", tag)
    if m is None:
        raise SystemExit(f"--flows {tag}: expected upsampling, then u or f, then sN for a span (2, 2u, 2s4)")
    return int(m[1]), TAGS.get(m[2], "medium"), int(m[3] or 1)


class FlowPrior(motion.FlowPrior):
    """The package's prior (stvad.motion), with a transition table: a pixel's bin now given its bin a frame
    before (still = the last bin)."""

    def __init__(self, shape: tuple[int, int], alpha: float = 1.0):
        super().__init__(shape, alpha)
        self.trans = np.full((N_DIR * self.n_mag + 1,) * 2, alpha)

    def pairs(self, before: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each pixel's bin before and now (still = the last bin), and where it moved at either time."""
        still = N_DIR * self.n_mag
        (m0, b0), (m1, b1) = self.bins(before), self.bins(flow)
        return np.where(m0, b0, still), np.where(m1, b1, still), m0 | m1

    def fit(self, flow: np.ndarray, before: np.ndarray | None = None) -> None:
        super().fit(flow)
        if before is not None:
            b0, b1, either = self.pairs(before, flow)
            np.add.at(self.trans, (b0[either], b1[either]), 1.0)

    def finish(self) -> FlowPrior:
        self.trans_nll = -np.log(self.trans / self.trans.sum(-1, keepdims=True))
        return super().finish()

    def transition_terms(self, before: np.ndarray, flow: np.ndarray) -> np.ndarray:
        """-log p(bin now | bin a frame before) where the pixel moved at either time, 0 elsewhere."""
        b0, b1, either = self.pairs(before, flow)
        return np.where(either, self.trans_nll[b0, b1], 0.0)


PATCHES = (0.0, 0.125, 0.25)
WEIGHTS = (0.5, 1.0, 2.0)


def motion_scores(prior: FlowPrior, flow_pairs, trs=(0, 1), patches=PATCHES) -> dict[tuple, np.ndarray]:
    """Frame scores of (flow into the last past frame, flow into the target) pairs, without (0) and with
    (1) the transition term, for every window size."""
    out: dict[tuple, list[float]] = {(tr, p): [] for tr in trs for p in patches}
    for before, fl in flow_pairs:
        cell = prior.terms(fl)
        both = cell + prior.transition_terms(before, fl) if 1 in trs else cell
        for tr, t in ((0, cell.astype(np.float32)), (1, both.astype(np.float32))):
            for p in patches if tr in trs else ():
                out[(tr, p)].append(frame_score(t, p))
    return {k: np.asarray(v) for k, v in out.items()}


SUMMARY_ROWS = ("full", "motion/2/0/0.125", "motion/2/1/0.125", "full+motion/2/0/0.125/1.0",
                "full+motion/2/1/0.125/1.0")  # fmt: skip


def rule_summary(files: list[str], against: str) -> None:
    """Every configuration over result files: criterion / test AUROC per set, the number of sets where its
    criterion is above ``against``'s, and its mean criterion (the rule of the span section)."""
    res = {Path(f).stem.removeprefix("motion_prior_"): json.loads(Path(f).read_text()) for f in files}
    names = list(next(iter(res.values()))["configs"])
    head = " | ".join(f"{n}: criterion / test" for n in res)
    print(f"| configuration | {head} | above {against} | mean |")
    print("|" + "---|" * (len(res) + 3))
    for c in names:
        crit = [r["configs"][c]["proxies"]["mean"] for r in res.values()]
        above = sum(x > r["configs"][against]["proxies"]["mean"] for x, r in zip(crit, res.values()))
        tests = [r["configs"][c]["test"]["all"] for r in res.values()]
        cells = [f"{100 * x:.2f} / {100 * t:.1f}" for x, t in zip(crit, tests)]
        print(f"| {c} | " + " | ".join(cells) + f" | {above} | {100 * np.mean(crit):.2f} |")


def summary(files: list[str]) -> None:
    """A markdown table of chosen rows over result files: the fixed proxy mean, then the test AUROC."""
    res = {Path(f).stem.removeprefix("motion_prior_"): json.loads(Path(f).read_text()) for f in files}
    head = ["configuration", *(f"{n}: proxy mean / test" for n in res)]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for row in (*SUMMARY_ROWS, "chosen by the fixed proxy mean"):
        cells = []
        for r in res.values():
            name = r["chosen"] if row.startswith("chosen") else row
            c = r["configs"][name]
            cells.append(f"{100 * c['proxies']['mean']:.1f} / {100 * c['test']['all']:.1f}"
                         + (f" ({name})" if row.startswith("chosen") else ""))  # fmt: skip
        print("| " + " | ".join([row, *cells]) + " |")


def main(argv=None) -> None:
    if argv is None and sys.argv[1:2] == ["--summary"] and "--against" in sys.argv:
        i = sys.argv.index("--against")
        return rule_summary(sys.argv[2:i] + sys.argv[i + 2 :], sys.argv[i + 1])
    if argv is None and sys.argv[1:2] == ["--summary"]:
        return summary(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("data")
    ap.add_argument("--json")
    ap.add_argument(
        "--also", nargs="*", default=[], help="other score variants of the run to add to full (dmap)"
    )
    ap.add_argument(
        "--criterion", choices=CRITERIA, default="v1", help="the proxies and the mean that chooses"
    )
    ap.add_argument(
        "--flows", nargs="+", default=["1", "2"], help="upsampling, then u or f for DIS ultrafast or fast: 2u"
    )
    ap.add_argument("--small", action="store_true", help="window 1/8 only, no transition term")
    ap.add_argument(
        "--base", choices=("full", "f2"), default="full", help="the run's score the flow's is added to"
    )
    ap.add_argument(
        "--pairs", nargs="*", default=[], help="two --flows tags A:B, both added to the base, weight 1"
    )
    a = ap.parse_args(argv)
    crit = CRITERIA[a.criterion]
    kinds = {k: KINDS[k] for k in crit["kinds"]}
    trs, patches = ((0,), (0.125,)) if a.small else ((0, 1), PATCHES)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    base = a.base
    scorer = Scorer.from_run(a.run, variants=(base, *a.also))
    cfg = scorer.cfg
    T, norm = cfg.data.T, cfg.score.normalisation
    ds = open_dataset(a.data)
    train, val = split_train_val(ds.train, cfg.data.val_fraction, T=T)
    t0 = time.time()

    def clip_frames(src, start, stop):
        return np.stack(list(scorer.frames(src, start, stop)))

    flows, priors, spans = {}, {}, {}
    for up in a.flows:
        factor, preset, spans[up] = parse_flow(up)
        if spans[up] > T or (spans[up] > 1 and not a.small):
            raise SystemExit(f"--flows {up}: a span needs --small (no transition term) and at most T = {T}")
        flows[up] = Flow(factor, preset)
        h, w = (s * flows[up].up for s in cfg.data.size)
        priors[up] = FlowPrior((h, w))
        for src, start, stop in train:
            fr = clip_frames(src, start, stop)
            before, k = None, spans[up]
            for i in range(k, len(fr)):
                fl = flows[up](fr[i - k], fr[i])
                priors[up].fit(fl, before if k == 1 else None)
                before = fl
        priors[up].finish()
    print(f"priors fitted in {time.time() - t0:.0f} s", file=sys.stderr)

    # held-out clips: normal windows and the pseudo-anomaly kinds
    spec = PseudoSpec(speeds=crit["speeds"])
    if crit["box"] == "moving":  # a box of the size of what moves in the training clips, +-25%
        side = moving_side([clip_frames(*c) for c in train])
        spec = PseudoSpec(speeds=crit["speeds"], box=(0.75 * side, 1.25 * side))
        print(f"moving side {side:.3f} of the frame", file=sys.stderr)
    held: dict = {"normal": {}, **{k: {} for k in kinds}}
    for ci, (src, start, stop) in enumerate(val):
        fr = clip_frames(src, start, stop)
        normal = list(iter_windows(fr, T))
        groups = {"normal": ([w[1] for w in normal], [w[2] for w in normal])}
        bg = background(clip_frames(src, 0, stop))  # the scene from the whole video up to the clip's end
        for kind, make in kinds.items():
            extra = {"bg": bg} if kind.startswith("glide") else {}
            wins = list(make(fr, T, spec, clip_seed=ci, **extra))
            groups[kind] = ([w[2] for w in wins], [w[3] for w in wins])
        for g, (pasts, targets) in groups.items():
            if not pasts:
                continue
            got = scorer.score_many(np.stack(pasts), np.stack(targets), 32)[0]
            rec = {base: got[base], **{v: got[v] for v in a.also}}
            for up in a.flows:  # the windows are not consecutive: both flows of each window
                k = spans[up]
                fp = (
                    (flows[up](p[-2], p[-1]) if k == 1 else None, flows[up](p[-k], t))
                    for p, t in zip(pasts, targets)
                )
                for (tr, p), s in motion_scores(priors[up], fp, trs, patches).items():
                    rec[("motion", up, tr, p)] = s
            held[g][ci] = rec
    print(f"held-out scored at {time.time() - t0:.0f} s", file=sys.stderr)

    @functools.cache
    def standardiser(key):
        x = np.concatenate([held["normal"][c][key] for c in held["normal"]])
        mu, sd = float(x.mean()), float(x.std() + 1e-12)
        return lambda s: (s - mu) / sd

    grid = list(itertools.product(a.flows, trs, patches))
    configs = [(base,)] + [("motion", *g) for g in grid]
    configs += [(f"{base}+motion", *g, w) for g in grid for w in WEIGHTS]
    for v in a.also:  # another score of the same run, alone and added to the base as the flow's is
        configs += [(v,)] + [(f"{base}+{v}", w) for w in WEIGHTS]
    pairs = [tuple(p.split(":")) for p in a.pairs]
    if pairs and (not a.small or any(len(p) != 2 or not set(p) <= set(a.flows) for p in pairs)):
        ap.error("--pairs needs --small and two of the --flows tags, as A:B")
    configs += [(f"{base}+motion+motion", *p) for p in pairs]

    def combine(rec, c):
        if c[0] == f"{base}+motion+motion":  # the base and two flows' scores, each standardised, weight 1
            return standardiser(base)(rec[base]) + sum(
                standardiser(("motion", up, 0, 0.125))(rec[("motion", up, 0, 0.125)]) for up in c[1:]
            )
        if c[0] == base:
            return rec[base]
        if c[0] in a.also:
            return rec[c[0]]
        if c[0] == "motion":
            return rec[c]
        other = c[0].removeprefix(f"{base}+")  # base + weight x (another variant, or the flow's score)
        key = other if other in a.also else ("motion", *c[1:4])
        return standardiser(base)(rec[base]) + c[-1] * standardiser(key)(rec[key])

    proxies = {}
    for c in configs:
        row = {}
        for kind in kinds:
            clips = [ci for ci in held[kind] if ci in held["normal"]]
            s = [np.concatenate([combine(held["normal"][ci], c), combine(held[kind][ci], c)]) for ci in clips]
            y = [
                np.repeat([0, 1], [len(held["normal"][ci][base]), len(held[kind][ci][base])])
                for ci in clips
            ]
            row[kind] = auroc_micro(postprocess(s, norm), y)
        row["mean"] = float(np.mean([row[k] for k in crit["fixed"]]))
        row["mean of three"] = float(np.mean([row[k] for k in crit["kinds"][:3]]))
        proxies[c] = row

    # test videos, read after the proxies are fixed
    test_rec, labels, index = [], [], []
    for v in ds.test:
        fr = np.stack(list(scorer.frames(v.source)))  # read once, for the GAN and the flow
        sc = scorer.score_frames(iter(fr), name=v.name)
        rec = {base: sc.scores[base], **{k: sc.scores[k] for k in a.also}}
        for up in a.flows:  # each flow once
            k = spans[up]  # flow i is from frame i-k to frame i
            fl = [None] * k + [flows[up](fr[i - k], fr[i]) for i in range(k, len(fr))]
            pairs = ((fl[i - 1], fl[i]) for i in sc.index)
            for (tr, p), s in motion_scores(priors[up], pairs, trs, patches).items():
                rec[("motion", up, tr, p)] = s
        test_rec.append(rec)
        labels.append(np.asarray(v.labels)[sc.index])
        index.append(sc.index)
    print(f"test scored at {time.time() - t0:.0f} s", file=sys.stderr)
    name = lambda c: "/".join(str(x) for x in c)  # noqa: E731
    test_scores = {name(c): [combine(r, c) for r in test_rec] for c in configs}
    events = read_events(a.data)
    by_type = by_event_type(events, ds.test, index, test_scores, labels, norm) if events else {}
    tests = {
        c: {"all": auroc_micro(postprocess(test_scores[name(c)], norm), labels), **by_type.get(name(c), {})}
        for c in configs
    }

    chosen = max(configs, key=lambda c: proxies[c]["mean"])
    chosen3 = max(configs, key=lambda c: proxies[c]["mean of three"])
    cols = [*kinds, "mean", "mean of three"]
    print(
        f"{'configuration':28} "
        + " ".join(f"{k[:8]:>8}" for k in cols)
        + " | test: "
        + " ".join(tests[configs[0]])
    )
    for c in configs:
        p, t = proxies[c], tests[c]
        mark = (" <- chosen" if c == chosen else "") + (" <- chosen by three" if c == chosen3 else "")
        print(
            f"{name(c):28} "
            + " ".join(f"{100 * p[k]:8.1f}" for k in cols)
            + " | "
            + " ".join(f"{100 * x:.1f}" for x in t.values())
            + mark
        )
    if a.json:
        atomic_write_json(
            Path(a.json),
            {
                "command": "python experiments/motion_prior.py "
                + " ".join(sys.argv[1:] if argv is None else argv),
                "run": a.run,
                "data": a.data,
                "pseudo": spec.to_dict(),
                "criterion": {"name": a.criterion, "kinds": list(kinds), "mean of": list(crit["fixed"])},
                "note": "held-out proxies choose; test AUROCs (per-video min-max micro) are read after",
                "chosen": name(chosen),
                "chosen_by_three": name(chosen3),
                "configs": {name(c): {"proxies": proxies[c], "test": tests[c]} for c in configs},
            },
        )


if __name__ == "__main__":
    main()
