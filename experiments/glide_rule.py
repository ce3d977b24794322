"""What the glide probes share (motion_history.py, motion_resolution.py, object_motion.py): the held-out
criterion over the five glides, the test rows read after it, and the five-glide rule of
docs/discriminator.md ("The larger of f2 and the motion score"): a candidate passes a set if the mean of its
five glides' AUROCs is at least 0.5 above the default's and none of the five is more than 2 below."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from stvad.engine import BACKGROUND_FRAMES
from stvad.evaluate import by_event_type
from stvad.metrics import auroc_micro
from stvad.motion import background
from stvad.scoring import postprocess

HELD = ("fast", "across", "back", "oscillate", "stand")  # the five held-out glides

Combine = Callable[[dict, str], np.ndarray]  # (a clip's or video's scores by key, configuration) -> scores


def glide_aurocs(held: dict, combine: Combine, names: Iterable[str], norm: str) -> dict[str, dict]:
    """Per configuration and glide, the micro AUROC (each clip normalised by ``norm``) of the held-out normal
    windows against the same clips' glide windows. ``held`` maps "normal" and each glide to {clip: scores}."""
    crit = {}
    for name in names:
        row = {}
        for g in HELD:
            clips = [ci for ci in held[g] if ci in held["normal"]]
            s = [
                np.concatenate([combine(held["normal"][ci], name), combine(held[g][ci], name)])
                for ci in clips
            ]
            y = [np.repeat([0, 1], [len(held["normal"][ci]["f2"]), len(held[g][ci]["f2"])]) for ci in clips]
            row[g] = auroc_micro(postprocess(s, norm), y)
        crit[name] = row
    return crit


def mixed_aurocs(held: dict, combine: Combine, names: Iterable[str], norm: str) -> dict[str, float]:
    """Per configuration, the micro AUROC of the held-out normal windows against the windows of all five
    glides at once, each clip's normal and glide windows normalised together by ``norm``: a clip then holds
    events of several kinds and strengths, as a test video does (docs/discriminator.md, "A mixed-glide
    criterion")."""
    out = {}
    for name in names:
        s, y = [], []
        for ci, normal in held["normal"].items():
            parts = [combine(normal, name)] + [combine(held[g][ci], name) for g in HELD if ci in held[g]]
            if len(parts) > 1:
                s.append(np.concatenate(parts))
                y.append(np.repeat([0, 1], [len(parts[0]), sum(len(p) for p in parts[1:])]))
        out[name] = auroc_micro(postprocess(s, norm), y)
    return out


def test_aurocs(
    names: Iterable[str], recs: list[dict], labels: list, index: list, videos: list, events: list, norm: str,
    combine: Combine,
) -> dict[str, dict]:  # fmt: skip
    """Per configuration, the test AUROC over all videos ("all") and per anomaly type where ``events`` has
    them (``stvad.evaluate.by_event_type``): read after the criterion."""
    names = list(names)
    scores = {name: [combine(r, name) for r in recs] for name in names}
    by_type = by_event_type(events, videos, index, scores, labels, norm) if events else {}
    return {
        name: {"all": auroc_micro(postprocess(scores[name], norm), labels), **by_type.get(name, {})}
        for name in names
    }


def five(row: dict) -> float:
    """The mean AUROC of a result row's five glides."""
    return float(np.mean([row["glides"][g] for g in HELD]))


def worst(row: dict, base: dict) -> float:
    """The largest fall of one of the five glides from the default's (negative: a fall)."""
    return min(row["glides"][g] - base["glides"][g] for g in HELD)


def passes(row: dict, base: dict) -> bool:
    """The five-glide rule on one set."""
    return five(row) >= five(base) + 0.005 and worst(row, base) >= -0.02


def spread_background(frames: np.ndarray) -> np.ndarray:
    """A whole video's grey background as the package takes it (``stvad.engine.source_background``): the
    median of up to 400 of its frames spread over it."""
    step = max(1, len(frames) // BACKGROUND_FRAMES)
    return background(frames[::step])
