"""Diagnosis (test labels read): where a flow over a longer span wins or loses against the one-frame flow.

    python experiments/flow_span_check.py DATA --preset ped2 [--spans 1 4] [--json FILE]

Written after the span rule's probe (docs/discriminator.md, "Flow over the window") found that the held-out
glides prefer the flow from the window's first past frame (span 4) on Ped2 while the test set does not.
For each span, the package's flow model (stvad.motion, DIS medium at x2, per-cell prior, window-1/8
score) fitted on the flows of that span of the training clips (the held-out tails of the preset's split
left out), then on the test videos: the micro AUROC (per-video min-max) and each video's AUROC, and,
against the 0.99 quantile of the held-out normal frames' scores, the share of the test set's normal frames
and of its anomalous frames above it (raw scores: no test-set normalisation), so that a loss can be told
apart as false alarms on normal frames or as misses on anomalous ones. ``--hold-videos K`` leaves the
last K training videos out of the fit and reports, label-free, the share of their frames above the same
quantile: whether whole normal videos the prior never saw shift as the test set's normal frames do.
Each group's mean number of moving flow pixels a frame (a term above 0) says how much moves in it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from probe_data import preset_split, set_parser  # experiments/ is on sys.path when run as a script
from stvad._io import atomic_write_json
from stvad.metrics import auroc_micro
from stvad.motion import MotionModel, frame_score
from stvad.scoring import postprocess


def span_scores(
    mm: MotionModel, frames: list[np.ndarray], span: int, first: int
) -> tuple[np.ndarray, np.ndarray]:
    """The flow scores of frames ``first`` .. end, and how many flow pixels of each move (a term > 0)."""
    terms = [mm.prior.terms(mm.flow(frames[i - span], frames[i])) for i in range(first, len(frames))]
    return np.array([frame_score(t, mm.patch) for t in terms]), np.array([(t > 0).sum() for t in terms])


def main(argv=None) -> None:
    ap = set_parser(__doc__, "ped2")
    ap.add_argument("--spans", nargs="+", type=int, default=[1, 4])
    ap.add_argument(
        "--hold-videos",
        type=int,
        default=0,
        help="leave the last K training videos out of the fit, score them whole",
    )
    a = ap.parse_args(argv)
    cfg, ds, train, val, clip = preset_split(a.data, a.preset)
    size, T, ch = tuple(cfg.data.size), cfg.data.T, cfg.data.channels
    unseen = [v.source for v in ds.train[len(ds.train) - a.hold_videos :]] if a.hold_videos else []
    train = [c for c in train if all(c[0] is not u for u in unseen)]
    val = [c for c in val if all(c[0] is not u for u in unseen)]
    unseen_frames = [list(u.frames(size, ch)) for u in unseen]

    train_frames = [clip(c) for c in train]
    val_frames = [clip(c) for c in val]
    tests = [
        (v.name, list(v.source.frames(size, ch)), np.asarray(v.labels)[T:].astype(np.uint8)) for v in ds.test
    ]
    labels = [y for _, _, y in tests]
    out = {}
    for span in a.spans:
        mm = MotionModel(size)
        for fr in train_frames:
            for i in range(span, len(fr)):
                mm.prior.fit(mm.flow(fr[i - span], fr[i]))
        mm.prior.finish()
        held_sm = [span_scores(mm, fr, span, T) for fr in val_frames]
        held = np.concatenate([h[0] for h in held_sm])
        q99 = float(np.quantile(held, 0.99))
        test_sm = [span_scores(mm, fr, span, T) for _, fr, _ in tests]
        scores = [t[0] for t in test_sm]
        moving = np.concatenate([t[1] for t in test_sm])
        s, y = np.concatenate(scores), np.concatenate(labels).astype(bool)
        per_video = {
            name: auroc_micro(postprocess([sc], "per-video-minmax"), [lab])
            for (name, _, lab), sc in zip(tests, scores)
            if 0 < lab.sum() < len(lab)
        }
        out[f"span{span}"] = {
            "micro_auroc": auroc_micro(postprocess(scores, "per-video-minmax"), labels),
            "micro_auroc_raw": auroc_micro(scores, labels),
            "per_video_auroc": per_video,
            "held_out_q99": q99,
            "normal_above_q99": float((s[~y] > q99).mean()),
            "anomalous_above_q99": float((s[y] > q99).mean()),
            "moving_flow_pixels_per_frame": {
                "held_out_tails": float(np.concatenate([h[1] for h in held_sm]).mean()),
                "test_normal": float(moving[~y].mean()),
                "test_anomalous": float(moving[y].mean()),
            },
        }
        if unseen_frames:  # label-free: whole normal videos the prior never saw, against the tails' quantile
            u_sm = [span_scores(mm, fr, span, T) for fr in unseen_frames]
            u = np.concatenate([x[0] for x in u_sm])
            out[f"span{span}"]["unseen_videos_above_q99"] = float((u > q99).mean())
            out[f"span{span}"]["moving_flow_pixels_per_frame"]["unseen_videos"] = float(
                np.concatenate([x[1] for x in u_sm]).mean()
            )
        r = out[f"span{span}"]
        print(
            f"span {span}: micro {100 * r['micro_auroc']:.1f} (raw {100 * r['micro_auroc_raw']:.1f}); "
            f"above the held-out q99: normal {100 * r['normal_above_q99']:.1f}%, "
            f"anomalous {100 * r['anomalous_above_q99']:.1f}%"
            + (f", unseen normal videos {100 * r['unseen_videos_above_q99']:.1f}%" if unseen_frames else ""),
            file=sys.stderr,
        )
        print(f"  moving flow pixels a frame: {r['moving_flow_pixels_per_frame']}", file=sys.stderr)
        print("  per video: " + " ".join(f"{k} {100 * v:.1f}" for k, v in per_video.items()), file=sys.stderr)
    if a.json:
        atomic_write_json(
            Path(a.json),
            {
                "command": "python experiments/flow_span_check.py "
                + " ".join(sys.argv[1:] if argv is None else argv),
                "note": "diagnosis with test labels, after the span rule's probe; nothing is chosen on it",
                "held_videos": [str(u.path) for u in unseen],
                "spans": out,
            },
        )


if __name__ == "__main__":
    main()
