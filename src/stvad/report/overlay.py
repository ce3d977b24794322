"""Anomaly maps drawn over frames (OpenCV JET colour map), and the most anomalous frames of a test set."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from matplotlib.figure import Figure

from stvad.report.plots import DPI, save_figure

MASK_COLOUR = (255, 255, 255)  # RGB; white stays visible on every JET colour


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """uint8 HxW, HxWx1 or HxWx3 -> contiguous uint8 HxWx3."""
    frame = np.asarray(frame, dtype=np.uint8)
    if frame.ndim == 2 or frame.shape[2] == 1:
        return np.repeat(frame.reshape(*frame.shape[:2], 1), 3, axis=2)
    return np.ascontiguousarray(frame)


def overlay(
    frame: np.ndarray,
    amap: np.ndarray,
    mask: np.ndarray | None = None,
    vmax: float | None = None,
    alpha: float = 0.5,
) -> np.ndarray:
    """Blend the JET-coloured anomaly map over a frame; outline the ground-truth mask when given.

    ``frame`` is uint8 HxW, HxWx1 or HxWx3 (RGB); ``amap`` float of any size (resized bilinearly to the
    frame); ``mask`` bool/uint8 of any size (resized nearest). The map is scaled to [0, 1] by ``vmax``
    (default: its own maximum); pass a shared ``vmax`` to compare frames. Returns uint8 HxWx3 RGB.
    """
    rgb = to_rgb(frame)
    h, w = rgb.shape[:2]
    amap = np.asarray(amap, dtype=np.float32)
    if amap.shape != (h, w):
        amap = cv2.resize(amap, (w, h), interpolation=cv2.INTER_LINEAR)
    top = float(amap.max()) if vmax is None else float(vmax)
    level = np.clip(amap / top, 0, 1) if top > 0 else np.zeros_like(amap)
    heat = cv2.cvtColor(
        cv2.applyColorMap((level * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB
    )
    out = cv2.addWeighted(rgb, 1 - alpha, heat, alpha, 0)
    if mask is not None:
        m = (np.asarray(mask) != 0).astype(np.uint8)
        if m.shape != (h, w):
            m = cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, MASK_COLOUR, 1)
    return out


def top_frames(scores: Sequence[np.ndarray], k: int = 6, min_gap: int = 10) -> list[tuple[int, int]]:
    """The ``k`` highest-scoring frames as (video index, position in that video's score array).

    Frames closer than ``min_gap`` to an already chosen frame of the same video are skipped, so one long
    event does not fill every slot with near-identical frames.
    """
    flat = [(float(s), v, j) for v, per_video in enumerate(scores) for j, s in enumerate(per_video)]
    flat.sort(key=lambda t: -t[0])
    chosen: list[tuple[int, int]] = []
    for _, v, j in flat:
        if len(chosen) == k:
            break
        if all(v != cv or abs(j - cj) >= min_gap for cv, cj in chosen):
            chosen.append((v, j))
    return chosen


@dataclass
class TopFrame:
    video: str  # video name
    frame: int  # frame number in the video
    score: float
    image: np.ndarray  # uint8 HxWxC frame
    amap: np.ndarray  # float anomaly map (any size; resized to the frame)
    mask: np.ndarray | None = None  # ground-truth pixel mask, when the benchmark has one


def plot_top_frames(path: str | os.PathLike, items: Sequence[TopFrame], columns: int = 3) -> None:
    """A grid of [frame | frame with anomaly map] panels, all maps on one colour scale."""
    vmax = max((float(np.max(t.amap)) for t in items), default=0.0)
    cols = max(1, min(columns, len(items)))
    rows = max(1, math.ceil(len(items) / cols))
    fig = Figure(figsize=(4.4 * cols, 2.6 * rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, t in zip(axes, items):
        ax.imshow(
            np.hstack([to_rgb(t.image), overlay(t.image, t.amap, t.mask, vmax=vmax)]), interpolation="nearest"
        )
        ax.set_title(f"{t.video} frame {t.frame}: score {t.score:.3g}", fontsize=9)
    save_figure(fig, path)
