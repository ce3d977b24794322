"""Probe: the still term of a live stream (a running background) against a whole file's (its median).

    python experiments/stream_background.py RUN DATA --set score.fusion=max [--json FILE]

A file is scored against the median of its frames (``Scorer.score_source``); a stream does not know its
future, so the engine keeps a running median of frames sampled every 5 (48 kept,
``stvad.motion.RunningBackground``), which starts from the stream's first frame: someone standing there
at the start is background until the median has forgotten them, and where they were becomes a still
"figure" (a ghost) once they walk off. This measures what that costs, each video scored as a fresh stream,
and the candidate of docs/discriminator.md ("A stream's background"): a running median that starts from
the training scene's background (the median of up to 400 training frames; the engine's running median
patched for it):

- label-free, on the run's held-out normal clips (each a fresh stream from its first frame): the motion
  score's mean and 99th percentile, file against stream (a ghost raises normal scores, so alarms);
- on the test videos, read to measure only: micro AUROC (per-video min-max) of ``f2+flow`` and ``flow``.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import numpy as np
import torch

import stvad.engine
from stvad._io import atomic_write_json
from stvad.data.layouts import open_dataset
from stvad.engine import BACKGROUND_FRAMES, Scorer
from stvad.metrics import auroc_micro
from stvad.motion import RunningBackground
from stvad.scoring import postprocess

KEYS = ("f2+flow", "flow")


MODES = ("file", "stream", "scene")


class SceneBackground(RunningBackground):
    """The candidate: the package's running median, starting with ``keep // 2`` copies of ``prior``."""

    def __init__(self, every: int = 5, keep: int = 48, prior: np.ndarray | None = None):
        super().__init__(every, keep)
        self.frames.extend([prior] * (keep // 2))


def both(
    scorer: Scorer, source, scene: np.ndarray, start: int = 0, stop: int | None = None
) -> dict[str, dict]:
    """One source's scores against its whole median ("file"), as a fresh stream ("stream"), and as a fresh
    stream whose running median starts from the training scene's background ("scene")."""
    out = {}
    engine = scorer.engine
    for how in MODES:
        engine.reset()
        engine.background = scorer.source_background(source) if how == "file" else None
        # the engine builds its running median at a stream's first frames
        stvad.engine.RunningBackground = (
            functools.partial(SceneBackground, prior=scene) if how == "scene" else RunningBackground
        )
        try:
            sc = scorer.score_frames(scorer.frames(source, start, stop), name=source.name)
        finally:
            engine.background, stvad.engine.RunningBackground = None, RunningBackground
        out[how] = {"index": np.asarray(sc.index), **{k: np.asarray(sc.scores[k]) for k in KEYS}}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("data")
    ap.add_argument("--json")
    ap.add_argument("--set", action="append", default=[], metavar="score.KEY=VALUE", help="scoring override")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    scorer = Scorer.from_run(a.run, variants=KEYS)
    scorer.cfg = scorer.cfg.with_score(a.set)
    if not scorer.engine.motion or not scorer.engine.motion.frames_needed:
        sys.exit(f"{a.run}: its motion model has no still term (stvad fit-motion RUN --still 12 --refit)")
    norm = scorer.cfg.score.normalisation
    # the training scene: the median of up to 400 training frames spread over the run's training clips
    train = scorer.clips()[0]
    every = [(c, i) for c in train for i in range(c[1], c[2])]
    picks = {every[int(j)] for j in np.linspace(0, len(every) - 1, min(len(every), BACKGROUND_FRAMES))}
    scene = np.median(
        [f for c in train for i, f in enumerate(scorer.frames(*c), c[1]) if (c, i) in picks], axis=0
    )
    scene = scene.astype(np.uint8)
    res: dict = {"heldout": {}, "test": {}}
    val = scorer.heldout_clips()
    got = [both(scorer, c[0], scene, c[1], c[2]) for c in val]
    for how in MODES:
        x = np.concatenate([g[how]["flow"] for g in got])
        res["heldout"][how] = {"flow_mean": float(x.mean()), "flow_p99": float(np.quantile(x, 0.99))}
    f = res["heldout"]["file"]
    for how in MODES[1:]:  # the rule's measure: the relative gaps of the mean and the 99th percentile
        r = res["heldout"][how]
        r["gap"] = abs(r["flow_mean"] / f["flow_mean"] - 1) + abs(r["flow_p99"] / f["flow_p99"] - 1)
    ds = open_dataset(a.data)
    per = [both(scorer, v.source, scene) for v in ds.test]
    labels = [np.asarray(v.labels)[p["file"]["index"]] for v, p in zip(ds.test, per)]
    for how in MODES:
        res["test"][how] = {k: auroc_micro(postprocess([p[how][k] for p in per], norm), labels) for k in KEYS}
    for part in res.values():
        for how, row in part.items():
            print(f"{how:7} " + " ".join(f"{k} {v:.4g}" for k, v in row.items()))
    if a.json:
        atomic_write_json(
            Path(a.json),
            {
                "command": "python experiments/stream_background.py "
                + " ".join(sys.argv[1:] if argv is None else argv),
                "run": a.run,
                "data": a.data,
                "note": "held-out rows are label-free; test AUROCs measure only",
                **res,
                "seconds": time.time() - t0,
            },
        )


if __name__ == "__main__":
    main()
