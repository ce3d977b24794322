"""Matplotlib figures of scores: per-video timelines and ROC curves, saved as PNG atomically.

Figures are built with ``matplotlib.figure.Figure`` (Agg), never pyplot, so no global backend or figure
state is touched and nothing needs a display.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from stvad._io import atomic_open
from stvad.metrics import auroc_micro, roc

DPI = 100
TIMELINE_SIZE = (8.0, 2.5)  # inches: 800 x 250 px at DPI
ROC_SIZE = (5.0, 6.0)  # room for the legend below the axes
HEALTH_SIZE = (8.0, 3.0)


def save_figure(fig: Figure, path: str | os.PathLike) -> None:
    """Write ``fig`` as a PNG of exactly figsize * DPI pixels (no tight cropping, so sizes are known)."""
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=DPI)


def intervals(labels: np.ndarray) -> list[tuple[int, int]]:
    """Runs of nonzero labels as half-open (start, stop) index pairs."""
    y = np.concatenate([[0], (np.asarray(labels) != 0).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(y))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def plot_timeline(
    path: str | os.PathLike,
    scores: np.ndarray,
    labels: np.ndarray | None = None,
    threshold: float | None = None,
    title: str = "",
    first_frame: int = 0,
) -> None:
    """Score over time for one video; ground-truth anomalous frames shaded, the threshold as a line.

    ``scores[j]`` belongs to frame ``first_frame + j`` (the first T frames have no prediction).
    """
    scores = np.asarray(scores, dtype=np.float64)
    x = first_frame + np.arange(len(scores))
    fig = Figure(figsize=TIMELINE_SIZE, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    if labels is not None:
        for i, (a, b) in enumerate(intervals(labels)):
            ax.axvspan(
                first_frame + a - 0.5,
                first_frame + b - 0.5,
                color="tab:red",
                alpha=0.2,
                lw=0,
                label="ground truth" if i == 0 else None,
            )
    ax.plot(x, scores, color="tab:blue", lw=1.2, label="score")
    if threshold is not None:
        ax.axhline(threshold, color="black", ls="--", lw=1, label="threshold")
    ax.set_xlim(first_frame - 0.5, first_frame + max(len(scores), 1) - 0.5)
    ax.set_xlabel("frame")
    ax.set_ylabel("anomaly score")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)  # clear of the curve
    save_figure(fig, path)


def plot_roc(
    path: str | os.PathLike, scores: dict[str, Sequence[np.ndarray]], labels: Sequence[np.ndarray]
) -> None:
    """Pooled ROC curves of several score variants on one plot, each labelled with its AUROC."""
    fig = Figure(figsize=ROC_SIZE, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    for name, per_video in scores.items():
        fpr, tpr = roc(per_video, labels)
        ax.plot(fpr, tpr, lw=1.5, label=f"{name} (AUROC {100 * auroc_micro(per_video, labels):.1f}%)")
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("frame-level ROC (all test frames pooled)", fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=8, ncol=2)  # below the axes
    save_figure(fig, path)


def plot_training_health(path: str | os.PathLike, rows: Sequence[dict[str, float]]) -> None:
    """D's health over training (its AUROCs ranking held-out real frames above G's predictions; 0.5 is
    chance) beside G's validation PSNR over the copy-last floor, from the validation rows of metrics.csv."""
    steps = np.array([r["step"] for r in rows], dtype=np.float64)
    fig = Figure(figsize=HEALTH_SIZE, dpi=DPI, layout="constrained")
    ax_d, ax_g = fig.subplots(1, 2)
    for key, label in (("val_d_auc", "global logit"), ("val_d_pixel_auc", "mean pixel logit")):
        ax_d.plot(steps, [r.get(key, np.nan) for r in rows], marker="o", ms=3, lw=1.2, label=label)
    ax_d.axhline(0.5, color="grey", ls=":", lw=1)
    ax_d.set_ylim(0, 1.02)
    ax_d.set_xlabel("training step")
    ax_d.set_ylabel("AUROC real vs predicted")
    ax_d.set_title("discriminator", fontsize=10)
    ax_d.legend(loc="lower right", fontsize=8, framealpha=0.8)
    gain = [r.get("val_psnr", np.nan) - r.get("val_psnr_copy_last", np.nan) for r in rows]
    ax_g.plot(steps, gain, marker="o", ms=3, lw=1.2, color="tab:green")
    ax_g.axhline(0.0, color="grey", ls=":", lw=1)
    ax_g.set_xlabel("training step")
    ax_g.set_ylabel("val PSNR - copy-last (dB)")
    ax_g.set_title("generator", fontsize=10)
    save_figure(fig, path)
