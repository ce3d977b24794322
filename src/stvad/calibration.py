"""What is fitted on *normal* clips after training (never on test labels): the motion model and the alarm
threshold, with how alarms score.

:func:`fit_motion` fits the flow model of :mod:`stvad.motion` on the run's training clips and the
standardisers of the ``f2+flow`` score on its held-out clips, in ``RUN/motion.json`` (training does it at
its end). :func:`calibrate` scores the run's held-out normal clips (and any normal footage given) through
the scoring engine (:class:`stvad.engine.Scorer`) and stores the threshold in ``RUN/calibration.json``;
:func:`alarm_config` gives every alarm path the scoring the threshold was fitted with.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stvad._io import atomic_write_json
from stvad.config import Config
from stvad.engine import Scorer
from stvad.errors import StvadError
from stvad.motion import MOTION_FILE, MotionModel, scale_key
from stvad.scoring import NEEDS_FLOW, causal_mean

CALIBRATION_FILE = "calibration.json"
# How an alarm scores a frame, fitted with its threshold: the worst window of half the frame's shorter side
# instead of the whole frame's sum (equation 4, which benchmarks keep). A frame sum grows with the number
# of people moving, so a threshold fitted on a quiet stretch of footage fires all through a busy one; the
# worst window measures the most abnormal place. Chosen on normal footage (bench/footage_alarms.py).
ALARM_SCORE = ("score.aggregate=patch-max", "score.patch=0.5")
# what a calibration records and alarms then use (a calibration without a key leaves the run's setting);
# the flow's two only for a score that reads the flow
FLOW_KEYS = ("flow_weight", "fusion")
ALARM_KEYS = ("aggregate", "patch", "causal_window", *FLOW_KEYS)


def fit_motion(
    run_dir: str | os.PathLike,
    score_sets: Sequence[Sequence[str]] = ((), ALARM_SCORE),
    which: str = "best",
    refit: bool = False,
    scorer: Scorer | None = None,
    still: float | None = None,
) -> MotionModel:
    """Fit what the run's motion model lacks and store it in ``RUN/motion.json``; returns the model.

    The prior counts the flows between consecutive frames of the run's training clips (the held-out tails
    left out). The standardisers are the mean and deviation, over the frames of the held-out normal clips
    that get a score, of the flow's score and of ``f2`` for the checkpoint ``which`` and each of
    ``score_sets`` (``score.KEY=VALUE`` lists: by default the run's own scoring and the alarms'). ``still``
    is the still term's threshold (None: the fitted model's, or the run's ``score.still`` for a run without
    one). A model already fitted with the same still term is kept and only missing standardisers are added,
    unless ``refit``.
    """
    run_dir = Path(run_dir)
    # f2 alone, on the modules of the scorer given (which then uses the model fitted here)
    f2 = scorer.alongside(("f2",)) if scorer else Scorer.from_run(run_dir, which=which, variants=("f2",))
    cfg, size = f2.cfg, f2.cfg.data.size
    motion = None if refit else f2.engine.motion
    train, val = f2.clips()
    if still is None:  # the fitted model's own, so that adding a standardiser never drops the term
        still = f2.engine.motion.still if f2.engine.motion is not None else cfg.score.still
    still = float(still)
    # whether there is anything to write
    fitted = motion is None or tuple(motion.size) != tuple(size) or motion.still != still
    if fitted:
        motion = MotionModel(size, still=still).fit(f2.frames(*c) for c in train)
        flow = []
        for src, start, stop in val:
            # the still term against the whole video's background, as a test video is scored
            bg = f2.source_background(src) if motion.frames_needed else None
            flow += motion.score_clip(list(f2.frames(src, start, stop)), first=f2.T, bg=bg)
        motion.scales["flow"] = _mean_sd(flow, val)
    for how in score_sets:
        f2.cfg = cfg.with_score(list(how))
        key = scale_key(f2.cfg.score, f2.engine.step)
        if key not in motion.scales["f2"]:
            got = [f2.score_frames(f2.frames(*c)).scores["f2"] for c in val]
            motion.scales["f2"][key] = _mean_sd(np.concatenate(got) if got else [], val)
            fitted = True
    if fitted:
        motion.save(run_dir / MOTION_FILE)
    if scorer:
        scorer.engine.motion = motion
    return motion


def _mean_sd(x, val) -> list[float]:
    x = np.asarray(x, np.float64)
    if x.size < 2:
        raise StvadError(
            f"{len(val)} held-out clips give {x.size} scored frames, too few to standardise the flow score; "
            "train on longer videos or raise data.val_fraction"
        )
    return [float(x.mean()), float(x.std() + 1e-12)]


def calibrate(
    run_dir: str | os.PathLike,
    quantile: float | None = None,
    progress: bool = False,
    scorer: Scorer | None = None,
    sources: Sequence[str | os.PathLike] = (),
    score_set: Sequence[str] = ALARM_SCORE,
) -> dict:
    """Fit the alarm threshold on the run's held-out normal validation clips and store it in the run.

    The threshold is a quantile (``score.threshold_quantile``) of the raw ``score.variant`` scores of
    normal frames, with their mean and standard deviation, so that live scores are comparable across
    videos without test-set normalisation. ``sources`` (video files or frame folders of normal footage not
    used in training) are scored whole and added to those frames. When the frames are too few for the
    quantile (fewer than 10 above it), the result carries a ``warning``.

    ``score_set`` (``score.KEY=VALUE``) says how alarms score a frame (:data:`ALARM_SCORE` by default);
    the calibration records it under ``score`` and every alarm path (``watch``, ``score``, ``predict``, the
    exported graph) scores with it (:func:`alarm_config`), so the threshold and the live scores agree.
    """
    from stvad.data.sources import open_source

    run_dir = Path(run_dir)
    scorer = scorer or Scorer.from_run(run_dir)
    scorer.cfg = cfg = scorer.cfg.with_score(score_set)
    if cfg.score.variant in NEEDS_FLOW:  # the f2 standardiser of the alarms' scoring
        fit_motion(run_dir, score_sets=[score_set], scorer=scorer)
    q = cfg.score.threshold_quantile if quantile is None else quantile
    val_clips = scorer.heldout_clips()
    extra = [open_source(s) for s in sources]  # every one readable before any is scored
    clips = [*val_clips, *((src, 0, None) for src in extra)]
    normal = np.concatenate(
        [  # each clip smoothed on its own, as a live alarm smooths a stream; scored as a file is (a held-out
            # tail against its whole training video's background, as fit_motion standardises the flow score):
            # as a cold stream it takes the tail's people for background (docs/usage.md, the numbers)
            causal_mean(
                scorer.score_source(src, progress=progress, start=start, stop=stop).scores[cfg.score.variant],
                cfg.score.causal_window,
            )
            for src, start, stop in clips
        ]
    )
    keys = [k for k in ALARM_KEYS if cfg.score.variant in NEEDS_FLOW or k not in FLOW_KEYS]
    cal = {
        "variant": cfg.score.variant,
        "score": {k: getattr(cfg.score, k) for k in keys},
        "quantile": q,
        "threshold": float(np.quantile(normal, q)),
        "normal_mean": float(normal.mean()),
        "normal_std": float(normal.std()),
        "normal_max": float(normal.max()),
        "frames": int(normal.size),
        "source": "the held-out tail of each normal training video"
        + "".join(f"; {src.path}" for src in extra),
    }
    above = normal.size * (1 - q)
    if above < 10:
        cal["warning"] = (
            f"{normal.size} normal frames give only {above:.1f} above the {q} quantile, so the threshold is "
            "close to the largest normal score; add normal footage (stvad calibrate RUN VIDEO ...) or lower "
            "--quantile"
        )
    atomic_write_json(run_dir / CALIBRATION_FILE, cal)
    return cal


def alarm_config(cfg: Config, calibration: dict | None) -> Config:
    """``cfg`` scoring as the calibration's alarms do (its recorded ``score`` settings); unchanged without
    a calibration, or for one fitted before calibrations recorded them (those scored with ``cfg``)."""
    if not calibration or not isinstance(calibration.get("score"), dict):
        return cfg
    return cfg.with_score([f"score.{k}={v}" for k, v in calibration["score"].items() if k in ALARM_KEYS])


def read_calibration(run_dir: str | os.PathLike) -> dict | None:
    """The run's stored calibration (see :func:`calibrate`), or None when it has not been fitted yet."""
    path = Path(run_dir) / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        cal = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise StvadError(f"unreadable calibration ({e})", path) from e
    if not isinstance(cal, dict) or not isinstance(cal.get("threshold"), (int, float)):
        raise StvadError("calibration has no numeric 'threshold'", path)
    return cal
