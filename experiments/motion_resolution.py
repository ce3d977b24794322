"""Probe: the motion model's flow from the source's own pixels instead of upsampled model-size frames.

    python experiments/motion_resolution.py RUN DATA [--json experiments/results/motion_resolution_NAME.json]
    python experiments/motion_resolution.py --summary experiments/results/motion_resolution_*.json

The package's motion model (stvad.motion) computes DIS flow on the model-size grey frames upsampled
``up`` = 2 times: at the cpu preset's 64x64 a walker far back is a few pixels high, and its flow comes from
a blurred copy of it. The flow grid can as well be fed the source resized to ``up`` times the model size
(the synthetic set's own 128x128, Ped2's 240x360 resized to 256x256), with ``up`` = 1: the same number of
flow pixels, the same cost for DIS, sharper figures. Everything else is the package's default motion score
(flow + sway over 8 flows + the still term at 12 grey levels), and the GAN's ``f2`` reads model-size frames
in both.

- ``f2|[model]``: the default, max of z(f2) and z(motion score on model-size frames, up 2);
- ``f2|[source]``: the same with the motion score on frames at twice the model size, up 1;
- ``model``, ``source``: the motion scores alone.

Label-free choice, as "The larger of f2 and the motion score" (docs/discriminator.md): on the run's
held-out normal clips, windows of 9 frames against the same windows with a gliding copy of their largest
figure (fast, across, back, oscillate, stand; ``stvad.data.pseudo.glide_windows``), made on the frames at
twice the model size and resized to the model size (``cv2.INTER_AREA``) for ``f2`` and the model-size
flow, so both candidates judge the same pseudo-anomalies. The rule is in docs/discriminator.md ("The
flow from the source's pixels"), fixed before any of its numbers. Test AUROCs are read after.
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

from glide_rule import HELD, five, glide_aurocs, passes, spread_background, test_aurocs
from stvad._io import atomic_write_json
from stvad.data.layouts import open_dataset
from stvad.data.pseudo import PseudoSpec, glide_windows, moving_side
from stvad.data.pseudo import background as scene
from stvad.data.synth_events import read_events
from stvad.data.windows import split_train_val
from stvad.engine import Scorer
from stvad.motion import SWAY, MotionModel

STILL = 12.0  # the default's still term
CONFIGS = {"f2|[model]": ("f2", "model"), "f2|[source]": ("f2", "source"), "model": ("model",),
           "source": ("source",), "f2": ("f2",)}  # fmt: skip


def shrink(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (n, h, w, C) -> (n, H, W, C) at ``size``, as the loader resizes (INTER_AREA)."""
    out = [cv2.resize(f, (size[1], size[0]), interpolation=cv2.INTER_AREA) for f in frames]
    return np.stack(out).reshape(len(frames), *size, frames.shape[-1])


def window_score(motion: MotionModel, w: np.ndarray, bg: np.ndarray) -> float:
    """The motion score of a window's last frame with the flows (and frames) before it in the window."""
    flows = [motion.flow(w[i - 1], w[i]) for i in range(1, len(w))]
    return motion.score_flows(flows, list(w), bg)[0]


def summary(files: list[str]) -> None:
    """Per set: the mean of the five glides / test AUROC; the rule's pass for ``f2|[source]``."""
    res = {Path(f).stem.removeprefix("motion_resolution_"): json.loads(Path(f).read_text()) for f in files}
    print("| configuration | " + " | ".join(res) + " | passes |")
    print("|" + "---|" * (len(res) + 2))
    base = {n: r["configs"]["f2|[model]"] for n, r in res.items()}
    for c in CONFIGS:
        rows = {n: r["configs"][c] for n, r in res.items()}
        n_pass = sum(passes(rows[n], base[n]) for n in res)
        cells = [f"{100 * five(x):.2f} / {100 * x['test']['all']:.1f}" for x in rows.values()]
        print(f"| `{c}` | " + " | ".join(cells) + f" | {'—' if c == 'f2|[model]' else n_pass} |")


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
    size, C, T, norm, K = cfg.data.size, cfg.data.channels, cfg.data.T, cfg.score.normalisation, SWAY
    big = (2 * size[0], 2 * size[1])
    ds = open_dataset(a.data)
    train, val = split_train_val(ds.train, cfg.data.val_fraction, T=T)

    def hi(src, start=0, stop=None):
        return np.stack(list(src.frames(big, C, start=start, stop=stop)))

    models = {
        "model": MotionModel(size, still=STILL).fit(scorer.frames(*c) for c in train),
        "source": MotionModel(big, up=1, still=STILL).fit(hi(*c) for c in train),
    }
    print(f"models fitted at {time.time() - t0:.0f} s", file=sys.stderr)

    side = moving_side([hi(*c) for c in train])
    spec = PseudoSpec(speeds=(2, 3), box=(0.75 * side, 1.25 * side))
    held: dict = {"normal": {}, **{g: {} for g in HELD}}
    for ci, (src, start, stop) in enumerate(val):
        fr = hi(src, start, stop)
        whole = hi(src, 0, None)
        bg = {"source": spread_background(whole), "model": spread_background(shrink(whole, size))}
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
            lo = shrink(wins.reshape(-1, *big, C), size).reshape(len(wins), K + 1, *size, C)
            rec = {"f2": scorer.score_many(lo[:, -T - 1 : -1], lo[:, -1], 32)[0]["f2"]}
            rec["model"] = np.array([window_score(models["model"], w, bg["model"]) for w in lo])
            rec["source"] = np.array([window_score(models["source"], w, bg["source"]) for w in wins])
            held[g][ci] = rec
    print(f"held-out scored at {time.time() - t0:.0f} s", file=sys.stderr)

    scales = {}
    for key in ("f2", "model", "source"):
        x = np.concatenate([held["normal"][c][key] for c in held["normal"]])
        scales[key] = (float(x.mean()), float(x.std() + 1e-12))

    def combine(rec, name):
        terms = [(rec[k] - scales[k][0]) / scales[k][1] for k in CONFIGS[name]]
        return functools.reduce(np.maximum, terms)

    crit = glide_aurocs(held, combine, CONFIGS, norm)

    # test videos, read after the criterion is computed
    recs, labels, index = [], [], []
    for v in ds.test:
        lo = np.stack(list(scorer.frames(v.source)))
        sc = scorer.score_frames(iter(lo), name=v.name)
        first = int(sc.index[0])
        rec = {"f2": sc.scores["f2"]}
        for key, fr in (("model", lo), ("source", hi(v.source))):
            got = models[key].score_clip(list(fr), first=first, bg=spread_background(fr))
            rec[key] = np.asarray(got)[np.asarray(sc.index) - first]
        recs.append(rec)
        labels.append(np.asarray(v.labels)[sc.index])
        index.append(sc.index)
    print(f"test scored at {time.time() - t0:.0f} s", file=sys.stderr)
    tests = test_aurocs(CONFIGS, recs, labels, index, ds.test, read_events(a.data), norm, combine)
    out = {}
    for name, test in tests.items():
        out[name] = {"glides": crit[name], "five": five({"glides": crit[name]}), "test": test}
        print(
            f"{name:14} five {100 * out[name]['five']:6.2f}  "
            + " ".join(f"{g} {100 * crit[name][g]:.1f}" for g in HELD)
            + "  | test "
            + " ".join(f"{k} {100 * x:.1f}" for k, x in test.items())
        )
    if a.json:
        atomic_write_json(
            Path(a.json),
            {
                "command": "python experiments/motion_resolution.py "
                + " ".join(sys.argv[1:] if argv is None else argv),
                "run": a.run,
                "data": a.data,
                "step": scorer.engine.step,
                "flow_sizes": {"model": [s * 2 for s in size], "source": list(big)},
                "pseudo": spec.to_dict(),
                "note": "the mean of the five held-out glides chooses; test AUROCs read after",
                "configs": out,
                "standardisers": scales,
                "seconds": time.time() - t0,
            },
        )


if __name__ == "__main__":
    main()
