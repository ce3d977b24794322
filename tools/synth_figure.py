"""The picture of the synthetic benchmark in the README: docs/img/synth_example.png.

    .venv/bin/python tools/synth_figure.py [--data FOLDER]

Top row: a normal test frame, an abnormal one (a runner: motion-only, so the still frame alone does not
give it away) and its pixel mask. Below: the middle frame of one event of every other anomaly type, the
mask outlined in red. Generates the default set (seed 0) unless --data names an existing one.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from stvad.data.synth import generate  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "docs" / "img" / "synth_example.png"


def load(root: Path, video: str, t: int) -> tuple[np.ndarray, np.ndarray]:
    frame = cv2.imread(str(root / "testing" / "frames" / video / f"{t:03d}.png"), cv2.IMREAD_GRAYSCALE)
    mask = cv2.imread(str(root / "testing" / "masks" / video / f"{t:03d}.png"), cv2.IMREAD_GRAYSCALE)
    return frame, mask


def outlined(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(rgb, contours, -1, (230, 30, 30), 1)
    return rgb


def figure(root: Path, out: Path) -> None:
    meta = json.loads((root / "events.json").read_text())
    events = [e for e in meta["events"] if e["frames"] > 0]
    by_type = {}
    for e in events:
        by_type.setdefault(e["type"], e)
    run = by_type.pop("run")
    t_run = (run["start"] + run["end"]) // 2
    frame, mask = load(root, run["video"], t_run)
    gt = np.zeros(meta["test"][int(run["video"]) - 1]["frames"], bool)
    for e in events:
        if e["video"] == run["video"]:
            gt[e["start"] : e["end"] + 1] = True
    t_normal = int(np.flatnonzero(~gt)[len(np.flatnonzero(~gt)) // 2])
    normal, _ = load(root, run["video"], t_normal)

    panels = [
        (normal, f"normal (video {run['video']}, frame {t_normal})"),
        (frame, f"abnormal: running (frame {t_run})"),
        (mask, "its pixel mask"),
    ]
    for kind, e in by_type.items():
        t = (e["start"] + e["end"]) // 2
        f, m = load(root, e["video"], t)
        panels.append((outlined(f, m), f"{kind.replace('_', ' ')} (video {e['video']}, frame {t})"))
    rows = (len(panels) + 2) // 3
    fig, axes = plt.subplots(rows, 3, figsize=(10.5, 2.55 * rows))
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (img, title) in zip(axes.ravel(), panels):
        ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=85)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="an existing default-size synthetic set (else generated)")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(a.data) if a.data else generate(Path(tmp) / "synth", seed=0, size="default")
        figure(root, Path(a.out))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
