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


@pytest.fixture
def torch_one_thread():
    """One torch thread for the test: a tiny model at batch 1 gains nothing from more, and on a shared
    machine OpenMP threads that spin-wait for a busy core slow it down a hundredfold."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SQUARE_SIZE = 32  # model-size frames of the square scene
SQUARE_ANOMALY = (40, 55)  # frames [start, stop) of the test video in which the bright square flies
SQUARE_TEST_FRAMES = 80


def square_position(i: int) -> int:
    """Left edge of the 8x8 square in frame i of the anomaly (it moves 3 pixels a frame, wrapping)."""
    return (2 + 3 * (i - SQUARE_ANOMALY[0])) % (SQUARE_SIZE - 8)


def square_scene(n: int, seed: int, anomaly: bool = False) -> list[np.ndarray]:
    """Grey HxWx1 frames: a disc swinging over a blurred random floor (the same in every video), with sensor
    noise (normal); with
    ``anomaly`` a bright 8x8 square flies across rows 4-11 during SQUARE_ANOMALY."""
    s = SQUARE_SIZE
    # one fixed camera: every video has the same floor (a trained D calls an unseen floor fake, as it should)
    floor = cv2.GaussianBlur(np.random.default_rng(0).uniform(30, 90, (s, s)).astype(np.float32), (0, 0), 1.5)
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        f = floor.copy()
        cx = s / 2 + (s / 3) * np.sin(2 * np.pi * (i + 7 * seed) / 40)
        cv2.circle(f, (int(round(cx)), s // 2), 4, 150, -1)
        if anomaly and SQUARE_ANOMALY[0] <= i < SQUARE_ANOMALY[1]:
            x = square_position(i)
            f[4:12, x : x + 8] = 255
        f += rng.normal(0, 2, f.shape)
        frames.append(np.clip(f, 0, 255).astype(np.uint8)[..., None])
    return frames


@pytest.fixture(scope="session")
def square_data(tmp_path_factory) -> Path:
    """A ``folder``-layout dataset of the square scene: train/a, train/b normal (60 frames each), test/t
    with the flying square and test/labels.csv; also ROOT/t.avi, the test video at twice the size (MJPG)."""
    root = tmp_path_factory.mktemp("square") / "data"
    videos = {"train/a": square_scene(60, 1), "train/b": square_scene(60, 2)}
    videos["test/t"] = square_scene(SQUARE_TEST_FRAMES, 3, anomaly=True)
    for name, frames in videos.items():
        (root / name).mkdir(parents=True)
        for i, f in enumerate(frames):
            assert cv2.imwrite(str(root / name / f"{i:03d}.png"), f)
    labels = ["video,frame,label"] + [
        f"t,{i},{int(SQUARE_ANOMALY[0] <= i < SQUARE_ANOMALY[1])}" for i in range(SQUARE_TEST_FRAMES)
    ]
    (root / "test" / "labels.csv").write_text("\n".join(labels) + "\n")
    big = 2 * SQUARE_SIZE
    writer = cv2.VideoWriter(str(root / "t.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (big, big))
    assert writer.isOpened(), "OpenCV cannot write MJPG video here"
    for f in videos["test/t"]:
        writer.write(
            cv2.cvtColor(cv2.resize(f, (big, big), interpolation=cv2.INTER_NEAREST), cv2.COLOR_GRAY2BGR)
        )
    writer.release()
    return root


@pytest.fixture(scope="session")
def square_run(square_data, tmp_path_factory) -> Path:
    """The ``tiny`` preset trained 80 steps on the square scene's normal videos, threshold calibrated.

    Trained once per session; tests must not modify it (copy it first when a test writes into a run).
    """
    import torch

    from stvad.calibration import calibrate
    from stvad.config import preset
    from stvad.train import train

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = preset("tiny").override(["train.max_steps=80", "train.val_every=40"])
        run = train(square_data, tmp_path_factory.mktemp("runs") / "square", cfg, progress=False)
        calibrate(run)
    finally:
        torch.set_num_threads(before)
    return run
