"""The bad inputs a user can give, each as a case: how to write it, the command, the line the user must see.

tests/test_bad_input.py runs every case and checks the contract (exit status 2, the error line is the last
line on stderr, no traceback, the same message from the Python API, every file that was there before keeps
its bytes); tools/bad_input_table.py runs them to write docs/bad_input.md. Each case writes its bad input
into a fresh folder and runs ``stvad.cli.main`` there on relative paths, so the recorded line is the one a
user would see. ``run`` is a trained run folder (``--preset tiny``) and ``data`` the built-in synthetic
benchmark (FFP layout, ``--size small``); cases never write into either. Rows with exit status 0 are
warnings: the input is still used.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import scipy.io
import torch

from conftest import write_frames, write_video
from stvad.api import Detector
from stvad.checkpoint import load_run
from stvad.cli import main
from stvad.config import preset
from stvad.data.layouts import open_dataset
from stvad.model import build_discriminator

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "bad_input.md"
FRAMES = "data/testing/frames/01"  # a good 80-frame test video of the synthetic set


@dataclass
class Case:
    """A bad input: ``setup`` writes it into the case folder (the working directory), ``argv`` runs it."""

    name: str
    bad: str  # the bad input, in words
    argv: list[str]
    expect: str  # what the line says after "stvad: error: " (or "stvad: warning: "); a regex if ``regex``
    setup: Callable[[Path], None] = lambda root: None
    during: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    api: Callable[[], Any] | None = None  # the same input through the Python API: must raise the same error
    status: int = 2
    unchanged: list[str] = field(default_factory=list)  # files setup wrote that the failure must not touch
    regex: bool = False


# ---------------------------------------------------------------- inputs


def ffp(root: Path, name: str, test_frames: int = 12, gt: np.ndarray | bytes | None = None) -> Path:
    """A small FFP-layout benchmark: one training video of 12 frames, one test video, ground truth ``gt``
    (the cell of [start; end] columns, or raw bytes for NAME.mat)."""
    base = root / name
    write_frames(base / "training" / "frames" / "01", 12)
    write_frames(base / "testing" / "frames" / "01", test_frames)
    if isinstance(gt, bytes):
        (base / f"{name}.mat").write_bytes(gt)
    elif gt is not None:
        scipy.io.savemat(base / f"{name}.mat", {"gt": gt})
    return base


def cell(*columns: list[list[int]]) -> np.ndarray:
    c = np.empty(len(columns), dtype=object)
    for i, col in enumerate(columns):
        c[i] = np.array(col, dtype=np.int64)
    return c


def mat_that_crashes_scipy() -> bytes:
    """A valid FFP .mat with one type code flipped: SciPy's compiled reader segfaults on it."""
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"gt": cell([[3], [7]])})
    return buf.getvalue().replace(struct.pack("<II", 12, 16), struct.pack("<II", 224, 16))


def own_layout(root: Path, name: str, labels: str, n: int = 12) -> None:
    write_frames(root / name / "train" / "cam1", n)
    write_frames(root / name / "test" / "cam1", n)
    (root / name / "test" / "labels.csv").write_text(labels)


def csv_labels(n: int) -> str:
    return "video,frame,label\n" + "".join(f"cam1,{i},{int(i >= 6)}\n" for i in range(n))


def copy_run(root: Path, name: str) -> Path:
    return Path(shutil.copytree(root / "run", root / name))


def edit_json(path: Path, edit: Callable[[dict], None]) -> None:
    d = json.loads(path.read_text())
    edit(d)
    path.write_text(json.dumps(d, indent=2))


def crafted_width(root: Path) -> None:
    """A checkpoint whose config says g_width 16 while its weights have width 8 (and config.json agrees)."""
    run = copy_run(root, "wide")
    ckpt = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    ckpt["stvad"]["config"]["model"]["g_width"] = 16
    torch.save(ckpt, run / "checkpoints" / "best.ckpt")
    edit_json(run / "config.json", lambda d: d["model"].update(g_width=16))


def evil_checkpoint(root: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {root / 'pwned'}",))

    (root / "evil" / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": {}, "stvad": Evil()}, root / "evil" / "checkpoints" / "best.ckpt")


def truncated(path: Path, keep: float, n: int = 40) -> None:
    """The first ``keep`` of the bytes of an n-frame AVI, as a cut download leaves it."""
    with tempfile.TemporaryDirectory() as tmp:
        data = write_video(Path(tmp) / "whole.avi", n).read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def truncated_mp4(root: Path) -> None:
    import cv2

    path = root / "whole.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (32, 24))
    for i in range(20):
        writer.write(np.full((24, 32, 3), 10 * i, np.uint8))
    writer.release()
    data = path.read_bytes()
    (root / "cut.mp4").write_bytes(data[: len(data) // 2])


def scored(root: Path) -> None:
    """An earlier, good result in scores/ that a failing run must leave as it is."""
    assert main(["score", "run", FRAMES, "--out", "scores"]) == 0


def overlay_on_full_disk(root: Path) -> None:
    """An older overlay video in scores/, and the writer's temporary file on /dev/full: OpenCV's writes fail
    there as on a full disk, and OpenCV does not say so."""
    assert main(["score", "run", FRAMES, "--video"]) == 0
    (root / "scores" / ".01.overlay.tmp.avi").symlink_to("/dev/full")


def a_file(root: Path) -> None:
    (root / "notes.txt").write_text("a file where a folder is needed\n")


@contextlib.contextmanager
def full_disk() -> Iterator[None]:
    """Every file the atomic writer creates lives on /dev/full: each write fails with ENOSPC, as on a full
    disk (the data is written by the OS, not by a patched Python call)."""
    real = tempfile.mkstemp

    def on_full_disk(*args, **kwargs):
        fd, name = real(*args, **kwargs)
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), name

    with mock.patch("tempfile.mkstemp", on_full_disk):
        yield


@contextlib.contextmanager
def fsync_fails() -> Iterator[None]:
    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with mock.patch("os.fsync", no_space):
        yield


def api_score(run: str, source: str) -> Callable[[], Any]:
    return lambda: Detector.load(run).score(source)


# ---------------------------------------------------------------- the cases

TRAIN = ["train", "data", "--out", "new_run", "--preset", "tiny"]

CASES = [
    Case(
        "missing-data",
        "a path that does not exist",
        ["data", "info", "nowhere"],
        "nowhere: benchmark folder not found",
        api=lambda: open_dataset("nowhere"),
    ),
    Case(
        "missing-video",
        "a video that does not exist",
        ["score", "run", "nowhere.avi"],
        "nowhere.avi: no such file, folder or camera",
        api=api_score("run", "nowhere.avi"),
    ),
    Case(
        "missing-run",
        "a run folder that does not exist",
        ["eval", "no_run", "data"],
        "no_run: run folder not found",
        api=lambda: load_run("no_run"),
    ),
    Case(
        "empty-folder-data",
        "an empty folder as the benchmark",
        ["data", "info", "empty"],
        "empty: no known benchmark layout (expected training/frames, training_videos, UCSDpedN/Train, "
        "training/videos or train/ + test/)",
        setup=lambda root: (root / "empty").mkdir(),
        api=lambda: open_dataset("empty"),
    ),
    Case(
        "empty-folder-video",
        "an empty folder as a video",
        ["score", "run", "empty"],
        "empty: no frames (jpg, jpeg, png, tif, tiff, bmp) in folder",
        setup=lambda root: (root / "empty").mkdir(),
        api=api_score("run", "empty"),
    ),
    Case(
        "no-layout",
        "a folder with no recognised layout",
        ["data", "info", "stuff"],
        "stuff: no known benchmark layout (expected training/frames, training_videos, UCSDpedN/Train, "
        "training/videos or train/ + test/)",
        setup=lambda root: write_frames(root / "stuff" / "holiday", 3),
        api=lambda: open_dataset("stuff"),
    ),
    Case(
        "corrupt-video",
        "a corrupt video (random bytes)",
        ["score", "run", "broken.avi"],
        "broken.avi: cannot open video (missing codec, corrupt file or unreachable)",
        setup=lambda root: (root / "broken.avi").write_bytes(np.random.default_rng(0).bytes(4000)),
        api=api_score("run", "broken.avi"),
    ),
    Case(
        "truncated-mp4",
        "a truncated MP4 (half the file)",
        ["score", "run", "cut.mp4"],
        "cut.mp4: cannot open video (missing codec, corrupt file or unreachable)",
        setup=truncated_mp4,
        api=api_score("run", "cut.mp4"),
    ),
    Case(
        "truncated-avi",
        "a truncated AVI (60% of the file): the frames before the cut still decode",
        ["score", "run", "cut.avi"],
        r"cut\.avi: only \d+ of the 40 frames its header declares can be read \(truncated or damaged, or a "
        r"stale count\); using those",
        setup=lambda root: truncated(root / "cut.avi", 0.6),
        status=0,
        regex=True,
    ),
    Case(
        "truncated-avi-labelled",
        "the same truncated AVI in a benchmark whose labels cover all 40 frames",
        ["data", "info", "own"],
        r"own/test/cam1.avi: video cam1 has \d+ frames but its ground truth own/test/labels.csv has 40",
        setup=lambda root: (
            own_layout(root, "own", csv_labels(40), n=40),
            shutil.rmtree(root / "own" / "test" / "cam1"),
            truncated(root / "own" / "test" / "cam1.avi", 0.6),
        ),
        api=lambda: open_dataset("own"),
        regex=True,
    ),
    Case(
        "zero-byte-image",
        "a zero-byte image among the frames",
        ["score", "run", "frames"],
        "frames/005.png: empty image file (0 bytes)",
        setup=lambda root: (
            write_frames(root / "frames", 12),
            (root / "frames" / "005.png").write_bytes(b""),
        ),
        api=api_score("run", "frames"),
    ),
    Case(
        "unreadable-image",
        "an unreadable image among the frames",
        ["score", "run", "frames"],
        "frames/005.png: cannot decode image (corrupt or unsupported format)",
        setup=lambda root: (
            write_frames(root / "frames", 12),
            (root / "frames" / "005.png").write_bytes(b"\x89PNG?"),
        ),
        api=api_score("run", "frames"),
    ),
    Case(
        "mixed-sizes",
        "frames of mixed sizes",
        ["score", "run", "frames"],
        "frames/007.png: frame size 30x40 differs from 24x32 of the folder's first frame 000.png",
        setup=lambda root: (
            write_frames(root / "frames", 12),
            write_frames(root / "big", 8, size=(30, 40)),
            shutil.copy(root / "big" / "007.png", root / "frames" / "007.png"),
        ),
        api=api_score("run", "frames"),
    ),
    Case(
        "mixed-sizes-train",
        "frames of mixed sizes in a training video",
        TRAIN[:1] + ["mixed"] + TRAIN[2:],
        "mixed/training/frames/01/004.png: frame size 30x40 differs from 24x32 of the folder's first frame "
        "000.png",
        setup=lambda root: (
            ffp(root, "mixed", gt=cell([[3], [7]])),
            write_frames(root / "big", 5, size=(30, 40)),
            shutil.copy(root / "big" / "004.png", root / "mixed" / "training" / "frames" / "01" / "004.png"),
        ),
    ),
    Case(
        "short-video",
        "a video shorter than T+1 frames",
        ["score", "run", "short.avi"],
        "short.avi: only 3 frames: a score needs T = 4 frames before the one judged, so at least 5",
        setup=lambda root: write_video(root / "short.avi", 3),
        api=api_score("run", "short.avi"),
    ),
    Case(
        "short-test-video",
        "a test video shorter than T+1 frames",
        ["eval", "run", "short"],
        "short/testing/frames/01: test video 01 has 3 frames: a score needs T = 4 frames before the one "
        "judged, so at least 5",
        setup=lambda root: ffp(root, "short", test_frames=3, gt=cell([[1], [2]])),
    ),
    Case(
        "short-train-videos",
        "training videos too short to hold out validation frames",
        TRAIN[:1] + ["short"] + TRAIN[2:],
        "short/training/frames/01: no training video is long enough to hold out validation frames: each "
        "needs 10, the longest has 8",
        setup=lambda root: (
            ffp(root, "short"),
            [(root / "short/training/frames/01" / f"{i:03d}.png").unlink() for i in range(8, 12)],
        ),
    ),
    Case(
        "gt-past-the-end",
        "ground truth longer than the video (.mat interval past the last frame)",
        ["data", "info", "gt"],
        "gt/gt.mat: anomalous interval 5-30 does not fit the 12 frames of video 01",
        setup=lambda root: ffp(root, "gt", gt=cell([[5], [30]])),
        api=lambda: open_dataset("gt"),
    ),
    Case(
        "gt-length-csv",
        "labels.csv with fewer rows than the video has frames",
        ["data", "info", "own"],
        "own/test/cam1: video cam1 has 12 frames but its ground truth own/test/labels.csv has 10",
        setup=lambda root: own_layout(root, "own", csv_labels(10)),
        api=lambda: open_dataset("own"),
    ),
    Case(
        "gt-video-count",
        ".mat ground truth for more test videos than there are",
        ["data", "info", "gt"],
        "gt/gt.mat: ground truth for 2 test videos but testing/frames has 1",
        setup=lambda root: ffp(root, "gt", gt=cell([[5], [8]], [[1], [2]])),
        api=lambda: open_dataset("gt"),
    ),
    Case(
        "malformed-mat",
        "a malformed .mat (200 zero bytes)",
        ["data", "info", "gt"],
        r"gt/gt\.mat: cannot read \.mat file \(MatReadError: .+\)",  # SciPy's words
        setup=lambda root: ffp(root, "gt", gt=bytes(200)),
        api=lambda: open_dataset("gt"),
        regex=True,
    ),
    Case(
        "mat-crashes-scipy",
        "a damaged .mat that crashes SciPy's parser (one flipped type code)",
        ["data", "info", "gt"],
        # a SciPy that checks type codes (scipy/scipy pull request #25349) raises instead of crashing
        r"gt/gt\.mat: cannot read \.mat file(: SciPy's MAT parser crashed on it \(SIG\w+\); the file is "
        r"damaged| \(\w+: .+\))",
        setup=lambda root: ffp(root, "gt", gt=mat_that_crashes_scipy()),
        api=lambda: open_dataset("gt"),
        regex=True,
    ),
    Case(
        "mat-wrong-content",
        "a .mat whose gt cell holds text",
        ["data", "info", "gt"],
        "gt/gt.mat: gt{1} must hold whole frame numbers, got <U5 values",
        setup=lambda root: ffp(root, "gt", gt=np.array(["start"], dtype=object)),
        api=lambda: open_dataset("gt"),
    ),
    Case(
        "malformed-npy",
        "a malformed .npy frame mask (ShanghaiTech)",
        ["data", "info", "sh"],
        "sh/testing/test_frame_mask/01_0014.npy: cannot read frame mask: not a .npy file (no NUMPY header)",
        setup=lambda root: (
            write_frames(root / "sh" / "training" / "frames" / "01_001", 12),
            write_frames(root / "sh" / "testing" / "frames" / "01_0014", 12),
            (root / "sh" / "testing" / "test_frame_mask").mkdir(parents=True),
            (root / "sh" / "testing" / "test_frame_mask" / "01_0014.npy").write_bytes(b"not a numpy file"),
        ),
        api=lambda: open_dataset("sh"),
    ),
    Case(
        "malformed-m",
        "a malformed UCSD .m file (MATLAB code, no frame ranges)",
        ["data", "info", "UCSDped2"],
        "UCSDped2/Test/UCSDped2.m: no 'gt_frame = [...]' frame ranges found",
        setup=lambda root: (
            write_frames(root / "UCSDped2" / "Train" / "Train001", 12, ext=".tif"),
            write_frames(root / "UCSDped2" / "Test" / "Test001", 12, ext=".tif"),
            (root / "UCSDped2" / "Test" / "UCSDped2.m").write_text(f"system('touch {root / 'pwned'}');\n"),
        ),
        api=lambda: open_dataset("UCSDped2"),
    ),
    Case(
        "malformed-csv",
        "a label CSV with a non-integer label",
        ["data", "info", "own"],
        "own/test/labels.csv: line 4: frame and label must be integers",
        setup=lambda root: own_layout(root, "own", "video,frame,label\ncam1,0,0\ncam1,1,0\ncam1,2,yes\n"),
        api=lambda: open_dataset("own"),
    ),
    Case(
        "csv-not-text",
        "a label CSV that is not text",
        ["data", "info", "own"],
        "own/test/labels.csv: not a readable CSV text file ('utf-8' codec can't decode byte 0xff in "
        "position 0: invalid start byte)",
        setup=lambda root: (
            own_layout(root, "own", ""),
            (root / "own/test/labels.csv").write_bytes(b"\xff\xfe\x00"),
        ),
        api=lambda: open_dataset("own"),
    ),
    Case(
        "unknown-key",
        "an unknown config key",
        [*TRAIN, "--set", "model.depth=3"],
        "--set: unknown config key 'model.depth' (known in model: arch, g_width, g_depth, g_skip, "
        "g_skip_frames, g_attention, g_spectral_norm, g_residual, lstm_kernel, lstm_layers, d_width, "
        "d_depth, d_attention, d_spectral_norm, d_context, d_input, d_residual, d_input_gain, d_map_head)",
        api=lambda: preset("tiny").override(["model.depth=3"]),
    ),
    Case(
        "wrong-type",
        "a config value of the wrong type",
        [*TRAIN, "--set", "train.lr_g=fast"],
        "--set: config key 'train.lr_g' expects float, got 'fast'",
        api=lambda: preset("tiny").override(["train.lr_g=fast"]),
    ),
    Case(
        "no-equals",
        "a --set without a value",
        [*TRAIN, "--set", "train.lr_g"],
        "--set: expects key=value, got 'train.lr_g'",
        api=lambda: preset("tiny").override(["train.lr_g"]),
    ),
    Case(
        "d-context-range",
        "a config value out of range (D shown more past frames than a window holds)",
        [*TRAIN, "--set", "model.d_context=5"],
        "model.d_context must be between 0 and data.T = 4, got 5",
        api=lambda: build_discriminator(preset("tiny").override(["model.d_context=5"])),
    ),
    Case(
        "config-json-bad-key",
        "a run whose config.json has an unknown key (resume)",
        ["train", "data", "--out", "edited", "--resume"],
        r"edited/config.json: unknown config key 'train.speed' \(known in train: seed, max_steps, .*\)",
        setup=lambda root: edit_json(
            copy_run(root, "edited") / "config.json", lambda d: d["train"].update(speed=3)
        ),
        unchanged=["edited/checkpoints/last.ckpt", "edited/checkpoints/best.ckpt", "edited/metrics.csv"],
        regex=True,
    ),
    Case(
        "config-json-bad-key-eval",
        "the same run evaluated",
        ["eval", "edited", "data"],
        r"edited/config.json: unknown config key 'train.speed' \(known in train: seed, max_steps, .*\)",
        setup=lambda root: edit_json(
            copy_run(root, "edited") / "config.json", lambda d: d["train"].update(speed=3)
        ),
        api=lambda: load_run("edited"),
        regex=True,
    ),
    Case(
        "motion-json-damaged",
        "a run whose motion model (motion.json) is not valid JSON",
        ["eval", "moved", "data"],
        r"moved/motion.json: unreadable motion model \(.*\); refit it: stvad fit-motion RUN",
        setup=lambda root: (copy_run(root, "moved") / "motion.json").write_text("{not json"),
        api=lambda: load_run("moved"),
        regex=True,
    ),
    Case(
        "motion-json-missing",
        "f2+flow asked of a run without a motion model (trained before it existed)",
        ["eval", "moved", "data", "--set", "score.variant=f2+flow"],
        "moved: the f2+flow score needs the run's motion model (RUN/motion.json), and this run has none: "
        "fit it with stvad fit-motion RUN",
        setup=lambda root: (copy_run(root, "moved") / "motion.json").unlink(),
    ),
    Case(
        "config-json-changed",
        "a run whose config.json was changed after training (g_width 8 -> 16)",
        ["eval", "edited", "data"],
        "edited/config.json: does not match the checkpoint (model.g_width: 8 in best.ckpt, 16 here): the "
        "run was changed after training; restore config.json or the run's own checkpoints",
        setup=lambda root: edit_json(
            copy_run(root, "edited") / "config.json", lambda d: d["model"].update(g_width=16)
        ),
        api=lambda: load_run("edited"),
    ),
    Case(
        "config-json-changed-resume",
        "the same run resumed",
        ["train", "data", "--out", "edited", "--resume", "--set", "train.max_steps=8"],
        "edited/config.json: cannot resume with a different config (model.g_width: 8 -> 16); only "
        "train.max_steps, train.num_workers may change",
        setup=lambda root: edit_json(
            copy_run(root, "edited") / "config.json", lambda d: d["model"].update(g_width=16)
        ),
        unchanged=["edited/checkpoints/last.ckpt", "edited/metrics.csv"],
    ),
    Case(
        "checkpoint-other-width",
        "a checkpoint whose weights are of another width than its config",
        ["score", "wide", FRAMES],
        r"wide/checkpoints/best\.ckpt: the G weights do not fit the saved config \(size mismatch for .+\)",
        setup=crafted_width,
        api=api_score("wide", FRAMES),
        regex=True,
    ),
    Case(
        "not-a-checkpoint",
        "a checkpoint file that is not one (random bytes)",
        ["eval", "junk", "data"],
        r"junk/checkpoints/best.ckpt: not a readable checkpoint \(.*\)",
        setup=lambda root: (
            (root / "junk" / "checkpoints").mkdir(parents=True),
            (root / "junk" / "checkpoints" / "best.ckpt").write_bytes(b"PK\x03\x04 not a zip"),
        ),
        api=lambda: load_run("junk"),
        regex=True,
    ),
    Case(
        "pickle-checkpoint",
        "a checkpoint whose pickle would run code",
        ["eval", "evil", "data"],
        "evil/checkpoints/best.ckpt: refusing to load: the checkpoint would import posix.system; a "
        "checkpoint may hold only tensors and plain types",
        setup=evil_checkpoint,
        api=lambda: load_run("evil"),
    ),
    Case(
        "out-under-file-score",
        "an output folder below a regular file",
        ["score", "run", FRAMES, "--out", "notes.txt/scores"],
        "notes.txt/scores: cannot write here: notes.txt exists and is not a folder",
        setup=a_file,
    ),
    Case(
        "out-under-file-train",
        "a run folder below a regular file",
        ["train", "data", "--out", "notes.txt/run", "--preset", "tiny"],
        "notes.txt/run: cannot write here: notes.txt exists and is not a folder",
        setup=a_file,
    ),
    Case(
        "out-under-file-eval",
        "a JSON report path below a regular file",
        ["eval", "run", "data", "--json", "notes.txt/results.json"],
        "notes.txt/results.json: cannot write here: notes.txt exists and is not a folder",
        setup=a_file,
    ),
    Case(
        "out-under-file-export",
        "an export path below a regular file",
        ["export", "run", "--out", "notes.txt/model.onnx"],
        "notes.txt/model.onnx: cannot write here: notes.txt exists and is not a folder",
        setup=a_file,
    ),
    Case(
        "out-under-file-watch",
        "an events file below a regular file",
        ["watch", "run", FRAMES, "--threshold", "1", "--events", "notes.txt/events.jsonl"],
        "notes.txt/events.jsonl: cannot write here: notes.txt exists and is not a folder",
        setup=a_file,
    ),
    Case(
        "full-disk-score",
        "a full disk while scores are written (an older result is in scores/)",
        ["score", "run", FRAMES, "--out", "scores"],
        "scores/01.csv: cannot write (No space left on device)",
        setup=scored,
        during=full_disk,
        unchanged=["scores/01.csv", "scores/01.json"],
    ),
    Case(
        "full-disk-overlay",
        "a full disk while the overlay video is written (an older one is in scores/)",
        ["score", "run", FRAMES, "--video"],
        "scores/01.overlay.avi: cannot write the video whole: 0 of 80 frames in the file (disk full?)",
        setup=overlay_on_full_disk,
        unchanged=["scores/01.overlay.avi"],
    ),
    Case(
        "full-disk-events",
        "a full disk while watch appends events (the events file on /dev/full)",
        ["watch", "run", FRAMES, "--threshold=-1e9", "--events", "events.jsonl"],
        "events.jsonl: cannot write events (No space left on device)",
        setup=lambda root: (root / "events.jsonl").symlink_to("/dev/full"),
    ),
    Case(
        "full-disk-train",
        "a full disk when training resumes (fsync fails)",
        ["train", "data", "--out", "resumed", "--resume", "--set", "train.max_steps=8"],
        "resumed/config.json: cannot write (No space left on device)",
        setup=lambda root: copy_run(root, "resumed"),
        during=fsync_fails,
        unchanged=["resumed/config.json", "resumed/checkpoints/last.ckpt", "resumed/checkpoints/best.ckpt"],
    ),
    Case(
        "full-disk-eval",
        "a full disk while the evaluation JSON is written (an older one exists)",
        ["eval", "run", "data", "--json", "results.json"],
        "results.json: cannot write (No space left on device)",
        setup=lambda root: (root / "results.json").write_text('{"older": "result"}\n'),
        during=full_disk,
        unchanged=["results.json"],
    ),
]


# ---------------------------------------------------------------- running a case


@dataclass
class Outcome:
    status: int
    stdout: str
    stderr: str  # what Python wrote to sys.stderr (progress bars included)

    @property
    def last_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def prepare(case: Case, root: Path, run: Path, data: Path) -> None:
    """Make ``root`` the case folder: ``run`` and ``data`` linked in, the case's bad input written."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "run").symlink_to(run.resolve(), target_is_directory=True)
    (root / "data").symlink_to(data.resolve(), target_is_directory=True)
    with (
        working_directory(root),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        case.setup(root)


def run_cli(case: Case, root: Path) -> Outcome:
    out, err = io.StringIO(), io.StringIO()
    with (
        working_directory(root),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        case.during(),
    ):
        status = main(case.argv)
    return Outcome(status, out.getvalue(), err.getvalue())


def expected_line(case: Case) -> str:
    """The line the case must end with, as a regex."""
    kind = "error" if case.status else "warning"
    return f"stvad: {kind}: " + (case.expect if case.regex else re.escape(case.expect))


def command(case: Case) -> str:
    return " ".join(["stvad", *(f"'{a}'" if " " in a else a for a in case.argv)])
