"""Probe: how alarm thresholds fitted on held-out clips scored one way hold on normal test frames scored
another (why ``stvad.calibration.calibrate`` scores held-out clips as files).

    python experiments/alarm_modes.py RUN DATA [--quantile 0.99] [--json FILE]

The still term judges a frame against a background. A file is judged against its own median
(``WindowEngine.whole_source``), a live stream against a running median that starts cold at its first
frame. Three calibrations on the run's held-out normal clips (the alarms' scoring, ``ALARM_SCORE``):

- ``stream_cold``: each clip a fresh stream (what ``calibrate`` did before);
- ``file``: each clip against its whole training video's median (what ``calibrate`` does now, and how
  ``fit_motion`` standardises the flow score);
- ``stream_warm``: each clip a stream started 240 frames earlier, so its running median is warm.

For each, the fraction of the test set's *normal* frames (labels read only to pick normal frames) above
the threshold, the test videos scored as files and as fresh streams. With a calibrated 0.99 quantile the
ideal is about 0.01; the gap above it is false alarms.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from stvad._io import atomic_write_json
from stvad.calibration import ALARM_SCORE, fit_motion
from stvad.data.layouts import open_dataset
from stvad.engine import Scorer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("data", type=Path)
    ap.add_argument("--quantile", type=float, default=0.99)
    ap.add_argument("--lead", type=int, default=240, help="frames a warm stream starts before its clip")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    sc = Scorer.from_run(a.run)
    sc.cfg = sc.cfg.with_score(list(ALARM_SCORE))
    fit_motion(a.run, score_sets=[ALARM_SCORE], scorer=sc)
    v = sc.cfg.score.variant

    def stream(src, start=0, stop=None):
        return sc.score_frames(sc.frames(src, start, stop)).scores[v]

    def file(src, start=0, stop=None):
        return sc.score_source(src, start=start, stop=stop).scores[v]

    def warm(src, start, stop):
        s0 = max(0, start - a.lead)
        got = sc.score_frames(sc.frames(src, s0, stop))
        return got.scores[v][got.index >= start - s0 + sc.T]  # the clip's own scored frames

    cals = {}
    for name, how in (("stream_cold", stream), ("file", file), ("stream_warm", warm)):
        x = np.concatenate([how(*c) for c in sc.heldout_clips()])
        thr = float(np.quantile(x, a.quantile))
        cals[name] = {"threshold": thr, "mean": float(x.mean()), "frames": x.size}
    test = {}
    for mode in ("file", "stream"):
        normal = []
        for vid in open_dataset(a.data).test:
            got = sc.score_source(vid.source) if mode == "file" else sc.score_frames(sc.frames(vid.source))
            normal.append(got.scores[v][np.asarray(vid.labels)[got.index] == 0])
        normal = np.concatenate(normal)
        test[mode] = {"normal_frames": normal.size, "normal_mean": float(normal.mean())}
        test[mode]["above"] = {k: float((normal > c["threshold"]).mean()) for k, c in cals.items()}
    res = {
        "run": str(a.run),
        "data": str(a.data),
        "variant": v,
        "quantile": a.quantile,
        "calibrations": cals,
        "test_normal_frames_scored_as": test,
    }
    print(json.dumps(res, indent=1))
    if a.json:
        atomic_write_json(a.json, res)


if __name__ == "__main__":
    main()
