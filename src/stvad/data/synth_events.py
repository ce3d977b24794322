"""The labels of a synthetic set (``events.json``: each anomaly's video, type and frames), read without
the scene generator, so that evaluation does not import it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stvad.errors import StvadError

GENERATOR = "stvad.data.synth"  # events.json's "generator": a set this package wrote


def synth_meta(folder: Path) -> dict | None:
    """events.json of a set this module generated, parsed; None if missing, unreadable or another tool's."""
    try:
        meta = json.loads((folder / "events.json").read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("generator") == GENERATOR else None


def read_events(root: str | Path) -> list[dict] | None:
    """The anomaly records (video, type, start, end: 0-based inclusive) of a set this module generated,
    or None when ``root`` is not one (no events.json, or one another tool wrote)."""
    path = Path(root) / "events.json"
    meta = synth_meta(Path(root))
    if meta is None:
        return None
    events = meta.get("events")
    ok = isinstance(events, list) and all(
        isinstance(e, dict) and isinstance(e.get("video"), str) and isinstance(e.get("type"), str)
        and isinstance(e.get("start"), int) and isinstance(e.get("end"), int)
        for e in events
    )  # fmt: skip
    if not ok:
        raise StvadError("events.json has no valid 'events' list (video, type, start, end)", path)
    return events


def event_types(events: list[dict], video: str, index: np.ndarray) -> np.ndarray:
    """The anomaly type of each frame number in ``index`` of ``video`` ("" outside every event)."""
    types = np.full(len(index), "", dtype=object)
    for e in events:
        if e["video"] == video:
            types[(index >= e["start"]) & (index <= e["end"])] = e["type"]
    return types
