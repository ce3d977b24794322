"""Frame sources: folders and videos stream uint8 RGB frames; bad input gives one-line StvadErrors."""

from __future__ import annotations

import functools
import http.server
import pickle
import threading
import tracemalloc

import cv2
import numpy as np
import pytest
import torch

from conftest import frame_value, make_rgb, write_frames, write_video
from stvad.data import sources
from stvad.data.sources import ImageFolderSource, VideoSource, open_source, resize_frame, to_model
from stvad.data.windows import iter_windows
from stvad.errors import StvadError


def reds(frames) -> list[int]:
    return [int(round(f[..., 0].mean())) for f in frames]


def test_folder_natural_order_every_extension_and_rgb(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    exts = [".png", ".bmp", ".tif", ".tiff", ".png", ".jpg", ".jpeg", ".png", ".png", ".png", ".png"]
    for i, ext in enumerate(exts):
        # frame1 .. frame11: lexical order would put frame10 and frame11 before frame2
        cv2.imwrite(str(folder / f"frame{i + 1}{ext}"), cv2.cvtColor(make_rgb(i), cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("not a frame")
    src = open_source(folder)
    assert isinstance(src, ImageFolderSource)
    assert len(src) == len(exts)
    frames = list(src)
    assert all(f.dtype == np.uint8 and f.shape == (24, 32, 3) for f in frames)
    # JPEG is lossy, the others exact; red channel carries the index, so RGB order and sort are checked
    assert np.allclose(reds(frames), [frame_value(i) for i in range(len(exts))], atol=3)
    assert np.all(frames[0][..., 2] == 7)


def test_frames_resize_with_area_and_grey(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    checker = np.zeros((8, 8, 3), np.uint8)
    checker[::2, ::2] = 255
    checker[1::2, 1::2] = 255
    cv2.imwrite(str(folder / "0.png"), checker)
    src = open_source(folder)
    (grey,) = src.frames(size=(4, 4), channels=1)
    assert grey.shape == (4, 4, 1) and grey.dtype == np.uint8
    # area averaging gives flat mid-grey; nearest or linear sampling would keep 0/255 pixels
    assert np.all(np.abs(grey.astype(int) - 128) <= 1)
    (colour,) = src.frames(size=(6, 5), channels=3)
    assert colour.shape == (6, 5, 3)
    native = make_rgb(3)
    expected = cv2.cvtColor(native, cv2.COLOR_RGB2GRAY)
    assert np.array_equal(resize_frame(native, None, 1)[..., 0], expected)
    with pytest.raises(StvadError, match="channels"):
        resize_frame(native, None, 2)


def test_folder_read_random_access_and_range(tmp_path):
    src = open_source(write_frames(tmp_path / "clip", 6))
    assert reds([src.read(4)]) == [frame_value(4)]
    assert reds([src.read(-1)]) == [frame_value(5)]
    assert reds(src.iter_range(2, 4)) == [frame_value(2), frame_value(3)]
    with pytest.raises(IndexError):
        src.read(6)


def _two_frames_and(third: bytes | np.ndarray):
    def setup(folder):
        write_frames(folder, 2)
        if isinstance(third, bytes):
            (folder / "002.png").write_bytes(third)
        else:
            cv2.imwrite(str(folder / "002.png"), third)

    return setup


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        (lambda folder: folder.mkdir(), "no frames"),
        (_two_frames_and(b""), "0 bytes"),
        (_two_frames_and(b"not a png"), "cannot decode"),
        (_two_frames_and(np.zeros((10, 10, 3), np.uint8)), "frame size 10x10 differs from 24x32"),
    ],
    ids=["empty", "zero-byte", "corrupt", "mixed-sizes"],
)
def test_folder_errors_name_file_and_problem(tmp_path, setup, match):
    folder = tmp_path / "clip"
    setup(folder)
    with pytest.raises(StvadError, match=match) as err:
        list(open_source(folder))
    expected = folder if match == "no frames" else folder / "002.png"
    assert err.value.path == str(expected)


def test_mixed_sizes_caught_on_random_access(tmp_path):
    folder = write_frames(tmp_path / "clip", 3)
    cv2.imwrite(str(folder / "001.png"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(StvadError, match="differs from 24x32"):
        open_source(folder).read(1)


def test_video_streams_counts_and_seeks(tmp_path):
    path = write_video(tmp_path / "v.avi", 12)
    src = open_source(path)
    assert isinstance(src, VideoSource) and src.name == "v" and src.fps == pytest.approx(10.0)
    assert len(src) == 12
    frames = list(src)
    assert len(frames) == 12 and frames[0].shape == (24, 32, 3) and frames[0].dtype == np.uint8
    assert np.allclose(reds(frames), [frame_value(i) for i in range(12)], atol=4)
    assert np.allclose(
        reds([src.read(7), src.read(8), src.read(2), src.read(-1)]), reds([frames[i] for i in (7, 8, 2, 11)])
    )
    assert np.allclose(reds(src.iter_range(9, 11)), reds(frames[9:11]))
    assert len(list(src.frames((12, 16), 1, start=10))) == 2
    # a source that has been read is still picklable (DataLoader workers under spawn)
    clone = pickle.loads(pickle.dumps(src))
    assert reds([clone.read(3)]) == reds([frames[3]])
    src.close()


def test_video_length_is_decoded_not_the_header_count(tmp_path, monkeypatch):
    path = write_video(tmp_path / "v.avi", 9)
    real_capture = cv2.VideoCapture

    class LyingCapture:
        def __init__(self, *args):
            self._cap = real_capture(*args)

        def get(self, prop):
            return 1000.0 if prop == cv2.CAP_PROP_FRAME_COUNT else self._cap.get(prop)

        def __getattr__(self, name):
            return getattr(self._cap, name)

    monkeypatch.setattr(sources.cv2, "VideoCapture", LyingCapture)
    assert len(open_source(path)) == 9


def test_frame_that_stops_decoding_is_an_error(tmp_path, monkeypatch):
    src = open_source(write_video(tmp_path / "v.avi", 9))
    assert len(src) == 9
    real_capture = cv2.VideoCapture

    class FailingCapture:
        def __init__(self, *args):
            self._cap, self._reads = real_capture(*args), 0

        def read(self):
            self._reads += 1
            return (False, None) if self._reads > 5 else self._cap.read()

        def __getattr__(self, name):
            return getattr(self._cap, name)

    monkeypatch.setattr(sources.cv2, "VideoCapture", FailingCapture)
    with pytest.raises(StvadError, match="frame 5 of 9 could not be decoded"):
        list(src)


@pytest.mark.parametrize(
    ("content", "match"), [(b"", "0 bytes"), (b"RIFF garbage that is no video" * 10, "cannot open video")]
)
def test_unreadable_video(tmp_path, content, match):
    path = tmp_path / "broken.avi"
    path.write_bytes(content)
    with pytest.raises(StvadError, match=match) as err:
        open_source(path)
    assert err.value.path == str(path)


def test_open_source_rejects_missing_and_single_images(tmp_path):
    with pytest.raises(StvadError, match="no such file"):
        open_source(tmp_path / "missing.avi")
    write_frames(tmp_path, 1)
    with pytest.raises(StvadError, match="single image"):
        open_source(tmp_path / "000.png")
    with pytest.raises(StvadError, match="cannot open stream"):
        open_source("rtsp://127.0.0.1:1/none")


def test_http_stream_is_live(tmp_path):
    write_video(tmp_path / "cam.avi", 8)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.func.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        src = open_source(f"http://127.0.0.1:{server.server_address[1]}/cam.avi")
        assert src.live
        with pytest.raises(StvadError, match="length unknown"):
            len(src)
        with pytest.raises(StvadError, match="random access"):
            src.read(0)
        assert len(list(src.frames((12, 16), 1))) == 8
    finally:
        server.shutdown()
        server.server_close()


def test_to_model_range_layout_and_dtype():
    frames = np.zeros((2, 5, 4, 3), np.uint8)
    frames[0, ..., 1] = 255
    x = to_model(frames)
    assert x.shape == (2, 3, 5, 4) and x.dtype == torch.float32
    assert x[0, 1].eq(1).all() and x[0, 0].eq(-1).all() and x[1].eq(-1).all()
    assert to_model(np.full((2, 2, 1), 128, np.uint8)).sub(1 / 255).abs().max() < 1e-6
    with pytest.raises(TypeError):
        to_model(frames.astype(np.float32))


def _peak_traced_bytes(src, size) -> tuple[int, int]:
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_windows(src.frames(size, 3), T=4))
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_streaming_keeps_memory_flat(tmp_path):
    size = (120, 160)
    frame_bytes = size[0] * size[1] * 3
    short = open_source(write_video(tmp_path / "short.avi", 30, size))
    long = open_source(write_video(tmp_path / "long.avi", 150, size))
    n_short, peak_short = _peak_traced_bytes(short, size)
    n_long, peak_long = _peak_traced_bytes(long, size)
    assert (n_short, n_long) == (26, 146)
    # numpy (and OpenCV's numpy-backed output) allocations do not grow with the video's length...
    assert peak_long - peak_short < 2 * frame_bytes, (peak_short, peak_long)
    # ...and stay a small multiple of the T+1 window, far below the 150 frames of the whole video
    assert peak_long < 30 * frame_bytes, f"peak {peak_long / frame_bytes:.1f} frames"
