"""Pseudo-anomalies made from normal clips, for choosing settings without test labels.

Real anomalies are local: one person running, one bicycle. So each pseudo-anomaly changes one box of a
normal window, about a pedestrian's size, placed where the change is largest (a window whose box barely
changes gets none: it would be a normal window labelled anomalous):

- ``speedup_windows``: inside the box the past frames are taken 2 apart (t-2T..t-2), so what moves there
  moves twice as fast as anything in training; the target stays the real frame t. After the skip-frame
  pseudo-anomalies of Astrid et al. ("Learning Not to Reconstruct Anomalies", BMVC 2021), kept local.
- ``reversal_windows``: inside the box the past runs backwards in time (t+T..t+1), so what moves there
  moves the wrong way into the real frame t; after Astrid et al.'s moving-backward pseudo-anomalies
  (BMVC 2022), kept local. The reversed past runs on into the real frame t (frame t+1 is its last), so
  what it tests is whether the motion's direction or gait gives time's arrow away: on a path walked both
  ways, a box moving backwards looks like someone walking the other way.
- ``uturn_windows``: the past is real; inside the box the target is frame t-2 instead of t, so what moves
  there turns back on its last step (a U-turn into the frame judged, not a reversed past).
- ``rotated_windows``: inside the box every frame of the window, past and target, is turned by 90 degrees,
  so what moves there moves across the scene's usual direction and stands on its side (a fall, a jump, a
  wrong way), at its own speed and in continuity with its past: what a predictor predicts and a model
  of the place's normal motion does not.
- ``glide_windows``: no box. A copy of one figure of the target frame (a region that differs from the
  scene's background, cut out along its own outline) glides beside the original through the whole window,
  past and target: along the figure's own direction at 2-3 times its speed (a cyclist passing a walker),
  at its own speed across its direction (a wrong way), or at its own speed and then, in the target, a step
  back (a U-turn). Pasted boxes leave fixed edges that a predictor and an optical flow both react to
  (experiments/flow_box_check.py: on Ped2 a turned box changes DIS's flow around it more than the motion
  inside it does); a figure's outline moves with it, as a real one's does.

``moving_side`` measures the size of what moves in normal clips (the median side of the regions that
change between frames), so that a box can be sized to a whole person of the scene rather than to a guess.

All yield ``(t, past, pseudo_past, target)`` with pasts (T, H, W, C) uint8, deterministic for a spec's
seed and the clip's number (for ``uturn_windows`` the pseudo past is the real past and the target is
changed; for ``rotated_windows`` and ``glide_windows`` both are). Training's own pseudo-anomalies
(``train.pseudo_skip``: the whole frame k ahead) are a different kind, so a choice made on these does not
reward a model for recognising the exact fakes it was trained on.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage
from scipy.ndimage import uniform_filter


@dataclass(frozen=True)
class PseudoSpec:
    """Defaults: about one pedestrian (5-10% of the frame's shorter side), twice its speed."""

    speeds: tuple[int, ...] = (2,)  # speed-up factors, drawn per window
    box: tuple[float, float] = (0.05, 0.1)  # box side range, fraction of the frame's shorter side
    min_change: float = 2.0  # mean |pseudo past - normal past| inside the box, grey levels, to keep one
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _place(change: np.ndarray, side: int) -> tuple[int, int]:
    """The top-left corner of the box of ``side`` (inside the frame) centred where ``change`` (H, W) sums
    highest."""
    h, w = change.shape
    r, c = np.unravel_index(int(np.argmax(uniform_filter(change, size=side, mode="constant"))), change.shape)
    return int(np.clip(r - side // 2, 0, h - side)), int(np.clip(c - side // 2, 0, w - side))


def _boxed(
    past: np.ndarray, other: np.ndarray, side: int, min_change: float
) -> tuple[np.ndarray, tuple[int, int]] | None:
    """``past`` with the box of ``side`` where ``other`` differs most from it taken from ``other``; None
    when that box changes by less than ``min_change`` grey levels on average."""
    change = np.abs(other.astype(np.float32) - past.astype(np.float32)).mean(axis=(0, 3))  # (H, W)
    r0, c0 = _place(change, side)
    if change[r0 : r0 + side, c0 : c0 + side].mean() < min_change:
        return None
    pseudo = past.copy()
    pseudo[:, r0 : r0 + side, c0 : c0 + side] = other[:, r0 : r0 + side, c0 : c0 + side]
    return pseudo, (r0, c0)


def speedup_windows(
    frames: np.ndarray, T: int, spec: PseudoSpec, clip_seed: int = 0
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Over a clip's frames (n, H, W, C) uint8: windows whose past is sped up inside one box."""
    n, h, w = frames.shape[:3]
    rng = np.random.default_rng([spec.seed, clip_seed])
    for t in range(min(spec.speeds) * T, n):
        speed = int(rng.choice(spec.speeds))
        side = max(2, round(rng.uniform(*spec.box) * min(h, w)))
        if t - speed * T < 0:
            continue
        past = frames[t - T : t]
        got = _boxed(past, frames[t - speed * T : t : speed], side, spec.min_change)
        if got is not None:
            yield t, past, got[0], frames[t]


def reversal_windows(
    frames: np.ndarray, T: int, spec: PseudoSpec, clip_seed: int = 0
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Over a clip's frames (n, H, W, C) uint8: windows whose past runs backwards inside one box."""
    n, h, w = frames.shape[:3]
    rng = np.random.default_rng([spec.seed, clip_seed, 1])
    for t in range(T, n - T):
        side = max(2, round(rng.uniform(*spec.box) * min(h, w)))
        past = frames[t - T : t]
        got = _boxed(past, frames[t + T : t : -1], side, spec.min_change)
        if got is not None:
            yield t, past, got[0], frames[t]


def uturn_windows(
    frames: np.ndarray, T: int, spec: PseudoSpec, clip_seed: int = 0
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Over a clip's frames (n, H, W, C) uint8: windows whose target steps back inside one box (frame
    t-2 there instead of t), after a real past."""
    n, h, w = frames.shape[:3]
    rng = np.random.default_rng([spec.seed, clip_seed, 2])
    for t in range(max(T, 2), n):
        side = max(2, round(rng.uniform(*spec.box) * min(h, w)))
        got = _boxed(frames[t][None], frames[t - 2][None], side, spec.min_change)
        if got is not None:
            past = frames[t - T : t]
            yield t, past, past, got[0][0]


def rotated_windows(
    frames: np.ndarray, T: int, spec: PseudoSpec, clip_seed: int = 0
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Over a clip's frames (n, H, W, C) uint8: windows whose box, where the window moves most, is turned
    by 90 degrees in every frame, past and target alike (yields the turned past and the turned target)."""
    n, h, w = frames.shape[:3]
    rng = np.random.default_rng([spec.seed, clip_seed, 3])
    for t in range(T, n):
        side = max(2, round(rng.uniform(*spec.box) * min(h, w)))
        win = frames[t - T : t + 1].astype(np.float32)
        r0, c0 = _place(np.abs(np.diff(win, axis=0)).mean(axis=(0, 3)), side)
        turned = frames[t - T : t + 1].copy()
        box = turned[:, r0 : r0 + side, c0 : c0 + side]
        new = np.rot90(box, k=1, axes=(1, 2))
        if np.abs(new.astype(np.float32) - box).mean() < spec.min_change:
            continue
        turned[:, r0 : r0 + side, c0 : c0 + side] = new
        yield t, frames[t - T : t], turned[:T], turned[T]


def moving_side(clips: list[np.ndarray], threshold: float = 12.0, step: int = 4, min_area: int = 9) -> float:
    """The median side (the longer of height and width) of the regions that change by more than
    ``threshold`` grey levels between frames two apart, over clips (n, H, W, C) uint8 of normal video,
    as a fraction of the frame's shorter side; 0 when nothing moves."""
    sides: list[int] = []
    for fr in clips:
        g = fr.astype(np.float32).mean(axis=3)
        for t in range(2, len(g), step):
            mask = ndimage.binary_closing(np.abs(g[t] - g[t - 2]) > threshold, np.ones((3, 3)), iterations=2)
            lab, k = ndimage.label(mask)
            if not k:
                continue
            areas = ndimage.sum_labels(mask, lab, range(1, k + 1))
            for sl, area in zip(ndimage.find_objects(lab), areas):
                if area >= min_area:
                    sides.append(max(sl[0].stop - sl[0].start, sl[1].stop - sl[1].start))
    return float(np.median(sides)) / min(clips[0].shape[1:3]) if sides else 0.0


GLIDES = ("fast", "across", "back")  # the third criterion's (docs/discriminator.md)
GLIDE_KINDS = (*GLIDES, "oscillate", "stand")


def background(frames: np.ndarray) -> np.ndarray:
    """The per-pixel median of frames (n, H, W, C) uint8: the scene without what moves through it."""
    return np.median(frames, axis=0).astype(np.uint8)


@dataclass(frozen=True)
class _Figure:
    mask: np.ndarray  # (h, w) bool, the figure's outline inside its bounding box
    corner: np.ndarray  # (2,) the box's top-left pixel
    centre: np.ndarray  # (2,) the outline's centroid


def _figures(frame: np.ndarray, bg: np.ndarray, threshold: float, min_area: int, max_side: int) -> list:
    """The regions of ``frame`` that differ from ``bg`` by more than ``threshold`` grey levels."""
    fg = np.abs(frame.astype(np.float32) - bg).mean(axis=2) > threshold
    fg = ndimage.binary_closing(ndimage.binary_opening(fg), np.ones((3, 3)), iterations=2)
    lab, _ = ndimage.label(fg)
    out = []
    for i, sl in enumerate(ndimage.find_objects(lab)):
        mask = lab[sl] == i + 1
        if mask.sum() >= min_area and max(mask.shape) <= max_side:
            corner = np.array([sl[0].start, sl[1].start])
            out.append(_Figure(mask, corner, corner + np.argwhere(mask).mean(0)))
    return out


def glide_windows(
    frames: np.ndarray,
    T: int,
    spec: PseudoSpec,
    clip_seed: int = 0,
    bg: np.ndarray | None = None,
    kind: str = "fast",
    threshold: float = 20.0,
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Over a clip's frames (n, H, W, C) uint8: windows in which a copy of the target frame's largest figure
    glides beside it through every frame, past and target (yields the changed past and target).

    ``bg`` is the scene's background (default: :func:`background` of the clip; a longer stretch of the same
    video gives a cleaner one). The figure's velocity is its centroid's step from the nearest figure two
    frames before; a figure that moves less than a quarter of a pixel a frame gets no window. The copy runs
    1.2 figure sizes to one side of the original: ``fast`` at ``spec.speeds`` times its velocity; ``back`` at
    its velocity through the past, then in the target a step back where it was two frames before (a U-turn
    without a box); ``across`` at its speed turned by 90 degrees, crossing the path 1.2 figure sizes ahead
    of (or behind) the stretch the original walks in the window; ``oscillate`` in place, back and forth at
    its speed along a direction drawn at random, turning every 2, 3 or 4 frames (drawn), from a random
    phase: every step looks like a walker's, and over a few frames it goes nowhere (someone jumping,
    waving, pacing or fighting); ``stand`` still, 1.2 figure sizes aside, in every frame (someone who stops,
    falls or lies down where people walk)."""
    n, h, w = frames.shape[:3]
    bg = background(frames) if bg is None else bg
    if kind not in GLIDE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(GLIDE_KINDS)}, got {kind!r}")
    across = kind == "across"
    rng = np.random.default_rng([spec.seed, clip_seed, 4 + GLIDE_KINDS.index(kind)])
    max_side = min(h, w) // 2
    found = functools.cache(lambda i: _figures(frames[i], bg, threshold, 9, max_side))  # each frame once
    for t in range(max(T, 2), n):
        figs, before = found(t), found(t - 2)
        side, speedup = rng.choice([-1.0, 1.0]), float(rng.choice(spec.speeds))
        if not figs or not before:
            continue
        fig = max(figs, key=lambda f: int(f.mask.sum()))
        prev = min(before, key=lambda f: float(np.hypot(*(f.centre - fig.centre))))
        step = (fig.centre - prev.centre) / 2
        speed = float(np.hypot(*step))
        if speed < 0.25 or speed > max(fig.mask.shape):  # still, or not the same figure
            continue
        along = step / speed
        normal = np.array([-along[1], along[0]])
        velocity = speed * normal if across else speedup * step if kind == "fast" else step
        if kind == "stand":
            velocity = np.zeros(2)
        # beside the original's path; crossing it, ahead of or behind the stretch the original walks
        gap = 1.2 * max(fig.mask.shape)
        if kind == "oscillate":  # far enough aside that its swing never reaches the original
            angle, half, phase = rng.uniform(0, 2 * np.pi), int(rng.integers(2, 5)), int(rng.integers(0, 8))
            velocity, gap = speed * np.array([np.cos(angle), np.sin(angle)]), gap + 4 * speed
        start = fig.corner + side * ((gap + T * speed) * along if across else gap * normal)
        patch = frames[t][
            fig.corner[0] : fig.corner[0] + fig.mask.shape[0],
            fig.corner[1] : fig.corner[1] + fig.mask.shape[1],
        ]
        window = frames[t - T : t + 1].copy()
        changed, total = 0.0, 0
        for j in range(T + 1):
            at = T - 2 if kind == "back" and j == T else j  # stepping back: the target's copy is frame t-2's
            if kind == "oscillate":  # a triangle wave of period 2 half, in frames
                u = (j + phase) % (2 * half)
                at = T + (u if u <= half else 2 * half - u)
            r0, c0 = np.round(start + velocity * (at - T)).astype(int)
            r1, c1 = r0 + fig.mask.shape[0], c0 + fig.mask.shape[1]
            if r0 < 0 or c0 < 0 or r1 > h or c1 > w:
                break
            region = window[j, r0:r1, c0:c1]
            changed += float(np.abs(region[fig.mask].astype(np.float32) - patch[fig.mask]).sum())
            total += int(fig.mask.sum()) * frames.shape[3]
            region[fig.mask] = patch[fig.mask]
        else:
            if changed / total >= spec.min_change:
                yield t, frames[t - T : t], window[:T], window[T]
