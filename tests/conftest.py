"""Shared fixtures: the real data folder (skipped when absent) and writers of tiny videos and frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """<repo>/../shared/data, the real benchmark files; the test is skipped where it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"real data not present at {SHARED}")
    return SHARED


def frame_value(i: int) -> int:
    """Intensity of frame i in the fixtures, far enough apart to survive JPEG/MJPG compression."""
    return (20 + 23 * i) % 256


def make_rgb(i: int, size: tuple[int, int] = (24, 32)) -> np.ndarray:
    """Frame i as uint8 RGB: red = frame_value(i), green = 255 - it, blue = 7."""
    frame = np.empty((*size, 3), np.uint8)
    frame[..., 0] = frame_value(i)
    frame[..., 1] = 255 - frame_value(i)
    frame[..., 2] = 7
    return frame


def write_frames(
    folder: Path, n: int, size: tuple[int, int] = (24, 32), ext: str = ".png", fmt: str = "{:03d}"
) -> Path:
    """Write n frames of ``make_rgb`` as images named ``fmt.format(i) + ext``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        assert cv2.imwrite(
            str(folder / (fmt.format(i) + ext)), cv2.cvtColor(make_rgb(i, size), cv2.COLOR_RGB2BGR)
        )
    return folder


def write_video(path: Path, n: int, size: tuple[int, int] = (24, 32), fps: float = 10.0) -> Path:
    """Write n frames of ``make_rgb`` as an MJPG .avi."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (size[1], size[0]))
    assert writer.isOpened(), "OpenCV cannot write MJPG video here"
    for i in range(n):
        writer.write(cv2.cvtColor(make_rgb(i, size), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory) -> Path:
    """The built-in synthetic benchmark at its ``small`` size (a few short videos), generated once."""
    from stvad.data.synth import generate

    return generate(tmp_path_factory.mktemp("synth") / "data", seed=0, size="small", progress=False)


@pytest.fixture(scope="session")
def tiny_run(synth_small, tmp_path_factory) -> Path:
    """A run of the ``tiny`` preset trained for a few steps on ``synth_small``, trained once per session.

    Tests must not modify it; copy it first (shutil.copytree) when a test writes into a run.
    """
    from stvad.config import preset
    from stvad.train import train

    return train(synth_small, tmp_path_factory.mktemp("runs") / "tiny", preset("tiny"))
