"""Benchmark folders: one reader per layout, each returning the same ``Dataset`` record.

Layouts (detected from the folder, or forced with ``layout=``):

``ffp``
    ``training/frames/NN/*.jpg``, ``testing/frames/NN/*.jpg``, ground truth ``ROOT/NAME.mat`` (cell
    ``gt``, 1-based inclusive [start; end] columns per test video), optional pixel masks
    ``testing/masks/NN/*.png`` (nonzero = anomalous, one per frame).
``avenue`` (original CUHK Avenue)
    ``training_videos/NN.avi``, ``testing_videos/NN.avi``, pixel masks
    ``testing_label_mask/N_label.mat`` (or ``ground_truth_demo/testing_label_mask``), cell ``volLabel``
    of per-frame masks; a frame is anomalous when any pixel is set.
``ucsd`` (original UCSD Ped1/Ped2; ROOT is ``UCSDpedN`` or a folder holding exactly one)
    ``Train/TrainNNN/*.tif``, ``Test/TestNNN/*.tif``, frame ranges in ``Test/UCSDpedN.m``, pixel masks
    ``Test/TestNNN_gt/*.bmp`` where given.
``shanghaitech``
    ``training/videos/*.avi`` (or ``training/frames/NN_NNN/``), ``testing/frames/NN_NNNN/``, frame labels
    ``testing/test_frame_mask/NN_NNNN.npy``, pixel masks ``testing/test_pixel_mask/NN_NNNN.npy``.
``folder`` (your own data)
    ``train/`` and ``test/``, each holding video files (avi, mp4, ...) and/or frame folders (one folder
    of images per video); a split folder that holds images itself is one video. Training videos must be
    normal. Optional frame labels in ``test/labels.csv``::

        video,frame,label
        cam1,0,0
        cam1,1,1

    ``video`` is the file name without extension (or the frame folder's name), ``frame`` is 0-based,
    ``label`` is 1 for anomalous. When the file exists every test video must have one row per frame.

Every labelled video's ground truth must match its frame count; otherwise ``StvadError`` names the video
and both numbers.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stvad.data.labels import (
    AvenueMaskSource,
    ImageMaskSource,
    MaskSource,
    NpyMaskSource,
    avenue_label_files,
    intervals_to_labels,
    labels_from_masks,
    read_ffp_mat,
    read_labels_csv,
    read_shanghaitech_labels,
    read_ucsd_m,
)
from stvad.data.sources import (
    FrameSource,
    ImageFolderSource,
    VideoSource,
    is_video_file,
    list_images,
    natural_key,
)
from stvad.errors import StvadError

LAYOUTS = ("ffp", "avenue", "ucsd", "shanghaitech", "folder")

__all__ = ["LAYOUTS", "Dataset", "MaskSource", "Video", "dataset_info", "detect_layout", "open_dataset"]


@dataclass
class Video:
    """One video: its frames, per-frame 0/1 labels and pixel masks when the ground truth has them."""

    name: str
    source: FrameSource
    labels: np.ndarray | None = None
    masks: MaskSource | None = None


@dataclass
class Dataset:
    root: Path
    layout: str
    train: list[Video]
    test: list[Video]
    label_source: str | None = None  # the ground-truth file or folder the test labels came from


def _subdirs(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: natural_key(p.name),
    )


def _frame_folders(folder: Path) -> list[Video]:
    return [Video(d.name, ImageFolderSource(d)) for d in _subdirs(folder)] if folder.is_dir() else []


def _video_files(folder: Path) -> list[Video]:
    if not folder.is_dir():
        return []
    files = sorted((p for p in folder.iterdir() if is_video_file(p)), key=lambda p: natural_key(p.name))
    return [Video(p.stem, VideoSource(p)) for p in files]


def _check_length(video: Video, n_truth: int, truth: str | os.PathLike) -> None:
    n = len(video.source)
    if n_truth != n:
        raise StvadError(
            f"video {video.name} has {n} frames but its ground truth {os.fspath(truth)} has {n_truth}",
            video.source.path,
        )


def _attach_masks(video: Video, masks: MaskSource, truth: str | os.PathLike) -> None:
    _check_length(video, len(masks), truth)
    video.masks = masks


def _ffp_mat(root: Path) -> Path | None:
    named = root / f"{root.name}.mat"
    if named.is_file():
        return named
    mats = sorted(root.glob("*.mat"))
    if len(mats) > 1:
        raise StvadError(
            f"several .mat files ({', '.join(p.name for p in mats)}); name the ground truth {root.name}.mat",
            root,
        )
    return mats[0] if mats else None


def _read_ffp(root: Path) -> Dataset:
    train = _frame_folders(root / "training" / "frames")
    test = _frame_folders(root / "testing" / "frames")
    mat = _ffp_mat(root)
    if mat is not None:
        intervals = read_ffp_mat(mat)
        if len(intervals) != len(test):
            raise StvadError(
                f"ground truth for {len(intervals)} test videos but testing/frames has {len(test)}", mat
            )
        for video, iv in zip(test, intervals):
            video.labels = intervals_to_labels(iv, len(video.source), f"video {video.name}", mat)
    for video in test:
        mask_dir = root / "testing" / "masks" / video.name
        if mask_dir.is_dir():
            _attach_masks(video, ImageMaskSource(mask_dir), mask_dir)
    return Dataset(root, "ffp", train, test, None if mat is None else str(mat))


def _read_avenue(root: Path) -> Dataset:
    train = _video_files(root / "training_videos")
    test = _video_files(root / "testing_videos")
    mask_dir = next(
        (
            d
            for d in (root / "testing_label_mask", root / "ground_truth_demo" / "testing_label_mask")
            if d.is_dir()
        ),
        None,
    )
    if mask_dir is not None:
        files = avenue_label_files(mask_dir)
        for video in test:
            number = f"{int(video.name):02d}" if video.name.isdigit() else video.name
            if number not in files:
                raise StvadError(f"no {int(number)}_label.mat for test video {video.name}", mask_dir)
            _attach_masks(video, AvenueMaskSource(files[number]), files[number])
            video.labels = labels_from_masks(video.masks)
    return Dataset(root, "avenue", train, test, None if mask_dir is None else str(mask_dir))


def _ucsd_dir(root: Path) -> Path | None:
    if (root / "Test").is_dir() or (root / "Train").is_dir():
        return root
    peds = [d for d in _subdirs(root) if re.fullmatch(r"UCSDped\d+", d.name)]
    if len(peds) > 1:
        raise StvadError(f"holds {', '.join(d.name for d in peds)}: give one of them as the root", root)
    return peds[0] if peds else None


def _numbered(folder: Path, prefix: str) -> list[Video]:
    if not folder.is_dir():
        return []
    dirs = [d for d in _subdirs(folder) if re.fullmatch(rf"{prefix}\d+", d.name)]
    return [Video(d.name, ImageFolderSource(d)) for d in dirs]


def _read_ucsd(root: Path) -> Dataset:
    ped = _ucsd_dir(root)
    if ped is None:
        raise StvadError("no UCSD Train/ or Test/ folder (nor a UCSDpedN folder holding them)", root)
    train = _numbered(ped / "Train", "Train")
    test = _numbered(ped / "Test", "Test")
    m_candidates = [
        ped / "Test" / f"{ped.name}.m",
        ped / f"{ped.name}.m",
        *sorted((ped / "Test").glob("*.m")),
    ]
    m_file = next((p for p in m_candidates if p.is_file()), None)
    if m_file is not None:
        intervals = read_ucsd_m(m_file)
        if len(intervals) != len(test):
            raise StvadError(
                f"frame ranges for {len(intervals)} test videos but Test/ has {len(test)}", m_file
            )
        for video, iv in zip(test, intervals):
            video.labels = intervals_to_labels(iv, len(video.source), f"video {video.name}", m_file)
    for video in test:
        mask_dir = ped / "Test" / f"{video.name}_gt"
        if mask_dir.is_dir():
            _attach_masks(video, ImageMaskSource(mask_dir), mask_dir)
    return Dataset(root, "ucsd", train, test, None if m_file is None else str(m_file))


def _read_shanghaitech(root: Path) -> Dataset:
    train = _video_files(root / "training" / "videos") or _frame_folders(root / "training" / "frames")
    test = _frame_folders(root / "testing" / "frames")
    frame_mask = root / "testing" / "test_frame_mask"
    if frame_mask.is_dir():
        labels = read_shanghaitech_labels(frame_mask)
        for video in test:
            if video.name not in labels:
                raise StvadError(f"no {video.name}.npy for test video {video.name}", frame_mask)
            _check_length(video, len(labels[video.name]), frame_mask / f"{video.name}.npy")
            video.labels = labels[video.name]
    pixel_mask = root / "testing" / "test_pixel_mask"
    for video in test:
        path = pixel_mask / f"{video.name}.npy"
        if path.is_file():
            _attach_masks(video, NpyMaskSource(path), path)
    return Dataset(root, "shanghaitech", train, test, str(frame_mask) if frame_mask.is_dir() else None)


def _own_split(folder: Path) -> list[Video]:
    if not folder.is_dir():
        return []
    if list_images(folder):
        return [Video(folder.name, ImageFolderSource(folder))]
    return sorted(_video_files(folder) + _frame_folders(folder), key=lambda v: natural_key(v.name))


def _read_folder(root: Path) -> Dataset:
    train = _own_split(root / "train")
    test = _own_split(root / "test")
    csv_path = root / "test" / "labels.csv"
    if csv_path.is_file():
        labels = read_labels_csv(csv_path)
        names = {v.name for v in test}
        unknown = sorted(set(labels) - names)
        if unknown:
            raise StvadError(f"labels for videos not in test/: {', '.join(unknown)}", csv_path)
        for video in test:
            if video.name not in labels:
                raise StvadError(f"no labels for test video {video.name}", csv_path)
            _check_length(video, len(labels[video.name]), csv_path)
            video.labels = labels[video.name]
    return Dataset(root, "folder", train, test, str(csv_path) if csv_path.is_file() else None)


_READERS = {
    "ffp": _read_ffp,
    "avenue": _read_avenue,
    "ucsd": _read_ucsd,
    "shanghaitech": _read_shanghaitech,
    "folder": _read_folder,
}


def detect_layout(root: str | os.PathLike) -> str:
    """The layout a benchmark folder is in (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise StvadError("benchmark folder not found", root)
    if (root / "testing" / "test_frame_mask").is_dir() or (root / "training" / "videos").is_dir():
        return "shanghaitech"
    if (root / "training" / "frames").is_dir() or (root / "testing" / "frames").is_dir():
        return "ffp"
    if (root / "training_videos").is_dir() or (root / "testing_videos").is_dir():
        return "avenue"
    if _ucsd_dir(root) is not None:
        return "ucsd"
    if (root / "train").is_dir() or (root / "test").is_dir():
        return "folder"
    raise StvadError(
        "no known benchmark layout (expected training/frames, training_videos, UCSDpedN/Train, "
        "training/videos or train/ + test/)",
        root,
    )


def open_dataset(root: str | os.PathLike, layout: str | None = None) -> Dataset:
    """Read a benchmark folder into videos (frame sources), frame labels and pixel masks."""
    root = Path(root)
    if layout is None:
        layout = detect_layout(root)
    elif layout not in _READERS:
        raise StvadError(f"unknown layout {layout!r} (choose {', '.join(LAYOUTS)})")
    elif not root.is_dir():
        raise StvadError("benchmark folder not found", root)
    ds = _READERS[layout](root)
    if not ds.train and not ds.test:
        raise StvadError(f"no videos found for the {layout} layout", root)
    return ds


def _split_info(videos: list[Video]) -> dict[str, int]:
    info = {"videos": len(videos), "frames": sum(len(v.source) for v in videos)}
    if videos and all(v.labels is not None for v in videos):
        info["anomalous_frames"] = int(sum(int(v.labels.sum()) for v in videos))
    return info


def dataset_info(ds: Dataset) -> dict:
    """{"layout", "train", "test"}; each split has videos, frames and, where labelled, anomalous_frames."""
    return {"layout": ds.layout, "train": _split_info(ds.train), "test": _split_info(ds.test)}
