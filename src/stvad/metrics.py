"""Frame- and pixel-level detection metrics: AUROC (micro and macro), AUPR, EER, pixel AUROC.

Inputs are per-video lists: ``scores[v]`` a float array of one score per scored frame (higher = more
anomalous), ``labels[v]`` a 0/1 array of the same length. The first T frames of a video have no prediction;
the caller drops them from both lists before calling (METHOD.md, Evaluation protocol).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from stvad.errors import StvadError
from stvad.scoring import NORMALISATIONS, postprocess

Arrays = Sequence[np.ndarray]


def pool(scores: Arrays, labels: Arrays) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate per-video scores and labels after checking they line up; labels become 0/1 ints."""
    if len(scores) != len(labels):
        raise StvadError(f"{len(scores)} score arrays but {len(labels)} label arrays")
    for v, (s, y) in enumerate(zip(scores, labels)):
        if np.shape(s) != np.shape(y) or np.ndim(s) != 1:
            raise StvadError(f"video {v}: scores have shape {np.shape(s)} but labels {np.shape(y)}")
    if not scores:
        raise StvadError("no videos to evaluate")
    s = np.concatenate([np.asarray(a, dtype=np.float64) for a in scores])
    y = np.concatenate([np.asarray(a) != 0 for a in labels]).astype(np.int64)
    if not np.isfinite(s).all():
        raise StvadError("scores contain NaN or infinite values")
    if y.min() == y.max():
        raise StvadError("labels hold a single class over all frames, so ROC metrics are undefined")
    return s, y


def auroc_micro(scores: Arrays, labels: Arrays) -> float:
    """ROC AUC over all frames of all videos pooled (the usual headline number)."""
    s, y = pool(scores, labels)
    return float(roc_auc_score(y, s))


def auroc_macro(scores: Arrays, labels: Arrays) -> tuple[float, int]:
    """Mean of per-video ROC AUCs, and the number of videos left out of that mean.

    Rule for single-class videos: a video whose frames are all normal or all anomalous has no ROC
    curve, so it is excluded from the mean and counted in the second return value. NaN if every video
    is excluded. Any per-video monotone rescaling (e.g. per-video min-max) leaves this number unchanged.
    """
    pool(scores, labels)
    aucs = []
    for s, y in zip(scores, labels):
        y = np.asarray(y) != 0
        if y.all() or not y.any():
            continue
        aucs.append(roc_auc_score(y, s))
    excluded = len(scores) - len(aucs)
    return (float(np.mean(aucs)) if aucs else float("nan")), excluded


def aupr(scores: Arrays, labels: Arrays) -> float:
    """Average precision (area under the precision-recall curve, anomalous = positive), pooled."""
    s, y = pool(scores, labels)
    return float(average_precision_score(y, s))


def roc(scores: Arrays, labels: Arrays) -> tuple[np.ndarray, np.ndarray]:
    """Pooled ROC curve as (false positive rate, true positive rate), both rising from 0 to 1."""
    s, y = pool(scores, labels)
    fpr, tpr, _ = roc_curve(y, s)
    return fpr, tpr


def eer(scores: Arrays, labels: Arrays) -> float:
    """Equal error rate: where the pooled ROC curve, linearly interpolated, crosses FPR = FNR (= 1 - TPR)."""
    fpr, tpr = roc(scores, labels)
    # d = FPR - FNR never decreases along the curve, from -1 at (0, 0) to +1 at (1, 1).
    d = fpr + tpr - 1.0
    i = int(np.argmax(d >= 0))
    if d[i] == 0:
        return float(fpr[i])
    t = -d[i - 1] / (d[i] - d[i - 1])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def frame_metrics(scores: Arrays, labels: Arrays) -> dict[str, float | int]:
    """All frame-level metrics at once: auroc_micro, auroc_macro, macro_excluded, aupr, eer, frame counts."""
    s, y = pool(scores, labels)
    macro, excluded = auroc_macro(scores, labels)
    return {
        "auroc_micro": auroc_micro(scores, labels),
        "auroc_macro": macro,
        "macro_excluded": excluded,
        "aupr": aupr(scores, labels),
        "eer": eer(scores, labels),
        "frames": int(len(y)),
        "anomalous_frames": int(y.sum()),
    }


def evaluate_scores(
    scores: dict[str, Arrays],
    labels: Arrays,
    normalisations: Sequence[str] = NORMALISATIONS,
    sigma: float = 0.0,
) -> dict[str, dict[str, dict[str, float | int]]]:
    """Metrics of every score variant under every normalisation: ``result[variant][normalisation]``.

    ``scores[variant]`` is the per-video list of raw scores; each is smoothed over time with ``sigma``
    (frames, 0 = off) and then normalised (see :func:`stvad.scoring.postprocess`) before measuring.
    """
    return {
        variant: {norm: frame_metrics(postprocess(per_video, norm, sigma), labels) for norm in normalisations}
        for variant, per_video in scores.items()
    }


def pixel_auroc(
    maps: Iterable[np.ndarray],
    masks: Iterable[np.ndarray],
    pixels_per_frame: int | None = 4096,
    seed: int = 0,
) -> float:
    """ROC AUC over the pixels of all frames pooled (map value = score, mask nonzero = anomalous).

    ``maps`` and ``masks`` are matched HxW arrays, one pair per frame, consumed as a stream. To keep memory
    bounded on long sets, at most ``pixels_per_frame`` pixels of each frame are used, drawn at random with
    a fixed ``seed`` so the number is reproducible; ``None`` uses every pixel.
    """
    rng = np.random.default_rng(seed)
    s_parts, y_parts = [], []
    n = 0
    for amap, mask in zip(maps, masks, strict=True):
        if np.shape(amap) != np.shape(mask):
            raise StvadError(f"frame {n}: anomaly map has shape {np.shape(amap)} but mask {np.shape(mask)}")
        s = np.asarray(amap, dtype=np.float32).ravel()
        y = np.asarray(mask).ravel() != 0
        if pixels_per_frame is not None and s.size > pixels_per_frame:
            keep = rng.choice(s.size, pixels_per_frame, replace=False)
            s, y = s[keep], y[keep]
        s_parts.append(s)
        y_parts.append(y)
        n += 1
    if not n:
        raise StvadError("no frames with pixel masks to evaluate")
    return auroc_micro([np.concatenate(s_parts)], [np.concatenate(y_parts)])


def auroc_of_part(scores: np.ndarray, labels: np.ndarray, part: np.ndarray) -> float | None:
    """AUROC of the anomalous frames in ``part`` against all normal frames (None if ``part`` has none).

    The micro AUROC of all frames is the frame-weighted mean of the parts' AUROCs when the parts split the
    anomalous frames (each anomalous frame is ranked against the same normal frames), which bounds what
    improving one part can give (experiments/static_anomalies.py)."""
    keep = (labels == 0) | part
    if not (part & (labels == 1)).any():
        return None
    return auroc_micro([scores[keep]], [labels[keep]])
