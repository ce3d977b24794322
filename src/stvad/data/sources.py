"""Frame sources that stream: a folder of frames, a video file, a camera or an RTSP/HTTP stream.

Every source yields native frames as uint8 HxWx3 RGB arrays, one at a time, so a video is never held
in memory whole. ``frames(size, channels)`` resizes (``cv2.INTER_AREA``) and converts to grey or colour
as the model expects; ``to_model`` turns uint8 frames into float tensors in [-1, 1].
"""

from __future__ import annotations

import os
import re
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

from stvad.errors import StvadError, StvadWarning

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
VIDEO_EXTS = (".avi", ".mp4", ".mkv", ".mov", ".mpg", ".mpeg", ".m4v", ".wmv", ".webm", ".flv", ".3gp", ".ts")
# Containers whose header stores the frame count (AVI, MP4/MOV). Others (mkv, webm, ...) give OpenCV only
# duration x frame rate, which variable-rate footage makes unreliable, so they get no truncation warning.
EXACT_COUNT_EXTS = (".avi", ".mp4", ".mov", ".m4v")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


def natural_key(name: str) -> list[int | str]:
    """Sort key that orders ``frame2`` before ``frame10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files of a folder in natural order (hidden files such as macOS ``._x.tif`` skipped)."""
    files = [
        p
        for p in Path(folder).iterdir()
        if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".") and p.is_file()
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def is_video_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTS


def read_image(path: str | os.PathLike, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Decode one image with OpenCV (BGR for colour); unreadable or empty files raise StvadError."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise StvadError(f"cannot read image ({e.strerror or e})", path) from e
    if data.size == 0:
        raise StvadError("empty image file (0 bytes)", path)
    img = cv2.imdecode(data, flags)
    if img is None:
        raise StvadError("cannot decode image (corrupt or unsupported format)", path)
    return img


def resize_frame(frame: np.ndarray, size: tuple[int, int] | None = None, channels: int = 3) -> np.ndarray:
    """Native uint8 HxWx3 RGB frame -> uint8 HxWxC (C = 1 grey or 3 colour), resized to (H, W)."""
    if channels not in (1, 3):
        raise StvadError(f"channels must be 1 (grey) or 3 (colour), got {channels}")
    if size is not None and tuple(size) != frame.shape[:2]:
        frame = cv2.resize(frame, (int(size[1]), int(size[0])), interpolation=cv2.INTER_AREA)
    if channels == 1:
        return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)[..., None]
    return frame


def to_model(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (..., H, W, C) -> float32 (..., C, H, W) in [-1, 1]."""
    x = torch.as_tensor(frames)
    if x.dtype != torch.uint8:
        raise TypeError(f"to_model expects uint8 frames, got {x.dtype}")
    if x.ndim < 3:
        raise ValueError(f"to_model expects (..., H, W, C) frames, got shape {tuple(x.shape)}")
    return x.movedim(-1, -3).float().div_(127.5).sub_(1.0)


class FrameSource(ABC):
    """A sequence of frames that streams: native frames are uint8 HxWx3 RGB."""

    name: str
    path: str

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def iter_range(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Native frames ``start`` .. ``stop - 1`` (to the end when ``stop`` is None), streaming."""

    @abstractmethod
    def read(self, i: int) -> np.ndarray:
        """Frame ``i`` (0-based), native uint8 HxWx3 RGB."""

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.iter_range()

    def frames(
        self, size: tuple[int, int] | None = None, channels: int = 3, start: int = 0, stop: int | None = None
    ) -> Iterator[np.ndarray]:
        """Frames resized to ``size`` = (H, W) (native when None), uint8 HxWxC with C = ``channels``."""
        return iter_resized(self.iter_range(start, stop), size, channels)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"


class ImageFolderSource(FrameSource):
    """A folder of frame images (jpg, jpeg, png, tif, tiff, bmp) in natural sort order."""

    def __init__(self, folder: str | os.PathLike, name: str | None = None):
        folder = Path(folder)
        if not folder.is_dir():
            raise StvadError("frame folder not found", folder)
        self.files = list_images(folder)
        if not self.files:
            raise StvadError(f"no frames ({', '.join(e[1:] for e in IMAGE_EXTS)}) in folder", folder)
        self.path = str(folder)
        self.name = name if name is not None else folder.name
        self._shape: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, path: Path) -> np.ndarray:
        frame = cv2.cvtColor(read_image(path), cv2.COLOR_BGR2RGB)
        if self._shape is None:
            self._shape = frame.shape
        elif frame.shape != self._shape:
            h, w = self._shape[:2]
            raise StvadError(
                f"frame size {frame.shape[0]}x{frame.shape[1]} differs from {h}x{w} of the folder's "
                f"first frame {self.files[0].name}",
                path,
            )
        return frame

    def iter_range(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        if self._shape is None and start > 0:
            # the folder's first frame fixes the size that every other frame must match
            self._load(self.files[0])
        for path in self.files[start:stop]:
            yield self._load(path)

    def read(self, i: int) -> np.ndarray:
        if not -len(self) <= i < len(self):
            raise IndexError(f"frame {i} out of range for {len(self)} frames of {self.path}")
        if self._shape is None:
            # the folder's first frame fixes the size that every other frame must match
            self._load(self.files[0])
        return self._load(self.files[i])


class VideoSource(FrameSource):
    """A video file, camera index or stream URL decoded with OpenCV, one frame at a time.

    Files have a length, counted once by decoding (``CAP_PROP_FRAME_COUNT`` is wrong for some codecs);
    cameras and URLs are live: their length is unknown and they cannot seek. A file that ends before the
    frame count its header declares gets a StvadWarning: it may be truncated, but edited files and AVIs with
    dropped (empty) frames carry stale counts too, so the frames that decode are still used.
    """

    def __init__(self, target: str | os.PathLike | int, name: str | None = None):
        self.live = isinstance(target, int) or str(target).lower().startswith(STREAM_SCHEMES)
        self.target: str | int = target if isinstance(target, int) else os.fspath(target)
        self.path = str(self.target)
        if not self.live:
            path = Path(self.target)
            if not path.is_file():
                raise StvadError("video file not found", path)
            if path.stat().st_size == 0:
                raise StvadError("empty video file (0 bytes)", path)
            self.name = name if name is not None else path.stem
        elif name is not None:
            self.name = name
        else:
            self.name = f"camera{self.target}" if isinstance(target, int) else self.path
        self._count: int | None = None
        self._cursor: tuple[cv2.VideoCapture, int] | None = None  # open capture for read(), next index
        cap = self._open()
        try:
            self.fps = float(cap.get(cv2.CAP_PROP_FPS)) or None
            declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            exact = not self.live and Path(self.path).suffix.lower() in EXACT_COUNT_EXTS
            self.declared: int | None = declared if exact and declared > 0 else None
            self._warned = False
            if not self.live and not cap.grab():
                raise StvadError("no frame could be decoded from the video", self.path)
        finally:
            cap.release()

    def _open(self) -> cv2.VideoCapture:
        if isinstance(self.target, int):  # a missing camera: our one-line error, not OpenCV's [ WARN ] lines
            previous = cv2.utils.logging.getLogLevel()
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
            try:
                cap = cv2.VideoCapture(self.target)
            finally:
                cv2.utils.logging.setLogLevel(previous)
        else:
            cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            what = "camera" if isinstance(self.target, int) else "stream" if self.live else "video"
            raise StvadError(f"cannot open {what} (missing codec, corrupt file or unreachable)", self.path)
        return cap

    def __len__(self) -> int:
        if self.live:
            raise StvadError("length unknown: a live camera or stream has no frame count", self.path)
        if self._count is None:
            cap = self._open()
            n = 0
            try:
                while cap.grab():
                    n += 1
            finally:
                cap.release()
            self._check_complete(n)
            self._count = n
        return self._count

    def _check_complete(self, n: int) -> None:
        if self.declared is not None and n < self.declared and not self._warned:
            self._warned = True
            warnings.warn(
                StvadWarning(
                    f"only {n} of the {self.declared} frames its header declares can be read (truncated or "
                    "damaged, or a stale count); using those",
                    self.path,
                ),
                stacklevel=2,
            )

    def iter_range(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        cap = self._open()
        try:
            for _ in range(start):
                if not cap.grab():
                    return
            i = start
            while stop is None or i < stop:
                ok, bgr = cap.read()
                if not ok:
                    # a frame the counting pass found but that will not decode must not end the video quietly
                    if self._count is not None and i < self._count:
                        raise StvadError(f"frame {i} of {self._count} could not be decoded", self.path)
                    self._check_complete(i)
                    break
                i += 1
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()

    def read(self, i: int) -> np.ndarray:
        """Frame ``i`` by decoding forward from the last position (seeking is inexact for some codecs).

        Sequential calls cost one decode each; going backwards reopens the file.
        """
        if self.live:
            raise StvadError("random access is not possible on a live camera or stream", self.path)
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"frame {i} out of range for {n} frames of {self.path}")
        i %= n
        if self._cursor is None or self._cursor[1] > i:
            self.close()
            self._cursor = (self._open(), 0)
        cap, pos = self._cursor
        while pos < i:
            if not cap.grab():
                break
            pos += 1
        ok, bgr = cap.read()
        if pos < i or not ok:
            self.close()
            raise StvadError(f"frame {i} could not be decoded", self.path)
        self._cursor = (cap, i + 1)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        """Release the capture kept open by ``read``."""
        if getattr(self, "_cursor", None) is not None:
            self._cursor[0].release()
            self._cursor = None

    def __del__(self) -> None:
        self.close()

    def __getstate__(self) -> dict:
        # an open capture cannot be pickled (DataLoader workers under spawn); read() reopens it
        state = self.__dict__.copy()
        state["_cursor"] = None
        return state


def open_source(target: str | os.PathLike | int, name: str | None = None) -> FrameSource:
    """A frame folder, a video file, a camera index (int or digits) or an rtsp/http URL."""
    if isinstance(target, int):
        return VideoSource(target, name)
    text = os.fspath(target)
    if text.lower().startswith(STREAM_SCHEMES):
        return VideoSource(text, name)
    path = Path(text)
    if path.is_dir():
        return ImageFolderSource(path, name)
    if path.is_file():
        if path.suffix.lower() in IMAGE_EXTS:
            raise StvadError("a single image is not a video: give the folder that holds the frames", path)
        return VideoSource(path, name)
    if text.isdigit():
        return VideoSource(int(text), name)
    raise StvadError("no such file, folder or camera", path)


def iter_resized(
    frames: Iterable[np.ndarray], size: tuple[int, int] | None, channels: int
) -> Iterator[np.ndarray]:
    """Apply ``resize_frame`` to any iterable of native frames."""
    for frame in frames:
        yield resize_frame(frame, size, channels)
