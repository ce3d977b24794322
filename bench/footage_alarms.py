"""Alarms on normal footage not seen in training: how often does a calibrated run fire where nothing happens?

    python bench/footage_alarms.py                          # ../shared/data/opencv/vtest.avi, cpu preset
    python bench/footage_alarms.py --video CLIP --train-frames 500 --synth runs/bench-demo

Walks the path a user takes with one video file: the first --train-frames frames become a normal training
video (an MJPG .avi written beside the run), `stvad train`'s library call trains the preset on it and
calibrates the threshold (quantile 0.99 of the held-out tail's scores), and the rest of the clip, never
seen in training and as normal as the first part, is scored. It reports the fraction of those frames
above the threshold (about 1% if the threshold carries over) and the events per minute, raw (every run
above the threshold) and with the event settings of `stvad watch` (minimum length, merging of gaps).
With --synth RUN_PARENT (a `bench/demo.py` output folder: RUN_PARENT/run and RUN_PARENT/data) it also
reports the fraction of the synthetic set's normal test frames above that run's threshold.

How alarms score a frame is chosen here, on normal footage: each candidate (the frame sum of equation 4,
or the worst window of side 1/8, 1/4 or 1/2 of the frame; ``--candidates``) is calibrated on the run's
held-out tail (the run's own score variant, scored through the engine with the candidate's
aggregation, as the alarms would) and judged by the fraction of the held-out normal footage above its
threshold; with --synth
and --labelled RUN DATA (a benchmark run and its data, such as a Ped2 run) also by the fraction of those
sets' normal test frames above their thresholds and by their micro AUROC without normalisation (as an
alarm sees scores), so that a choice that quiets normal footage is seen to keep its detections. On the
labelled sets the event settings are measured too: the fraction of labelled anomalies that an event
overlaps, how late the first one starts, and the events that overlap no anomalous frame.

Everything is reused when present (the run is resumed if interrupted).
Writes bench/results/footage_alarms.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from stvad._io import atomic_write_json
from stvad.api import Detector, training_root
from stvad.calibration import ALARM_SCORE, calibrate, fit_motion, read_calibration
from stvad.config import preset
from stvad.data.layouts import open_dataset
from stvad.data.sources import open_source
from stvad.engine import Scorer
from stvad.events import MERGE_GAP_S, MIN_EVENT_S, EventTracker
from stvad.metrics import auroc_micro
from stvad.scoring import NEEDS_FLOW
from stvad.train import train

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results" / "footage_alarms.json"
SWEEP_MIN_S = (0.0, 0.3, 0.5, 1.0, 2.0)
SWEEP_GAP_S = (0.0, 0.5, 1.0, 2.0)
CANDIDATES = ("sum", "patch-max:0.125", "patch-max:0.25", "patch-max:0.5")
DEFAULT_CANDIDATE = "patch-max:0.5"  # ALARM_SCORE
LABELLED_FPS = 10.0  # the synthetic set's and UCSD's frame rate


def split_video(video: Path, n_train: int, folder: Path) -> tuple[Path, Path, float]:
    """The first ``n_train`` frames and the rest as two MJPG videos in ``folder`` (kept when present)."""
    head, tail = folder / "normal_train.avi", folder / "normal_heldout.avi"
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    if not (head.exists() and tail.exists()):
        folder.mkdir(parents=True, exist_ok=True)
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        writers = [cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"MJPG"), fps, size) for p in (head, tail)]
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            writers[i >= n_train].write(frame)
            i += 1
        for w in writers:
            w.release()
        if i <= n_train:
            sys.exit(f"error: {video}: {i} frames, not more than --train-frames {n_train}")
    cap.release()
    return head, tail, fps


def event_spans(
    scores: np.ndarray, threshold: float, fps: float, min_s: float, gap_s: float
) -> list[tuple[int, int]]:
    """(first, last) positions in ``scores`` of the events `stvad watch` would raise with these settings."""
    tracker = EventTracker.in_seconds(threshold, fps, min_s, gap_s)
    amap = np.zeros((1, 1), np.float32)
    spans = [tracker.update(i, None, float(s), amap, (1, 1)) for i, s in enumerate(scores)] + [
        tracker.close()
    ]
    return [(e["start_frame"], e["end_frame"]) for e in spans if e is not None]


def events(scores: np.ndarray, threshold: float, fps: float, min_s: float, gap_s: float) -> int:
    return len(event_spans(scores, threshold, fps, min_s, gap_s))


def runs_of_ones(labels: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) positions of each run of 1s: the labelled anomalies of a test video."""
    edges = np.diff(np.r_[0, labels.astype(np.int8), 0])
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1))


def event_settings_on_labels(ts: list[np.ndarray], labels: list[np.ndarray], thr: float, fps: float) -> list:
    """Per event setting, on a labelled test set: the fraction of labelled anomalies (runs of anomalous
    frames) that some event overlaps, its delay (frames from the anomaly's start to the first event on
    it, median), and the events that overlap no anomalous frame, per minute of the set's normal frames."""
    rows = []
    for m in SWEEP_MIN_S:
        for g in SWEEP_GAP_S:
            found, delays, false, normal = 0, [], 0, 0
            n_anom = 0
            for t, lab in zip(ts, labels):
                spans = event_spans(t, thr, fps, m, g)
                anomalies = runs_of_ones(lab)
                n_anom += len(anomalies)
                for a0, a1 in anomalies:
                    hits = [e0 for e0, e1 in spans if e0 <= a1 and e1 >= a0]
                    if hits:
                        found += 1
                        delays.append(max(min(hits) - a0, 0))
                false += sum(not lab[e0 : e1 + 1].any() for e0, e1 in spans)
                normal += int((lab == 0).sum())
            rows.append(
                {
                    "min_event_s": m,
                    "merge_gap_s": g,
                    "anomalies": n_anom,
                    "anomalies_found": found / max(n_anom, 1),
                    "median_delay_frames": float(np.median(delays)) if delays else None,
                    "false_events_per_normal_minute": false / (normal / fps / 60) if normal else None,
                }
            )
    return rows


class CandidateScores:
    """The frame scores of the run's own variant under a candidate's scoring (``sum``, ``patch-max:SIDE``),
    through the engine as alarms score them; a flow score gets its f2 standardiser for each candidate."""

    def __init__(self, run: Path):
        self.run = Path(run)
        variant = Scorer.from_run(run, variants=("only-stn",)).cfg.score.variant
        self.scorer = Scorer.from_run(run, variants=(variant,))
        self.base, self.variant = self.scorer.cfg, variant

    def __call__(self, name: str, clips) -> list:
        """``clips`` (source, first frame, stop) -> each one's SourceScores under candidate ``name``."""
        kind, _, patch = name.partition(":")
        how = [f"score.aggregate={kind}", f"score.patch={float(patch or 0.125)}"]
        self.scorer.cfg = self.base.with_score(how)
        if self.variant in NEEDS_FLOW:
            fit_motion(self.run, score_sets=[how], scorer=self.scorer)
        return [self.scorer.score_frames(self.scorer.frames(src, a, b)) for src, a, b in clips]

    def threshold(self, name: str, q: float) -> float:
        """The candidate's threshold: the ``q`` quantile of its scores on the held-out normal tails."""
        got = self(name, self.scorer.heldout_clips())
        return float(np.quantile(np.concatenate([g.scores[self.variant] for g in got]), q))


def labelled_sweep(run: Path, data: Path, candidates, q: float, fps: float) -> tuple[dict, list]:
    """Per candidate: normal test frames above the threshold fitted on the run's held-out tail, and the
    micro AUROC of the raw scores (no per-video normalisation: an alarm has none); and, for the default
    alarm score, what each event setting finds (:func:`event_settings_on_labels`)."""
    cs = CandidateScores(run)
    videos = open_dataset(data).test
    out, settings = {}, []
    for name in candidates:
        thr = cs.threshold(name, q)
        scored = cs(name, [(v.source, 0, None) for v in videos])
        ts = [s.scores[cs.variant] for s in scored]
        labels = [np.asarray(v.labels)[s.index].astype(np.uint8) for v, s in zip(videos, scored)]
        normal = np.concatenate([t[lab == 0] for t, lab in zip(ts, labels)])
        out[name] = {
            "normal_test_frames": int(normal.size),
            "normal_fraction_above": float((normal > thr).mean()),
            "auroc_micro_raw": float(auroc_micro(ts, labels)),
        }
        if name == DEFAULT_CANDIDATE:
            settings = event_settings_on_labels(ts, labels, thr, fps)
    return out, settings


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", default=str(ROOT.parent / "shared" / "data" / "opencv" / "vtest.avi"))
    p.add_argument("--train-frames", type=int, default=500)
    p.add_argument("--runs", default="runs/footage", help="folder for the split clips and the run")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--synth", default=None, help="a bench/demo.py output folder (RUN_PARENT/run, /data)")
    p.add_argument("--labelled", nargs=2, action="append", default=[], metavar=("RUN", "DATA"))
    p.add_argument("--candidates", nargs="+", default=list(CANDIDATES))
    p.add_argument("--json", default=str(OUT))
    a = p.parse_args()

    folder = Path(a.runs)
    head, tail, fps = split_video(Path(a.video), a.train_frames, folder)
    run = folder / "run"
    cfg = preset(a.preset).override(a.set)
    last = run / "checkpoints" / "last.ckpt"
    if not (run / "DONE").exists():
        train(training_root([head], run), run, cfg, resume=last.exists())
        (run / "DONE").write_text("")
    cal = read_calibration(run)
    if not cal or "score" not in cal:  # none yet, or fitted before alarms had their own scoring
        cal = calibrate(run)
    threshold = float(cal["threshold"])
    scored = Detector.load(run).score(tail)
    minutes = len(scored.score) / fps / 60
    cs = CandidateScores(run)
    sweep = {}
    for name in a.candidates:
        thr = cs.threshold(name, cal["quantile"])
        t = cs(name, [(open_source(tail), 0, None)])[0].scores[cs.variant]
        sweep[name] = {
            "heldout_fraction_above": float((t > thr).mean()),
            "events_per_minute": events(t, thr, fps, MIN_EVENT_S, MERGE_GAP_S) / minutes,
        }
    labelled = [(Path(a.synth) / "run", Path(a.synth) / "data")] if a.synth else []
    labelled += [(Path(r), Path(d)) for r, d in a.labelled]
    event_settings = {}
    for r, d in labelled:
        rows, event_settings[str(d)] = labelled_sweep(r, d, a.candidates, cal["quantile"], LABELLED_FPS)
        for name, row in rows.items():
            sweep[name][str(d)] = row
    result = {
        "video": str(a.video),
        "train_frames": a.train_frames,
        "heldout_frames_scored": int(len(scored.score)),
        "fps": fps,
        "preset": a.preset,
        "overrides": a.set,
        "calibration": cal,
        "heldout_fraction_above": float((scored.score > threshold).mean()),
        "events_per_minute_raw": events(scored.score, threshold, fps, 0, 0) / minutes,
        "events_per_minute": events(scored.score, threshold, fps, MIN_EVENT_S, MERGE_GAP_S) / minutes,
        "event_settings": {"min_event_s": MIN_EVENT_S, "merge_gap_s": MERGE_GAP_S},
        # false events per minute on the normal footage for other settings: what the defaults trade
        "events_per_minute_by_setting": [
            {
                "min_event_s": m,
                "merge_gap_s": g,
                "events_per_minute": events(scored.score, threshold, fps, m, g) / minutes,
            }
            for m in SWEEP_MIN_S
            for g in SWEEP_GAP_S
        ],
        "alarm_score": list(ALARM_SCORE),
        "alarm_score_candidates": sweep,
        "event_settings_on_labelled_sets": event_settings,
        "command": " ".join(["python bench/footage_alarms.py", *sys.argv[1:]]),
    }
    if a.synth:
        srun = Path(a.synth) / "run"
        if "score" not in (read_calibration(srun) or {}):
            calibrate(srun)
        det, sthr = Detector.load(srun), float(read_calibration(srun)["threshold"])
        above, n = 0, 0
        for video in open_dataset(Path(a.synth) / "data").test:
            s = det.score(video.source)
            normal = np.asarray(video.labels)[s.frame] == 0
            above, n = above + int((s.score[normal] > sthr).sum()), n + int(normal.sum())
        result["synthetic_normal_test_frames"] = n
        result["synthetic_normal_fraction_above"] = above / n
    atomic_write_json(a.json, result)
    print(
        f"held-out normal footage: {result['heldout_fraction_above']:.1%} of {len(scored.score)} frames "
        f"above the {cal['quantile']} threshold; {result['events_per_minute_raw']:.1f} events/min raw, "
        f"{result['events_per_minute']:.1f} with min {MIN_EVENT_S} s and gaps {MERGE_GAP_S} s merged"
    )
    print("events per minute on that normal footage, by minimum length (rows) and merged gap (columns), s:")
    print("min \\ gap " + " ".join(f"{g:>6}" for g in SWEEP_GAP_S))
    rows = iter(result["events_per_minute_by_setting"])
    for m in SWEEP_MIN_S:
        print(f"{m:>9} " + " ".join(f"{next(rows)['events_per_minute']:>6.1f}" for _ in SWEEP_GAP_S))
    if a.synth:
        print(
            f"synthetic normal test frames above threshold: {result['synthetic_normal_fraction_above']:.1%}"
        )
    print("alarm scoring candidates (threshold from each one's own calibration):")
    sets = [str(d) for _, d in labelled]
    print(
        "candidate           footage above  events/min"
        + "".join(f"  {Path(d).name}: normal above, AUROC raw" for d in sets)
    )
    for name, row in sweep.items():
        line = f"{name:18} {row['heldout_fraction_above']:>14.1%} {row['events_per_minute']:>11.1f}"
        for d in sets:
            line += f"  {row[d]['normal_fraction_above']:>18.1%} {100 * row[d]['auroc_micro_raw']:>10.1f}"
        print(line)
    for d, rows in event_settings.items():
        print(f"event settings on {d} (default alarm score): anomalies found, median delay, false events/min")
        print("min \\ gap " + " ".join(f"{g:>16}" for g in SWEEP_GAP_S))
        it = iter(rows)
        for m in SWEEP_MIN_S:
            cells = []
            for _ in SWEEP_GAP_S:
                r = next(it)
                delay = "-" if r["median_delay_frames"] is None else f"{r['median_delay_frames']:.0f}"
                cells.append(
                    f"{r['anomalies_found']:>5.0%} {delay:>3} {r['false_events_per_normal_minute']:>6.1f}"
                )
            print(f"{m:>9} " + " ".join(f"{c:>16}" for c in cells))
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
