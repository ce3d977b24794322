"""A still of `stvad score --video` on a synthetic test video, for the README (docs/img/overlay_example.png).

    python tools/overlay_still.py                                   # quick run on the small synthetic set
    python tools/overlay_still.py --run runs/demo/run --data runs/demo/data    # a properly trained run

Without ``--run`` it generates the synthetic benchmark (``--size small``), trains the ``tiny`` preset at
the frames' own size for ``--steps`` steps and calibrates its threshold: a quick model, so the picture
shows what the overlay looks like, not how good the method is. It scores test video ``--video`` and
saves the overlay video's frame with the highest score (heatmap, score curve, threshold line).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

from stvad._io import atomic_open
from stvad.api import Detector
from stvad.data.layouts import open_dataset
from stvad.report.video import overlay_frames

ROOT = Path(__file__).resolve().parent.parent


def quick_run(work: Path, size: str, steps: int) -> tuple[Path, Path]:
    from stvad.data.synth import generate

    data = generate(work / "data", seed=0, size=size, progress=False)
    shape = cv2.imread(str(next((data / "training" / "frames").glob("*/*.png")))).shape[:2]
    Detector.fit(data, work / "run", preset="tiny", size=shape, max_steps=steps, val_every=50, progress=False)
    return work / "run", data


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, default=None, help="a trained, calibrated run (default: train one)")
    p.add_argument("--data", type=Path, default=None, help="the benchmark of --run")
    p.add_argument("--video", type=int, default=2, help="which test video (0-based)")
    p.add_argument("--size", default="small", help="synthetic set size when training here")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "overlay_example.png")
    a = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        run, data = (a.run, a.data) if a.run is not None else quick_run(Path(tmp), a.size, a.steps)
        det = Detector.load(run)
        video = open_dataset(data).test[a.video]
        result = det.score(video.source, maps=True)
        best = int(result.frame[np.argmax(result.score)])
        frames = overlay_frames(
            video.source, result.frame, result.score, result.maps, result.frames_read, result.threshold
        )
        still = next(img for i, img in enumerate(frames) if i == best)
    ok, png = cv2.imencode(".png", cv2.cvtColor(still, cv2.COLOR_RGB2BGR))
    assert ok
    with atomic_open(a.out, "wb") as f:
        f.write(png.tobytes())
    labelled = (
        "" if video.labels is None else f" (labelled {'anomalous' if video.labels[best] else 'normal'})"
    )
    print(f"wrote {a.out}: test video {video.name}, frame {best}{labelled}, score {result.score.max():.4g}")


if __name__ == "__main__":
    main()
