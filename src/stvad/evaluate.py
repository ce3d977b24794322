"""``stvad eval``: score every test frame of a benchmark once, measure it, and write the table and report.

Protocol (recorded in the JSON): the first T frames of each video have no prediction and are dropped;
frame labels come from the benchmark's own ground truth; scores are normalised per video (min-max, the
FFP/MNAD convention), globally by the maximum (the paper's eq. 6) or not at all; temporal smoothing is
off unless a sigma is given, and then reported separately. Test labels are used only here, to measure.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from stvad._io import atomic_write_json, check_writable
from stvad.calibration import fit_motion, read_calibration
from stvad.checkpoint import validation_rows
from stvad.data.layouts import Dataset, Video, open_dataset
from stvad.data.synth_events import event_types, read_events
from stvad.engine import COPY_LAST, Scorer, SourceScores, no_motion_model, run_folder
from stvad.errors import StvadError
from stvad.metrics import auroc_micro, evaluate_scores, pixel_auroc
from stvad.report import TopFrame, table_markdown, top_frames, write_report
from stvad.scoring import NEEDS_FLOW, NORMALISATIONS, VARIANTS, postprocess

BASELINE = "ffp-baseline"
ROW_ORDER = (*VARIANTS, BASELINE, COPY_LAST)
COMPARED = ("full", "only-stn", "dmap", "f2")  # the rows another run (``compare_runs``) adds, each tagged


def _rows(scores: dict) -> list[str]:
    """Table order: this run's variants, the baseline, the floor, then the rows of compared runs."""
    return [r for r in ROW_ORDER if r in scores] + [r for r in scores if r not in ROW_ORDER]


def compared_row(variant: str, tag: str) -> str:
    return f"{variant} [{tag}]"


def _labels(video: Video, index: np.ndarray) -> np.ndarray:
    if video.labels is None:
        raise StvadError(
            f"test video {video.name} has no frame labels to evaluate against", video.source.path
        )
    return np.asarray(video.labels)[index].astype(np.uint8)


PIXELS_PER_FRAME = 4096  # the pixel AUROC's sample of each frame: all of them at the cpu preset's 64x64


def _pixel_auroc(videos: list[Video], scored: list[SourceScores], own: bool = False) -> float | None:
    """Pooled pixel AUROC of the scored maps (``own``: those of the engine's score, else ``maps``) against
    the masks, both at model resolution."""
    if not videos or any(v.masks is None for v in videos):
        return None

    def pairs():
        for v, s in zip(videos, scored):
            maps = s.own_maps if own else s.maps
            h, w = maps.shape[1:]
            for k, i in enumerate(s.index):
                mask = cv2.resize(
                    np.asarray(v.masks[int(i)], np.uint8), (w, h), interpolation=cv2.INTER_NEAREST
                )
                yield maps[k].astype(np.float32), mask

    maps, masks = zip(*pairs())
    return pixel_auroc(maps, masks, pixels_per_frame=PIXELS_PER_FRAME)


def _results(
    scores: dict[str, list[np.ndarray]], labels: list[np.ndarray], primary: str, sigma: float
) -> dict[str, dict]:
    by_norm = evaluate_scores(scores, labels, NORMALISATIONS, sigma=sigma)
    out = {}
    for variant in _rows(by_norm):
        m = by_norm[variant][primary]
        out[variant] = {
            "auroc_micro": m["auroc_micro"],
            "auroc_macro": m["auroc_macro"],
            "aupr": m["aupr"],
            "eer": m["eer"],
            "by_normalisation": by_norm[variant],
        }
    return out


def by_event_type(
    events: list[dict], videos: list[Video], index: list[np.ndarray], scores: dict, labels: list, primary: str
) -> dict[str, dict]:
    """Micro AUROC of every row on each anomaly type alone: that type's anomalous frames against all
    normal frames, scores normalised as in the main table. Says which kinds of anomaly a scorer misses."""
    types = [event_types(events, v.name, idx) for v, idx in zip(videos, index)]
    t_all, y_all = np.concatenate(types), np.concatenate(labels).astype(bool)
    kinds = sorted({k for k in t_all[y_all] if k})
    out: dict[str, dict] = {"frames": {k: int(((t_all == k) & y_all).sum()) for k in kinds}}
    for row in _rows(scores):
        s_all = np.concatenate(postprocess(scores[row], primary, 0.0))
        out[row] = {}
        for k in kinds:
            keep = ~y_all | (t_all == k)
            out[row][k] = auroc_micro([s_all[keep]], [y_all[keep]])
    return out


def _type_table(by_type: dict[str, dict]) -> str:
    kinds = list(by_type["frames"])
    head = ["variant", *(f"{k} ({by_type['frames'][k]})" for k in kinds)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row, per in by_type.items():
        if row != "frames":
            lines.append("| " + " | ".join([row, *(f"{100 * per[k]:.1f}" for k in kinds)]) + " |")
    return "\n".join(lines) + "\n"


def evaluate(
    run: str | os.PathLike,
    data: str | os.PathLike,
    baseline_run: str | os.PathLike | None = None,
    json_path: str | os.PathLike | None = None,
    report_dir: str | os.PathLike | None = None,
    smoothing_sigma: float | None = None,
    layout: str | None = None,
    batch_size: int = 16,
    progress: bool = True,
    score_set: Sequence[str] = (),
    compare_runs: Sequence[str | os.PathLike] = (),
) -> dict[str, Any]:
    """Evaluate ``run`` on the test split of ``data``; returns the JSON dict plus ``table`` (Markdown).

    ``compare_runs`` are other runs on the same data (the paper-faithful twin of a default run, say):
    each adds its ``full``, ``only-stn``, ``dmap`` and ``f2`` rows, tagged with its preset (or its
    folder's name when two share one), so one table holds both detectors.

    ``score_set`` are ``score.KEY=VALUE`` changes to how the run (and the baseline) is scored, such as
    ``score.aggregate=patch-max``; they are recorded in the protocol's ``score``.
    """
    if json_path is not None:
        check_writable(json_path)
    if report_dir is not None:
        check_writable(report_dir, folder=True)
    scorer = Scorer.from_run(run, batch_size=batch_size)
    scorer.cfg = cfg = scorer.cfg.with_score(score_set)
    if cfg.score.variant in NEEDS_FLOW and scorer.engine.motion is None:
        raise no_motion_model(cfg.score.variant, run)
    if "f2+flow" in scorer.variants:  # its f2 standardiser for this scoring, fitted once on held-out clips
        fit_motion(run_folder(run), score_sets=[score_set], scorer=scorer)
    ds: Dataset = open_dataset(data, layout=layout or cfg.data.layout)
    if not ds.test:
        raise StvadError("no test videos found", ds.root)
    videos = ds.test
    for v in videos:  # fail before the long scoring pass, not after it
        if v.labels is None:
            raise StvadError(f"test video {v.name} has no frame labels to evaluate against", v.source.path)
        if len(v.source) <= scorer.T:
            raise StvadError(
                f"test video {v.name} has {len(v.source)} frames: a score needs T = {scorer.T} frames before "
                f"the one judged, so at least {scorer.T + 1}",
                v.source.path,
            )
    want_maps = report_dir is not None or all(v.masks is not None for v in videos)

    scored = [scorer.score_source(v.source, keep_maps=want_maps, progress=progress) for v in videos]
    labels = [_labels(v, s.index) for v, s in zip(videos, scored)]
    scores = {k: [s.scores[k] for s in scored] for k in (*scorer.variants, COPY_LAST)}

    if baseline_run is not None:
        base = Scorer.from_run(baseline_run, batch_size=batch_size, variants=("psnr",))
        base.cfg = base.cfg.with_score(score_set)
        if base.T != scorer.T:
            raise StvadError(f"baseline uses T={base.T} but the run uses T={scorer.T}", baseline_run)
        scores[BASELINE] = [base.score_source(v.source, progress=progress).scores["psnr"] for v in videos]

    others = [Scorer.from_run(r, batch_size=batch_size, variants=COMPARED) for r in compare_runs]
    presets = [o.cfg.preset for o in others]
    for r, other, preset_name in zip(compare_runs, others, presets):
        other.cfg = other.cfg.with_score(score_set)
        if other.T != scorer.T:
            raise StvadError(f"the compared run uses T={other.T} but the run uses T={scorer.T}", r)
        unique = presets.count(preset_name) == 1 and preset_name != cfg.preset
        tag = preset_name if unique else run_folder(r).name
        got = [other.score_source(v.source, progress=progress) for v in videos]
        for variant in COMPARED:
            scores[compared_row(variant, tag)] = [g.scores[variant] for g in got]

    primary = cfg.score.normalisation
    results = _results(scores, labels, primary, 0.0)
    pix = _pixel_auroc(videos, scored) if want_maps else None
    if pix is not None:
        results["full"]["pixel_auroc"] = pix
    # the maps of the run's own score, where they are not full's: the same pass keeps both
    variant, own_pix = cfg.score.variant, pix
    if want_maps and variant != "full":
        own_pix = _pixel_auroc(videos, scored, own=True)
        if own_pix is not None:
            results[variant]["pixel_auroc"] = own_pix
    sigma = smoothing_sigma if smoothing_sigma is not None else cfg.score.smoothing_sigma
    smoothed = _results(scores, labels, primary, sigma) if sigma > 0 else None

    protocol = {
        "dataset": str(Path(ds.root).resolve()),
        "layout": ds.layout,
        "label_source": ds.label_source,
        "test_videos": len(videos),
        "scored_frames": int(sum(len(s.index) for s in scored)),
        "anomalous_frames": int(sum(int(lab.sum()) for lab in labels)),
        "frames_dropped_per_video": scorer.T,
        "normalisation": primary,
        "normalisations": list(NORMALISATIONS),
        "smoothing_sigma": 0.0,
        "smoothed_sigma": sigma if smoothed else None,
        "resolution": list(cfg.data.size),
        "channels": cfg.data.channels,
        "score": cfg.score.__dict__ | {"variant": "all"},
        "macro_rule": "mean of per-video AUROCs; videos with a single class are excluded (count recorded)",
        "checkpoint": str(scorer.run.meta.get("checkpoint", run)),
        "step": scorer.run.meta.get("step"),
        "baseline_checkpoint": str(baseline_run) if baseline_run else None,
        "compared_runs": [str(r) for r in compare_runs],
        "torch": torch.__version__,
        "machine": platform.platform(),
    }
    table = table_markdown({k: v["by_normalisation"] for k, v in results.items()}, primary=primary)
    if pix is not None:
        maps = f"full anomaly map: {100 * pix:.1f}"
        if own_pix is not None and variant != "full":
            maps = f"{variant} anomaly map (the run's score): {100 * own_pix:.1f}; of the {maps}"
        table += (
            f"\nPixel-level AUROC against the masks of the {maps} (at model resolution, pooled over "
            f"frames, at most {PIXELS_PER_FRAME} random pixels of each, seed 0)\n"
        )
    if smoothed:
        table += f"\nWith temporal Gaussian smoothing, sigma = {sigma:g} frames:\n\n"
        table += table_markdown({k: v["by_normalisation"] for k, v in smoothed.items()}, primary=primary)
    events = read_events(ds.root)
    if events is not None:
        by_type = by_event_type(events, videos, [s.index for s in scored], scores, labels, primary)
        table += "\nMicro AUROC by anomaly type (that type's frames against all normal frames; frame counts "
        table += f"in brackets), {primary}:\n\n" + _type_table(by_type)
    out: dict[str, Any] = {"protocol": protocol, "results": results}
    if events is not None:
        out["by_event_type"] = by_type
    if smoothed:
        out["results_smoothed"] = smoothed
    if json_path is not None:
        atomic_write_json(json_path, out)
    if report_dir is not None:
        head = results[variant]["by_normalisation"][primary]
        headline = [
            f"{cfg.preset} preset, {variant} score: frame-level micro AUROC {100 * head['auroc_micro']:.1f}, "
            f"macro {100 * head['auroc_macro']:.1f} ({primary}, first {scorer.T} frames of each video cut)",
            *([f"pixel-level AUROC of its anomaly map: {100 * own_pix:.1f}"] if own_pix is not None else []),
        ]
        out["report"] = str(
            _write_report(report_dir, run, scorer, videos, scored, scores, labels, table, protocol, headline)
        )
    out["table"] = table
    return out


def _write_report(report_dir, run, scorer, videos, scored, scores, labels, table, protocol, headline) -> Path:
    """Timelines on the calibrated raw scale when the run has a threshold, else per-video min-max."""
    cal = read_calibration(run)
    variant = scorer.cfg.score.variant
    if cal is not None and cal.get("variant") == variant:
        shown = {k: [np.asarray(x) for x in v] for k, v in scores.items()}
        threshold = cal["threshold"]
    else:
        shown = {k: postprocess(v, scorer.cfg.score.normalisation) for k, v in scores.items()}
        threshold = None
    items = []
    for vi, pos in top_frames(shown[variant], k=6):
        v, s = videos[vi], scored[vi]
        i = int(s.index[pos])
        frame = next(scorer.frames(v.source, i, i + 1))
        mask = None if v.masks is None else np.asarray(v.masks[i])
        amap = s.own_maps[pos].astype(np.float32)  # the map of the score the frames are ranked by
        items.append(TopFrame(v.name, i, float(shown[variant][vi][pos]), frame, amap, mask))
    return write_report(
        report_dir,
        [v.name for v in videos],
        shown,
        labels,
        primary=variant,
        threshold=threshold,
        first_frames=[int(s.index[0]) if len(s.index) else 0 for s in scored],
        top=items,
        table=table,
        protocol=protocol,
        health=validation_rows(run),
        headline=headline,
        # the ROC legend's AUROCs under the headline's normalisation, whatever scale the timelines use
        roc_scores={k: postprocess(v, scorer.cfg.score.normalisation) for k, v in scores.items()},
    )
