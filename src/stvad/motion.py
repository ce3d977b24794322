"""A model of normal motion beside the GAN's error: optical flow, and how often each flow is seen where.

Not in the paper. The GAN's error finds what looks wrong in a frame; a cyclist among walkers, someone
running or walking the wrong way, looks ordinary frame by frame and is abnormal only in how it moves.
Chosen on held-out normal clips and pseudo-anomalies made from them (docs/discriminator.md, "A cheaper
base for the flow" and, for the sway, "Sway as part of the flow's likelihood"), never on test labels.
A motion model saved without a sway (``sway`` 0, files before it) scores the flow alone, as before.

- **Flow**: OpenCV's DIS optical flow (preset medium) from each frame to the next, on the model-size grey
  frames upsampled ``up`` = 2 times (at 64x64 the flow of a walker is a pixel or less).
- **Prior**: for each cell of a 16 x 16 grid, a histogram of the flow vectors of moving pixels in the
  normal training clips: 8 directions x 6 magnitude bins, edges fractions of the frame's shorter side
  (:data:`MAG_EDGES`), Laplace smoothed (one count in every bin).
- **Sway**: over the last ``sway`` = 8 flows into the frame judged (fewer at a video's start), at each pixel
  (same place, not tracked) half of the path minus the distance, ``(sum |f_k| - |sum f_k|) / 2``
  (:func:`sway`): 0 for anything moving straight, the amplitude of a movement that came back (a jump in
  place, a wave, a throw). Its prior is a per-cell histogram over the same magnitude edges, without
  directions, fitted on every run of ``sway`` consecutive training flows.
- **Still foreground** (``still``, a threshold in grey levels; 0: off): a pixel differing from the
  source's background by more than it (3x3 opening) that is within :data:`STILL_DIFF` grey levels of each
  of the :data:`STILL_FRAMES` frames before (a figure that stopped, fell or lies where others walk). Per
  cell, the training clips (each against its own median) count such still foreground pixels and moving
  ones; a still foreground pixel's term is -log p(still | foreground, cell) (docs/discriminator.md,
  "Standing still" and "A clip's own background"). The background is the median of the source scored
  when the whole source is known (:meth:`stvad.engine.Scorer.score_source`), else a running median of
  frames sampled from the stream (:class:`RunningBackground`).
- **Score**: a pixel's term is -log p(its flow's bin | its cell) where it moves (at least the first
  edge), 0 where it does not, plus -log p(its sway's bin | its cell) where it sways (and the still
  term where still foreground is); a frame's score is
  the largest sum of the terms over a square window of ``patch`` = 1/8 of the frame's shorter side
  (:func:`frame_score`). One likelihood-style score, standardised once: where the sway is nearly never
  seen (Ped2) it adds its rare terms instead of being divided by a deviation near 0.

The run's ``f2 + flow`` score (:func:`stvad.scoring.combine_flow`) adds this score to the GAN's ``f2``,
each standardised by its mean and deviation on the run's held-out normal clips, the flow's weighted by
``score.flow_weight``; :func:`stvad.calibration.fit_motion` fits both and stores them in ``RUN/motion.json``.
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stvad._io import atomic_write_json
from stvad.errors import StvadError

MOTION_FILE = "motion.json"
PRESETS = {
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
}
MAG_EDGES = (1 / 256, 1 / 128, 1 / 64, 1 / 32, 1 / 16, 1 / 8)  # of the frame's shorter side
N_DIR = 8
GRID = 16
SWAY = 8  # flows the sway reads
STILL_FRAMES = 8  # frames before the one judged that a still pixel has not changed against
STILL_DIFF = 8  # grey levels a still pixel may differ by from each of them


def grey(frame: np.ndarray, up: int) -> np.ndarray:
    """A uint8 frame (H, W) or (H, W, C) -> its first channel, upsampled ``up`` times (bilinear)."""
    f = np.ascontiguousarray(frame[..., 0] if frame.ndim == 3 else frame)
    return cv2.resize(f, None, fx=up, fy=up, interpolation=cv2.INTER_LINEAR) if up > 1 else f


class Flow:
    """Dense DIS optical flow from frame ``a`` to frame ``b`` (uint8, model size) -> (up H, up W, 2)."""

    def __init__(self, up: int = 2, preset: str = "medium"):
        if preset not in PRESETS:
            raise StvadError(f"unknown DIS preset '{preset}' (choose from {', '.join(PRESETS)})")
        self.up, self.preset = int(up), preset
        self.dis = cv2.DISOpticalFlow_create(PRESETS[preset])

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self.dis.calc(grey(a, self.up), grey(b, self.up), None)


def grid_cells(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's row and column of the :data:`GRID` x :data:`GRID` cells of an (h, w) image."""
    return (
        np.repeat((np.arange(h) * GRID // h)[:, None], w, 1),
        np.repeat((np.arange(w) * GRID // w)[None, :], h, 0),
    )


class FlowPrior:
    """Per grid cell, counts of the flow vectors' bins (direction x magnitude) of moving pixels."""

    def __init__(self, shape: tuple[int, int], alpha: float = 1.0):
        h, w = shape
        self.shape = (int(h), int(w))
        self.edges = np.asarray(MAG_EDGES) * min(h, w)
        self.n_mag = len(self.edges)
        self.counts = np.full((GRID, GRID, N_DIR * self.n_mag), alpha)
        self.ci, self.cj = grid_cells(h, w)

    def bins(self, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where a pixel moves, and its bin (direction x magnitude) there: (H, W) bool and int."""
        mag = np.hypot(flow[..., 0], flow[..., 1])
        ang = np.arctan2(flow[..., 1], flow[..., 0])
        d = np.floor((ang + np.pi) / (2 * np.pi) * N_DIR).astype(int) % N_DIR
        m = (np.searchsorted(self.edges, mag, side="right") - 1).clip(0, self.n_mag - 1)
        return mag >= self.edges[0], d * self.n_mag + m

    def fit(self, flow: np.ndarray) -> None:
        moving, b = self.bins(flow)
        np.add.at(self.counts, (self.ci[moving], self.cj[moving], b[moving]), 1.0)

    def finish(self) -> FlowPrior:
        """Turn the counts into the table :meth:`terms` reads; call after the last :meth:`fit`."""
        self.nll = -np.log(self.counts / self.counts.sum(-1, keepdims=True))
        # for terms(): each pixel's offset of its cell in the flattened table, float32 edges and table
        self.cell_offset = (self.ci * GRID + self.cj) * (N_DIR * self.n_mag)
        self.nll_flat = self.nll.ravel().astype(np.float32)
        self.edges32 = self.edges.astype(np.float32)
        return self

    def terms(self, flow: np.ndarray) -> np.ndarray:
        """-log p(bin | cell) where the pixel moves, 0 elsewhere (float32).

        The bins of :meth:`bins`, computed about 3x faster: OpenCV's polar conversion (angle in [0, 2 pi),
        so the direction bin is shifted by half the bins to match arctan2's (-pi, pi]) and one lookup in
        the flattened table."""
        mag, ang = cv2.cartToPolar(np.ascontiguousarray(flow[..., 0]), np.ascontiguousarray(flow[..., 1]))
        d = ((ang * np.float32(N_DIR / (2 * np.pi))).astype(np.int32) + N_DIR // 2) % N_DIR
        m = np.searchsorted(self.edges32, mag, side="right") - 1
        np.clip(m, 0, self.n_mag - 1, out=m)
        t = self.nll_flat.take(self.cell_offset + d * self.n_mag + m)
        t[mag < self.edges32[0]] = 0.0
        return t


def sway(flows: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """(K, H, W, 2) flows, oldest first -> (H, W) half of the path minus the distance, per pixel (float32)."""
    flows = np.asarray(flows, np.float32)
    path = np.hypot(flows[..., 0], flows[..., 1]).sum(0)
    net = flows.sum(0)
    return 0.5 * (path - np.hypot(net[..., 0], net[..., 1]))


class SwayWindow:
    """:func:`sway` of a stream's last ``k`` flows, one flow at a time: each flow's magnitude is computed
    once, when it arrives, where :func:`sway` recomputes all k (the same sums, in the same order)."""

    def __init__(self, k: int):
        self._flows: deque[np.ndarray] = deque(maxlen=int(k))
        self._mags: deque[np.ndarray] = deque(maxlen=int(k))

    def __len__(self) -> int:
        return len(self._flows)

    def append(self, flow: np.ndarray) -> None:
        f = np.asarray(flow, np.float32)
        self._flows.append(f)
        self._mags.append(np.hypot(f[..., 0], f[..., 1]))

    def value(self) -> np.ndarray:
        """The sway over the flows kept (at most ``k``), float32 (H, W)."""
        path, net = self._mags[0].copy(), self._flows[0].copy()
        for m, f in zip(list(self._mags)[1:], list(self._flows)[1:]):
            path += m
            net += f
        return 0.5 * (path - np.hypot(net[..., 0], net[..., 1]))


class SwayPrior:
    """Per grid cell, counts of the sway's magnitude bin (:data:`MAG_EDGES`) where it is at least the
    first edge; Laplace smoothed."""

    def __init__(self, shape: tuple[int, int], alpha: float = 1.0):
        h, w = shape
        self.edges = (np.asarray(MAG_EDGES) * min(h, w)).astype(np.float32)
        self.counts = np.full((GRID, GRID, len(self.edges)), alpha)
        self.ci, self.cj = grid_cells(h, w)
        self.cell_offset = (self.ci * GRID + self.cj) * len(self.edges)

    def _bins(self, s: np.ndarray) -> np.ndarray:
        return (np.searchsorted(self.edges, s, side="right") - 1).clip(0, len(self.edges) - 1)

    def fit(self, s: np.ndarray) -> None:
        m = s >= self.edges[0]
        np.add.at(self.counts, (self.ci[m], self.cj[m], self._bins(s)[m]), 1.0)

    def finish(self) -> SwayPrior:
        self.nll_flat = (-np.log(self.counts / self.counts.sum(-1, keepdims=True))).ravel().astype(np.float32)
        return self

    def terms(self, s: np.ndarray) -> np.ndarray:
        """-log p(bin | cell) where the pixel sways, 0 elsewhere (float32)."""
        t = self.nll_flat.take(self.cell_offset + self._bins(s))
        t[s < self.edges[0]] = 0.0
        return t


def background(frames: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """The per-pixel median of uint8 frames (n, H, W[, C]), as grey float32 (H, W): the scene without
    what moves through it."""
    return _grey(np.median(np.asarray(frames), axis=0).astype(np.uint8))


def _grey(frame: np.ndarray) -> np.ndarray:
    f = np.asarray(frame)
    if f.ndim == 3:
        f = f[..., 0] if f.shape[-1] == 1 else f.mean(axis=-1)
    return f.astype(np.float32)


_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


class StillPrior:
    """Per grid cell, counts of still foreground pixels and of moving ones (see the module's "Still
    foreground"), counted at the flow's resolution (each model pixel ``up`` x ``up`` times); Laplace
    smoothed."""

    def __init__(self, size: tuple[int, int], up: int, threshold: float, alpha: float = 1.0):
        self.size, self.up, self.threshold = (int(size[0]), int(size[1])), int(up), float(threshold)
        self.counts = np.full((GRID, GRID, 2), alpha)  # still, moving
        self.ci, self.cj = grid_cells(self.size[0] * self.up, self.size[1] * self.up)

    def masks(self, frames: Sequence[np.ndarray], bg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``frames``: the :data:`STILL_FRAMES` frames before the one judged and that one (uint8, model
        size), ``bg`` the grey background -> foreground and still, (up H, up W) bool."""
        grey = np.stack([_grey(f) for f in frames[-STILL_FRAMES - 1 :]])
        # scipy's binary_opening (3x3 cross, nothing beyond the border), ten times faster in OpenCV
        fg = (np.abs(grey[-1] - bg) > self.threshold).astype(np.uint8)
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, _CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
        still = np.abs(grey[:-1] - grey[-1]).max(0) < STILL_DIFF
        up = lambda m: m.repeat(self.up, 0).repeat(self.up, 1)  # noqa: E731
        return up(fg), up(still)

    def fit(self, frames: Sequence[np.ndarray], bg: np.ndarray) -> None:
        fg, still = self.masks(frames, bg)
        for k, m in enumerate((fg & still, fg & ~still)):
            np.add.at(self.counts[..., k], (self.ci[m], self.cj[m]), 1.0)

    def finish(self) -> StillPrior:
        cell = -np.log(self.counts[..., 0] / self.counts.sum(-1))
        self.nll = cell[self.ci, self.cj].astype(np.float32)
        return self

    def terms(self, frames: Sequence[np.ndarray], bg: np.ndarray) -> np.ndarray:
        """-log p(still | foreground, cell) where the frame judged (the last) is still foreground, else 0."""
        fg, still = self.masks(frames, bg)
        return np.where(fg & still, self.nll, np.float32(0))


class RunningBackground:
    """A stream's background when the whole source is not known: the median of the last ``keep`` frames
    sampled every ``every`` frames (about 10 s at 25 fps), recomputed at each sample."""

    def __init__(self, every: int = 5, keep: int = 48):
        self.every, self.frames, self.seen = int(every), deque(maxlen=int(keep)), 0
        self.value: np.ndarray | None = None

    def update(self, frame: np.ndarray) -> np.ndarray:
        if self.seen % self.every == 0:
            self.frames.append(np.asarray(frame))
            self.value = background(list(self.frames))
        self.seen += 1
        return self.value


def frame_score(terms: np.ndarray, patch: float) -> float:
    """The terms' sum over the frame (``patch`` 0) or their largest sum over a window of ``patch`` of the
    frame's shorter side (every position, zeros beyond the border)."""
    if patch <= 0:
        return float(terms.sum())
    k = max(1, round(patch * min(terms.shape)))
    return float(cv2.boxFilter(terms, -1, (k, k), normalize=False, borderType=cv2.BORDER_CONSTANT).max())


class MotionModel:
    """The fitted flow model of a run: flow settings, the priors' counts, and the standardisers.

    ``scales["flow"]`` is the (mean, deviation) of the flow's score on the held-out normal clips;
    ``scales["f2"][key]`` the GAN's ``f2`` score's, per checkpoint and scoring settings
    (:func:`scale_key`), because the score's size depends on both. ``sway`` is how many flows the sway
    reads (0: no sway, the flow alone).
    """

    def __init__(
        self,
        size: tuple[int, int],
        up: int = 2,
        preset: str = "medium",
        patch: float = 0.125,
        sway: int = SWAY,
        still: float = 0.0,
    ):
        self.size = (int(size[0]), int(size[1]))
        self.up, self.preset, self.patch, self.sway = int(up), preset, float(patch), int(sway)
        self.still = float(still)
        self.flow = Flow(up, preset)
        shape = (self.size[0] * self.up, self.size[1] * self.up)
        self.prior = FlowPrior(shape)
        self.sway_prior = SwayPrior(shape) if self.sway > 1 else None
        self.still_prior = StillPrior(self.size, self.up, self.still) if self.still > 0 else None
        self.scales: dict[str, Any] = {"f2": {}}
        self.path: Path | None = None  # the file it was read from, for errors

    @property
    def history(self) -> int:
        """How many of the last flows into a frame its score reads."""
        return max(1, self.sway)

    @property
    def frames_needed(self) -> int:
        """How many of the last frames (the one judged included) the still term reads; 0 without it."""
        return STILL_FRAMES + 1 if self.still_prior is not None else 0

    def fit(self, clips: Iterable[Iterable[np.ndarray]]) -> MotionModel:
        """Count the flows of consecutive frames of each normal clip (uint8 frames at model size), the
        sway of every run of :attr:`sway` consecutive flows, and with the still term each frame's still and
        moving foreground against the clip's own median."""
        for clip in clips:
            clip = list(clip)
            bg = background(clip) if self.still_prior is not None and clip else None
            swaying = SwayWindow(self.sway) if self.sway_prior is not None else None
            for i in range(1, len(clip)):
                flow = self.flow(clip[i - 1], clip[i])
                self.prior.fit(flow)
                if swaying is not None:
                    swaying.append(flow)
                    if len(swaying) == self.sway:
                        self.sway_prior.fit(swaying.value())
                if bg is not None and i >= STILL_FRAMES:
                    self.still_prior.fit(clip[i - STILL_FRAMES : i + 1], bg)
        for prior in (self.prior, self.sway_prior, self.still_prior):
            if prior is not None:
                prior.finish()
        return self

    def score_flows(
        self,
        flows: Sequence[np.ndarray],
        frames: Sequence[np.ndarray] | None = None,
        bg: np.ndarray | None = None,
        swayed: np.ndarray | None = None,
    ) -> tuple[float, np.ndarray]:
        """The frame after the last of ``flows`` (the flows into it, oldest first; the last :attr:`history`
        are read) -> its score and its terms at model size (each model pixel the sum of the terms of its
        ``up`` x ``up`` flow pixels), float32 (H, W). With the still term, ``frames`` end with the frame
        judged (the last :attr:`frames_needed` are read; fewer, as at a source's start, add no still term)
        and ``bg`` is the source's grey background. ``swayed`` is the sway of those flows where the caller
        keeps it (a stream's :class:`SwayWindow`), else it is computed from them."""
        t = self.prior.terms(flows[-1])
        if self.sway_prior is not None and len(flows) > 1:
            s = swayed if swayed is not None else sway(list(flows)[-self.sway :])
            t = t + self.sway_prior.terms(s)
        if self.still_prior is not None and bg is not None and len(frames or ()) >= self.frames_needed:
            t = t + self.still_prior.terms(frames, bg)
        h, w = self.size
        if self.up == 1:
            return frame_score(t, self.patch), t
        # each model pixel the sum of its up x up terms: OpenCV's area mean times up^2 (30x a reshape-sum)
        pooled = cv2.resize(t, (w, h), interpolation=cv2.INTER_AREA) * np.float32(self.up * self.up)
        return frame_score(t, self.patch), pooled

    def score(self, a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray]:
        """Frame ``b`` after frame ``a`` alone (uint8, model size; no earlier flow, so no sway) -> its score
        and terms, as :meth:`score_flows`."""
        return self.score_flows([self.flow(a, b)])

    def score_clip(
        self, frames: Sequence[np.ndarray], first: int = 1, bg: np.ndarray | None = None
    ) -> list[float]:
        """The scores of frames ``first`` .. of a clip (uint8, model size), each with the flows before it in
        the clip (at most :attr:`history`) and the still term against ``bg`` (by default the clip's
        median), as a whole source is scored."""
        flows: deque[np.ndarray] = deque(maxlen=self.history)
        swaying = SwayWindow(self.sway) if self.sway_prior is not None else None
        if bg is None and self.still_prior is not None and len(frames):
            bg = background(frames)
        out = []
        for i in range(1, len(frames)):
            flows.append(self.flow(frames[i - 1], frames[i]))
            if swaying is not None:
                swaying.append(flows[-1])
            if i >= first:
                s = swaying.value() if swaying is not None and len(flows) > 1 else None
                out.append(self.score_flows(flows, frames[max(0, i - STILL_FRAMES) : i + 1], bg, s)[0])
        return out

    def to_dict(self) -> dict[str, Any]:
        priors = (self.sway_prior, self.still_prior)
        sway_counts, still_counts = ([] if p is None else p.counts.round(6).ravel().tolist() for p in priors)
        return {
            "kind": "dis-flow-histogram",
            "size": list(self.size),
            "up": self.up,
            "preset": self.preset,
            "patch": self.patch,
            "grid": GRID,
            "directions": N_DIR,
            "magnitude_edges": list(MAG_EDGES),
            "counts": np.round(self.prior.counts, 6).ravel().tolist(),
            "sway": self.sway,
            "sway_counts": sway_counts,
            "still": self.still,
            "still_counts": still_counts,
            "scales": self.scales,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str | os.PathLike = "motion model") -> MotionModel:
        try:
            m = cls(tuple(d["size"]), d["up"], d["preset"], d["patch"], d.get("sway", 0), d.get("still", 0.0))
            layout = (d["grid"], d["directions"], tuple(d["magnitude_edges"]))
            if layout != (GRID, N_DIR, MAG_EDGES):
                raise ValueError(f"a {layout[0]}x{layout[0]} grid with other bins than this version's")
            m.prior.counts = np.asarray(d["counts"], np.float64).reshape(m.prior.counts.shape)
            if m.sway_prior is not None:
                shape = m.sway_prior.counts.shape
                m.sway_prior.counts = np.asarray(d["sway_counts"], np.float64).reshape(shape)
            if m.still_prior is not None:
                shape = m.still_prior.counts.shape
                m.still_prior.counts = np.asarray(d["still_counts"], np.float64).reshape(shape)
            m.scales = {"f2": {}, **d.get("scales", {})}
        except (KeyError, TypeError, ValueError) as e:
            hint = "refit it: stvad fit-motion RUN"
            raise StvadError(f"not a readable motion model ({e}); {hint}", source) from e
        for prior in (m.prior, m.sway_prior, m.still_prior):
            if prior is not None:
                prior.finish()
        return m

    def f2_scale(self, score: Any, step: int | None) -> tuple[float, float]:
        """The (mean, deviation) of ``f2`` on the held-out clips for this checkpoint and scoring."""
        key = scale_key(score, step)
        if key not in self.scales["f2"]:
            how = " ".join(f"--set score.{k}={getattr(score, k)}" for k in ("aggregate", "patch"))
            raise StvadError(
                f"the motion model has no f2 scale for {key} (fitted: "
                f"{', '.join(self.scales['f2']) or 'none'}); fit it with stvad fit-motion RUN {how}",
                self.path or MOTION_FILE,
            )
        return tuple(self.scales["f2"][key])

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_json(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> MotionModel:
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise StvadError(f"unreadable motion model ({e}); refit it: stvad fit-motion RUN", path) from e
        m = cls.from_dict(d, path)
        m.path = Path(path)
        return m


def scale_key(score: Any, step: int | None) -> str:
    """The key of the ``f2`` standardiser for a checkpoint (its training step) and the ``score`` settings
    (a :class:`stvad.config.ScoreConfig`) that change the size of the ``f2`` score."""
    how = f"{score.aggregate}-{score.patch:g}" if score.aggregate == "patch-max" else score.aggregate
    return f"step{step}/{how}/{score.f2_reduce}/{score.upsample}"


def read_motion(run_dir: str | os.PathLike) -> MotionModel | None:
    """The run's fitted motion model (``RUN/motion.json``), or None when it has none."""
    path = Path(run_dir) / MOTION_FILE
    return MotionModel.load(path) if path.is_file() else None
