"""Probe: choose between discriminator configurations on held-out normal clips, without test labels.

    python experiments/choose_d.py NAME=RUN [NAME=RUN ...] [--json experiments/results/choose_d.json]

For each run, on its held-out normal clips (the tail of each training video, the clips that chose its
checkpoint; no test video is read): G's validation PSNR over copy-last at the chosen checkpoint, and the
micro AUROC (per-clip min-max, as the benchmarks normalise) with which each score variant separates
local pseudo-anomalies (``stvad.data.pseudo``: a box sped up 2x, or run backwards in time) from all the
normal windows of the same clips. Neither kind is what ``train.pseudo_skip`` trains D on (the whole frame
k ahead), so a run is not rewarded for recognising its own training fakes. The dmap column says whether
D's map carries the information; full is what the detector scores.

``--glides``: the third criterion's pseudo-anomalies instead (``glide_windows`` fast, across and back: a
figure's copy gliding beside it, no box; speeds 2 and 3), with their mean per variant
(docs/discriminator.md, "A third criterion").
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import numpy as np
import torch

from stvad._io import atomic_write_json
from stvad.checkpoint import read_checkpoint, validation_rows
from stvad.data.layouts import open_dataset
from stvad.data.pseudo import (
    PseudoSpec,
    background,
    glide_windows,
    moving_side,
    reversal_windows,
    speedup_windows,
)
from stvad.data.windows import iter_windows, split_train_val
from stvad.engine import COPY_LAST, Scorer
from stvad.metrics import auroc_micro
from stvad.scoring import VARIANTS, postprocess

KINDS = {"speed-up": speedup_windows, "reversal": reversal_windows}
GLIDES = {f"glide-{k}": functools.partial(glide_windows, kind=k) for k in ("fast", "across", "back")}
SHOWN = ("full", "dmap", "f2", "only-stn", COPY_LAST)


def probe(run: Path, spec: PseudoSpec, kinds: dict) -> dict:
    scorer = Scorer.from_run(run)
    cfg = scorer.cfg
    val = scorer.heldout_clips()
    glides = kinds is GLIDES
    if glides:  # a figure of the scene's moving size, as the third criterion measures it
        ds = open_dataset(scorer.run.meta.get("data_root"), layout=cfg.data.layout)
        train = split_train_val(ds.train, cfg.data.val_fraction, T=cfg.data.T)[0]
        side = moving_side([np.stack(list(scorer.frames(*c))) for c in train])
        spec = PseudoSpec(speeds=(2, 3), box=(0.75 * side, 1.25 * side))
        out_spec = spec.to_dict()
    out: dict = {}
    rows = validation_rows(run)
    best = int(read_checkpoint(run / "checkpoints" / "last.ckpt")["stvad"]["best"]["step"])
    row = next(r for r in rows if int(r["step"]) == best)
    out["best_step"] = best
    out["val_psnr_gain_db"] = row["val_psnr"] - row["val_psnr_copy_last"]
    out["val_d_auc"], out["val_d_pixel_auc"] = row.get("val_d_auc"), row.get("val_d_pixel_auc")
    # each video's background once, not once per kind (it reads the video up to the clip's end)
    bgs = [background(np.stack(list(scorer.frames(src, 0, stop)))) for src, _, stop in val] if glides else []
    for kind, make in kinds.items():
        per_clip: dict[str, list[np.ndarray]] = {}
        labels, n_pseudo = [], 0
        for ci, (src, start, stop) in enumerate(val):
            frames = np.stack(list(scorer.frames(src, start, stop)))
            extra = {"bg": bgs[ci]} if glides else {}
            wins = list(make(frames, scorer.T, spec, clip_seed=ci, **extra))
            if not wins:
                continue
            normal = list(iter_windows(frames, scorer.T))
            past = np.stack([w[1] for w in normal] + [w[2] for w in wins])
            target = np.stack([w[2] for w in normal] + [w[3] for w in wins])
            for k, v in scorer.score_many(past, target, 32)[0].items():
                per_clip.setdefault(k, []).append(v)
            labels.append(np.repeat(np.array([0, 1], np.uint8), [len(normal), len(wins)]))
            n_pseudo += len(wins)
        norm = cfg.score.normalisation
        out[kind] = {k: auroc_micro(postprocess(v, norm), labels) for k, v in per_clip.items()}
        out[kind]["pseudo_windows"] = n_pseudo
    if glides:
        variants = [v for v in out[next(iter(kinds))] if v != "pseudo_windows"]
        out["mean"] = {v: float(np.mean([out[k][v] for k in kinds])) for v in variants}
        out["spec"] = out_spec
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="NAME=RUN")
    p.add_argument("--json", default=str(Path(__file__).resolve().parent / "results" / "choose_d.json"))
    p.add_argument("--glides", action="store_true", help="the third criterion's glides instead of boxes")
    a = p.parse_args()
    torch.set_num_threads(1)
    spec = PseudoSpec()
    kinds = GLIDES if a.glides else KINDS
    results = {}
    for item in a.runs:
        name, _, run = item.partition("=")
        results[name] = {"run": run, **probe(Path(run), spec, kinds)}
    cols = [*kinds, "mean"] if a.glides else list(kinds)
    head = f"{'run':24} {'G dB':>6} " + " ".join(f"{k[-5:] + ' ' + v:>14}" for k in cols for v in SHOWN)
    print(head)
    for name, r in results.items():
        cells = " ".join(f"{100 * r[k][v]:>14.1f}" for k in cols for v in SHOWN)
        print(f"{name:24} {r['val_psnr_gain_db']:>6.2f} {cells}")
    atomic_write_json(
        a.json,
        {"kinds": list(kinds), "spec": spec.to_dict(), "variants": list(VARIANTS), "runs": results},
    )
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
