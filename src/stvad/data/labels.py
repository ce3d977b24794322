"""Ground truth in the benchmarks' own formats: frame labels and lazily read pixel masks.

Every reader works on the ground-truth files alone (no videos needed), so the real label files can be
checked even where most videos are missing. Frame labels are uint8 arrays of 0/1, one per frame;
intervals are 1-based and inclusive, as the .mat and .m files write them.
"""

from __future__ import annotations

import csv
import functools
import os
import re
from abc import ABC, abstractmethod
from pathlib import Path

import cv2
import numpy as np

from stvad.data.matfile import check_parsable, loadmat
from stvad.data.sources import list_images, natural_key, read_image
from stvad.errors import StvadError

Intervals = list[tuple[int, int]]  # 1-based inclusive (start, end) frame ranges of one video


def _load_npy(path: str | os.PathLike, what: str, **kw) -> np.ndarray:
    """np.load without pickles, every failure a StvadError (a damaged header raises EOFError, ValueError,
    ...), and only numeric or boolean arrays."""
    try:
        with open(path, "rb") as f:
            if f.read(6) != b"\x93NUMPY":  # else np.load takes it for a pickle and suggests unpickling it
                raise StvadError(f"cannot read {what}: not a .npy file (no NUMPY header)", path)
        a = np.load(path, allow_pickle=False, **kw)
    except StvadError:
        raise
    except Exception as e:
        raise StvadError(f"cannot read {what} ({type(e).__name__}: {e})", path) from e
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "biuf":
        raise StvadError(f"{what} must be a numeric array, got {getattr(a, 'dtype', type(a).__name__)}", path)
    return a


class MaskSource(ABC):
    """Per-frame pixel masks, read on demand: ``m[i]`` is a bool HxW array at native resolution."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, i: int) -> np.ndarray: ...

    def _check(self, i: int) -> int:
        if not -len(self) <= i < len(self):
            raise IndexError(f"mask {i} out of range for {len(self)} masks")
        return i % len(self)


class ImageMaskSource(MaskSource):
    """One mask image per frame (png, bmp, ...); nonzero pixels are anomalous."""

    def __init__(self, folder: str | os.PathLike):
        self.path = str(folder)
        self.files = list_images(folder)
        if not self.files:
            raise StvadError("no mask images in folder", folder)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> np.ndarray:
        # unchanged, not grey: a dim coloured mask pixel could round to 0 in a grey conversion
        mask = read_image(self.files[self._check(i)], cv2.IMREAD_UNCHANGED)
        return mask.any(axis=2) if mask.ndim == 3 else mask > 0


class NpyMaskSource(MaskSource):
    """A (frames, H, W) .npy volume (ShanghaiTech ``test_pixel_mask``), memory-mapped."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        self.volume = _load_npy(path, "mask volume", mmap_mode="r")
        if self.volume.ndim != 3:
            raise StvadError(f"expected a (frames, H, W) mask volume, got shape {self.volume.shape}", path)

    def __len__(self) -> int:
        return self.volume.shape[0]

    def __getitem__(self, i: int) -> np.ndarray:
        return np.asarray(self.volume[self._check(i)]) > 0


@functools.lru_cache(maxsize=1)
def read_avenue_masks(path: str) -> tuple[np.ndarray, ...]:
    """The per-frame uint8 masks of an Avenue ``N_label.mat`` (cell ``volLabel``).

    Cached for the most recently read file only: a decoded file is up to ~330 MB.
    """
    mat = loadmat(path)
    if "volLabel" not in mat:
        raise StvadError(
            f"no 'volLabel' in file (keys: {', '.join(k for k in mat if not k.startswith('__'))})", path
        )
    cell = mat["volLabel"]
    if cell.dtype != object:
        raise StvadError(f"'volLabel' must be a cell of per-frame masks, got {cell.dtype} {cell.shape}", path)
    masks = tuple(np.asarray(m) for m in cell.ravel())
    for k, m in enumerate(masks):
        if m.ndim != 2 or m.dtype.kind not in "biuf":
            raise StvadError(f"volLabel{{{k + 1}}} must be a 2-D numeric mask, got {m.dtype} {m.shape}", path)
    return masks


class AvenueMaskSource(MaskSource):
    """An Avenue ``N_label.mat`` file whose cell ``volLabel`` holds one mask per frame."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        self.length = len(read_avenue_masks(self.path))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> np.ndarray:
        return read_avenue_masks(self.path)[self._check(i)] > 0


def labels_from_masks(masks: MaskSource) -> np.ndarray:
    """A frame is anomalous when any pixel of its mask is set."""
    return np.fromiter((masks[i].any() for i in range(len(masks))), dtype=np.uint8, count=len(masks))


def intervals_to_labels(
    intervals: Intervals, n: int, name: str = "video", path: str | os.PathLike | None = None
) -> np.ndarray:
    """Expand 1-based inclusive intervals into n per-frame 0/1 labels (``path``: the file, for errors)."""
    labels = np.zeros(n, dtype=np.uint8)
    for start, end in intervals:
        if not 1 <= start <= end <= n:
            raise StvadError(f"anomalous interval {start}-{end} does not fit the {n} frames of {name}", path)
        labels[start - 1 : end] = 1
    return labels


def read_ffp_mat(path: str | os.PathLike) -> list[Intervals]:
    """FFP ground truth: cell ``gt``, per test video a (2, k) array of [start; end] columns."""
    mat = loadmat(path)
    if "gt" not in mat:
        raise StvadError("no cell 'gt' of anomalous intervals in file", path)
    videos = []
    for k, entry in enumerate(np.asarray(mat["gt"]).ravel()):
        a = np.asarray(entry)
        whole = a.dtype.kind != "f" or bool((np.isfinite(a) & (a == np.round(a)) & (abs(a) < 2**53)).all())
        if a.dtype.kind not in "biuf" or not whole:
            raise StvadError(f"gt{{{k + 1}}} must hold whole frame numbers, got {a.dtype} values", path)
        # stored as uint8 or uint16: cast before any arithmetic so 255 + 1 does not wrap
        a = a.astype(np.int64)
        if a.size == 0:
            videos.append([])
            continue
        if a.ndim == 1 and a.size == 2:
            a = a.reshape(2, 1)
        if a.ndim != 2 or a.shape[0] != 2:
            raise StvadError(f"gt{{{k + 1}}} must be [start; end] columns (2 x k), got shape {a.shape}", path)
        videos.append([(int(s), int(e)) for s, e in a.T])
    return videos


_M_ASSIGN = re.compile(r"(\w+)\s*\{\s*(end\s*\+\s*1|\d+)\s*\}\s*\.\s*gt_frame\s*=\s*\[([^\]]*)\]")
_M_RANGE = re.compile(r"(\d+)\s*(?::\s*(\d+))?")


def read_ucsd_m(path: str | os.PathLike) -> list[Intervals]:
    """UCSD ``UCSDpedN.m``: lines ``TestVideoFile{end+1}.gt_frame = [61:180];`` (or ``{k}``).

    Parsed as text, never executed. Ranges inside the brackets may be ``a:b`` or single frames,
    separated by commas or spaces.
    """
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as e:
        raise StvadError(f"cannot read ({e.strerror or e})", path) from e
    text = re.sub(r"%[^\n]*", "", text)
    entries: dict[int, Intervals] = {}
    for m in _M_ASSIGN.finditer(text):
        appended = m.group(2).startswith("end")
        k = (max(entries) + 1 if entries else 0) if appended else int(m.group(2)) - 1
        if k < 0:
            raise StvadError(f"{m.group(1)}{{0}}: MATLAB cell indices start at 1", path)
        entries[k] = [(int(a), int(b or a)) for a, b in _M_RANGE.findall(m.group(3))]
    if not entries:
        raise StvadError("no 'gt_frame = [...]' frame ranges found", path)
    missing = sorted(set(range(max(entries) + 1)) - set(entries))
    if missing:
        raise StvadError(f"no gt_frame for test video(s) {', '.join(str(k + 1) for k in missing)}", path)
    return [entries[k] for k in range(len(entries))]


def read_avenue_labels(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """Avenue ``testing_label_mask/N_label.mat`` files -> {"NN": per-frame labels (any pixel set)}."""
    labels = {}
    for number, path in avenue_label_files(folder).items():
        labels[number] = labels_from_masks(AvenueMaskSource(path))
    return labels


def read_shanghaitech_labels(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """ShanghaiTech ``test_frame_mask/NN_NNNN.npy`` (one 0/1 value per frame) -> {"NN_NNNN": labels}."""
    folder = Path(folder)
    if not folder.is_dir():
        raise StvadError("frame-mask folder not found", folder)
    files = sorted(folder.glob("*.npy"), key=lambda p: natural_key(p.name))
    if not files:
        raise StvadError("no .npy frame masks in folder", folder)
    labels = {}
    for path in files:
        a = _load_npy(path, "frame mask")
        if a.ndim != 1:
            raise StvadError(f"expected one label per frame (1-D), got shape {a.shape}", path)
        labels[path.stem] = (a != 0).astype(np.uint8)
    return labels


def _numbered_files(folder: str | os.PathLike, pattern: str, expected: str) -> dict[str, Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise StvadError("ground-truth folder not found", folder)
    found = {}
    for path in folder.iterdir():
        m = re.fullmatch(pattern, path.name)
        if m:
            found[f"{int(m.group(1)):02d}"] = path
    if not found:
        raise StvadError(f"no ground-truth files named {expected}", folder)
    return dict(sorted(found.items(), key=lambda kv: natural_key(kv[0])))


def avenue_label_files(folder: str | os.PathLike) -> dict[str, Path]:
    """{"NN": path} of the ``N_label.mat`` files in an Avenue ``testing_label_mask`` folder."""
    files = _numbered_files(folder, r"(\d+)_label\.mat", "N_label.mat")
    check_parsable(files.values())  # one child process for the whole folder, not one per file
    return files


def read_labels_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A ``video,frame,label`` CSV (header row, 0-based frames, label 0/1) -> {video: labels}.

    Each video's rows must cover frames 0..n-1 exactly once, in any order.
    """
    rows: dict[str, dict[int, int]] = {}
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not {"video", "frame", "label"} <= set(reader.fieldnames):
                raise StvadError(
                    f"header must name the columns video,frame,label (got {reader.fieldnames})", path
                )
            for line, row in enumerate(reader, start=2):
                try:
                    frame, label = int(row["frame"]), int(row["label"])
                except (TypeError, ValueError) as e:
                    raise StvadError(f"line {line}: frame and label must be integers", path) from e
                if label not in (0, 1) or frame < 0:
                    raise StvadError(f"line {line}: need frame >= 0 and label 0 or 1", path)
                video = rows.setdefault(row["video"].strip(), {})
                if frame in video:
                    raise StvadError(f"line {line}: frame {frame} of video {row['video']} given twice", path)
                video[frame] = label
    except OSError as e:
        raise StvadError(f"cannot read ({e.strerror or e})", path) from e
    except (UnicodeDecodeError, csv.Error) as e:
        raise StvadError(f"not a readable CSV text file ({e})", path) from e
    labels = {}
    for video, frames in rows.items():
        n = max(frames) + 1
        if len(frames) != n:
            raise StvadError(
                f"video {video}: frames 0..{n - 1} are not all listed ({len(frames)} rows)", path
            )
        labels[video] = np.array([frames[i] for i in range(n)], dtype=np.uint8)
    return labels


def mask_change(masks, index: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per scored frame: the share of the anomaly mask (union of frames t-1 and t) that changed; NaN on
    normal frames. A frame with an empty union (an anomalous label without mask pixels) counts as moving."""
    out = np.full(len(index), np.nan)
    for k, t in enumerate(index):
        if not labels[k]:
            continue
        a, b = np.asarray(masks[int(t)], bool), np.asarray(masks[int(t) - 1], bool)
        union = int((a | b).sum())
        out[k] = (a ^ b).sum() / union if union else 1.0
    return out
