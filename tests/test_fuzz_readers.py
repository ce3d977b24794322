"""Fuzzing the ground-truth and layout readers: whatever bytes or folder structure they are given, they
return a result or raise StvadError (one clear line for the user), never another exception."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from stvad.data.labels import (
    NpyMaskSource,
    read_avenue_labels,
    read_ffp_mat,
    read_labels_csv,
    read_shanghaitech_labels,
    read_ucsd_m,
)
from stvad.data.layouts import dataset_info, open_dataset
from stvad.data.matfile import check_parsable
from stvad.errors import StvadError

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parsed_or_refused(read: Callable[[], object]) -> object:
    """Run a reader: any exception but StvadError fails the test (pytest shows it with its traceback)."""
    try:
        return read()
    except StvadError as e:
        assert str(e).strip() and "\n" not in str(e), f"not one line: {e!r}"
        return None


def mat_bytes(mdict: dict) -> bytes:
    buf = io.BytesIO()
    scipy.io.savemat(buf, mdict)
    return buf.getvalue()


def cell(items: list[np.ndarray]) -> np.ndarray:
    c = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        c[i] = item
    return c


small_arrays = hnp.arrays(
    dtype=st.sampled_from([np.uint8, np.uint16, np.int32, np.float64, np.bool_]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
)
mat_values = st.one_of(
    small_arrays,
    st.lists(small_arrays, max_size=4).map(cell),
    st.text(max_size=8),
    st.integers(-5, 300),
)
VALID_FFP = mat_bytes({"gt": cell([np.array([[3], [7]]), np.array([[1, 9], [4, 12]])])})
VALID_AVENUE = mat_bytes({"volLabel": cell([np.zeros((4, 5), np.uint8), np.ones((4, 5), np.uint8)])})


def mutated(valid: bytes) -> st.SearchStrategy[bytes]:
    """A valid file truncated, with bytes overwritten, or with bytes appended."""
    cut = st.integers(0, len(valid)).map(lambda n: valid[:n])
    flipped = st.lists(
        st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 255)), min_size=1, max_size=8
    ).map(lambda edits: _apply_edits(valid, edits))
    return st.one_of(cut, flipped, st.binary(max_size=64).map(lambda tail: valid + tail))


def _apply_edits(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    b = bytearray(data)
    for pos, value in edits:
        b[pos] = value
    return bytes(b)


def in_tmp(write: Callable[[Path], Path], read: Callable[[Path], object]) -> object:
    """Write a file or folder in a fresh temporary folder (hypothesis reruns the body; a function-scoped
    tmp_path would be shared by its examples) and read it."""
    with tempfile.TemporaryDirectory() as tmp:
        return parsed_or_refused(lambda: read(write(Path(tmp))))


def write_file(name: str, data: bytes) -> Callable[[Path], Path]:
    def write(tmp: Path) -> Path:
        (tmp / name).write_bytes(data)
        return tmp / name

    return write


# ------------------------------------------------------------------------ FFP .mat

MAT_FUZZ = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def read_mats(files: list[bytes]) -> list[object]:
    """read_ffp_mat on each file. The files are first checked together in one child process (as
    avenue_label_files does), so an example costs one child, not one per file."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / f"gt{i}.mat" for i in range(len(files))]
        for path, data in zip(paths, files):
            path.write_bytes(data)
        parsed_or_refused(lambda: check_parsable(paths))
        return [parsed_or_refused(lambda p=p: read_ffp_mat(p)) for p in paths]


@MAT_FUZZ
@given(st.lists(st.one_of(st.binary(max_size=300), mutated(VALID_FFP)), min_size=1, max_size=8))
def test_ffp_mat_bytes(files: list[bytes]) -> None:
    read_mats(files)


@MAT_FUZZ
@given(
    st.lists(
        st.dictionaries(st.sampled_from(["gt", "other"]), mat_values, min_size=1), min_size=1, max_size=8
    )
)
def test_ffp_mat_structures(mdicts: list[dict]) -> None:
    for result in read_mats([mat_bytes(d) for d in mdicts]):
        if result is not None:  # what is returned is what the layout reader relies on
            assert all(isinstance(s, int) and isinstance(e, int) for video in result for s, e in video)


def test_a_mat_file_that_crashes_scipy_is_refused_not_fatal(tmp_path: Path) -> None:
    """One flipped type code of a data element makes SciPy's compiled reader segfault (scipy PR #25349):
    the file is parsed in a child first, so this process lives and the user gets the file named."""
    valid = mat_bytes({"gt": cell([np.array([[3], [7]], np.int64)])})
    tag = struct.pack("<II", 12, 16)  # miINT64, 16 bytes: the [3; 7] column
    assert valid.count(tag) == 1
    path = tmp_path / "gt.mat"
    path.write_bytes(valid.replace(tag, struct.pack("<II", 224, 16)))
    child = subprocess.run(
        [sys.executable, "-c", f"import scipy.io; scipy.io.loadmat({str(path)!r})"], check=False
    )
    with pytest.raises(StvadError) as e:
        read_ffp_mat(path)
    assert e.value.path == str(path)
    if child.returncode < 0:  # the SciPy installed crashes on it, as 1.17 does
        assert "SciPy's MAT parser crashed on it (SIG" in e.value.message


def test_ffp_mat_that_parses_gives_intervals(tmp_path: Path) -> None:
    """The fuzzed reader still reads a good file (a reader that refused everything would pass the rest)."""
    (tmp_path / "gt.mat").write_bytes(VALID_FFP)
    assert read_ffp_mat(tmp_path / "gt.mat") == [[(3, 7)], [(1, 4), (9, 12)]]


# ------------------------------------------------------------------------ UCSD .m

M_TOKENS = [
    "TestVideoFile{end+1}.gt_frame = [",
    "TestVideoFile{2}.gt_frame = [",
    "TestVideoFile{0}.gt_frame = [",
    "]",
    ";",
    ":",
    ",",
    " ",
    "\n",
    "% comment ",
    "61",
    "180",
    "0",
    "99999999999999999999",
    "end",
    "system('touch pwned');",
    "!rm -rf /",
    "\x00",
    "é",
]


@FUZZ
@given(st.one_of(st.lists(st.sampled_from(M_TOKENS), max_size=30).map("".join), st.text(max_size=200)))
def test_ucsd_m_text(text: str) -> None:
    result = in_tmp(write_file("UCSDped2.m", text.encode("utf-8", "surrogatepass")), read_ucsd_m)
    if result is not None:
        assert all(isinstance(a, int) and isinstance(b, int) for video in result for a, b in video)


@FUZZ
@given(st.binary(max_size=300))
def test_ucsd_m_bytes(data: bytes) -> None:
    in_tmp(write_file("UCSDped2.m", data), read_ucsd_m)


def test_ucsd_m_is_parsed_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    m = tmp_path / "UCSDped2.m"
    m.write_text(
        f"system('touch {marker}');\n!touch {marker}\nunix('touch {marker}')\n"
        "TestVideoFile{end+1}.gt_frame = [61:180];\nTestVideoFile{end+1}.gt_frame = [3, 7:9];\n"
    )
    assert read_ucsd_m(m) == [[(61, 180)], [(3, 3), (7, 9)]]
    assert not marker.exists()


# ------------------------------------------------------------------------ Avenue N_label.mat


@MAT_FUZZ
@given(
    st.lists(
        st.one_of(
            st.dictionaries(st.sampled_from(["volLabel", "x"]), mat_values, min_size=1).map(mat_bytes),
            mutated(VALID_AVENUE),
            st.binary(max_size=100),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_avenue_label_folder(files: list[bytes]) -> None:
    from stvad.data.labels import read_avenue_masks

    def write(tmp: Path) -> Path:
        for i, data in enumerate(files, start=1):
            (tmp / f"{i}_label.mat").write_bytes(data)
        return tmp

    read_avenue_masks.cache_clear()  # the same temporary path may come back with other contents
    result = in_tmp(write, read_avenue_labels)
    if result is not None:
        assert all(v.dtype == np.uint8 and v.ndim == 1 for v in result.values())


# ------------------------------------------------------------------------ ShanghaiTech .npy

npy_arrays = hnp.arrays(
    dtype=st.sampled_from([np.uint8, np.int64, np.float32, np.bool_, np.complex64]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
)


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


npy_files = st.one_of(
    npy_arrays.map(npy_bytes),
    npy_arrays.map(npy_bytes).flatmap(mutated),
    st.binary(max_size=120),
    st.just(npy_bytes(np.array([{"a": 1}], dtype=object))),  # pickled objects must be refused, not loaded
)


@FUZZ
@given(st.lists(npy_files, min_size=1, max_size=3))
def test_shanghaitech_frame_masks(files: list[bytes]) -> None:
    def write(tmp: Path) -> Path:
        for i, data in enumerate(files):
            (tmp / f"01_{i:04d}.npy").write_bytes(data)
        return tmp

    result = in_tmp(write, read_shanghaitech_labels)
    if result is not None:
        assert all(v.dtype == np.uint8 and v.ndim == 1 for v in result.values())


@FUZZ
@given(npy_files)
def test_npy_pixel_masks(data: bytes) -> None:
    def read(path: Path) -> object:
        masks = NpyMaskSource(path)
        return [masks[i].shape for i in range(len(masks))]

    in_tmp(write_file("01_0014.npy", data), read)


# ------------------------------------------------------------------------ labels.csv

CSV_TOKENS = [
    "video",
    "frame",
    "label",
    ",",
    "\n",
    "\r\n",
    "cam1",
    "cam2",
    "0",
    "1",
    "2",
    "-1",
    "x",
    '"',
    " ",
    "",
]


@FUZZ
@given(
    st.one_of(
        st.lists(st.sampled_from(CSV_TOKENS), max_size=40).map(lambda t: "video,frame,label\n" + "".join(t)),
        st.lists(st.sampled_from(CSV_TOKENS), max_size=40).map("".join),
        st.text(max_size=100),
    )
)
def test_labels_csv_text(text: str) -> None:
    result = in_tmp(write_file("labels.csv", text.encode("utf-8", "surrogatepass")), read_labels_csv)
    if result is not None:
        assert all(set(np.unique(v)) <= {0, 1} for v in result.values())


@FUZZ
@given(st.binary(max_size=200))
def test_labels_csv_bytes(data: bytes) -> None:
    in_tmp(write_file("labels.csv", data), read_labels_csv)


# ------------------------------------------------------------------------ open_dataset on random trees


def _png(size: tuple[int, int] = (8, 8)) -> bytes:
    ok, buf = cv2.imencode(".png", np.full((*size, 3), 90, np.uint8))
    assert ok
    return buf.tobytes()


def _avi(n: int) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "v.avi")
        w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (16, 8))
        assert w.isOpened()
        for i in range(n):
            w.write(np.full((8, 16, 3), 20 * i % 256, np.uint8))
        w.release()
        return Path(path).read_bytes()


FOLDERS = [
    "training/frames/01",
    "testing/frames/01",
    "testing/frames/02",
    "testing/masks/01",
    "training/videos",
    "testing/test_frame_mask",
    "testing/test_pixel_mask",
    "training_videos",
    "testing_videos",
    "testing_label_mask",
    "UCSDped2/Train/Train001",
    "UCSDped2/Test/Test001",
    "UCSDped2/Test/Test001_gt",
    "train/cam1",
    "test/cam1",
    "test",
    "train",
]
FILES = ["000.png", "001.png", "002.tif", "01.avi", "1_label.mat", "01_0014.npy", "labels.csv", "x.mat"]
FILES_AT_ROOT = ["data.mat", "other.mat", "UCSDped2/Test/UCSDped2.m"]
AVI = _avi(6)
CONTENTS = st.one_of(
    st.sampled_from([b"", _png(), _png((9, 8)), AVI, AVI[: len(AVI) // 2], VALID_FFP, VALID_AVENUE]),
    st.binary(max_size=40),
    npy_arrays.map(npy_bytes),
    st.lists(st.sampled_from(CSV_TOKENS), max_size=20).map(
        lambda t: ("video,frame,label\n" + "".join(t)).encode()
    ),
)
entries = st.one_of(
    st.tuples(st.sampled_from(FOLDERS), st.sampled_from(FILES)).map(lambda t: f"{t[0]}/{t[1]}"),
    st.sampled_from(FILES_AT_ROOT),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(entries, CONTENTS), max_size=10),
    st.lists(st.sampled_from(FOLDERS), max_size=3),
    st.sampled_from([None, "ffp", "avenue", "ucsd", "shanghaitech", "folder"]),
)
def test_open_dataset_on_random_trees(files: list[tuple[str, bytes]], empty: list[str], layout) -> None:
    from stvad.data.labels import read_avenue_masks

    def write(root: Path) -> Path:
        for folder in empty:
            (root / folder).mkdir(parents=True, exist_ok=True)
        for rel, data in files:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        return root

    def read(root: Path) -> object:
        ds = open_dataset(root, layout=layout)
        info = dataset_info(ds)
        for video in ds.train + ds.test:  # decode what the layout found: frames and masks
            for _ in video.source:
                pass
            if video.masks is not None and len(video.masks):
                video.masks[0]
        return info

    read_avenue_masks.cache_clear()
    in_tmp(write, read)


@pytest.mark.parametrize("layout", [None, "ffp"])
def test_random_tree_reader_reads_a_good_tree(tmp_path: Path, layout) -> None:
    """The same writer and reader on a well-formed FFP tree gives its videos and labels."""
    for folder in ("training/frames/01", "testing/frames/01", "testing/frames/02"):
        (tmp_path / folder).mkdir(parents=True)
        for i in range(12):
            (tmp_path / folder / f"{i:03d}.png").write_bytes(_png())
    (tmp_path / "data.mat").write_bytes(VALID_FFP)
    info = dataset_info(open_dataset(tmp_path, layout=layout))
    assert info == {
        "layout": "ffp",
        "train": {"videos": 1, "frames": 12},
        "test": {"videos": 2, "frames": 24, "anomalous_frames": 5 + 8},
    }
