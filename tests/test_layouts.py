"""Layout readers on tiny fixtures written in each benchmark's exact format."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import scipy.io

from conftest import write_frames, write_video
from stvad.cli import main
from stvad.data.labels import (
    intervals_to_labels,
    labels_from_masks,
    read_avenue_labels,
    read_ffp_mat,
    read_labels_csv,
    read_shanghaitech_labels,
    read_ucsd_m,
)
from stvad.data.layouts import dataset_info, detect_layout, open_dataset
from stvad.data.sources import ImageFolderSource, VideoSource
from stvad.errors import StvadError


def cell(items) -> np.ndarray:
    """A 1 x n MATLAB cell array for scipy.io.savemat."""
    c = np.empty((1, len(items)), dtype=object)
    for i, item in enumerate(items):
        c[0, i] = item
    return c


def write_masks(folder, flags, size=(24, 32), ext=".png", fmt="{:03d}"):
    """One mask image per frame; frames with a true flag get a small anomalous blob."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, flag in enumerate(flags):
        m = np.zeros(size, np.uint8)
        if flag:
            m[3:6, 4:9] = 255
        cv2.imwrite(str(folder / (fmt.format(i) + ext)), m)


# ---------------------------------------------------------------- FFP


def make_ffp(root, test_lengths=(10, 8), gt=((3, 5), (1, 8)), masks=True):
    for k, n in enumerate((12, 9), start=1):
        write_frames(root / "training" / "frames" / f"{k:02d}", n, ext=".jpg")
    for k, n in enumerate(test_lengths, start=1):
        write_frames(root / "testing" / "frames" / f"{k:02d}", n, ext=".jpg")
    # as in the real ped2.mat: uint8 [start; end] columns, one cell entry per test video
    entries = [np.array([[3, 8], [5, 9]], np.uint8), np.array([[gt[1][0]], [gt[1][1]]], np.uint8)]
    scipy.io.savemat(root / f"{root.name}.mat", {"gt": cell(entries)})
    if masks:
        labels = intervals_to_labels([(3, 5), (8, 9)], test_lengths[0])
        write_masks(root / "testing" / "masks" / "01", labels)
    return root


def test_ffp_reads_frames_intervals_and_masks(tmp_path):
    root = make_ffp(tmp_path / "bench")
    assert detect_layout(root) == "ffp"
    ds = open_dataset(root)
    assert ds.layout == "ffp" and ds.label_source == str(root / "bench.mat")
    assert [v.name for v in ds.train] == ["01", "02"] and [v.name for v in ds.test] == ["01", "02"]
    assert all(isinstance(v.source, ImageFolderSource) for v in ds.train + ds.test)
    assert all(v.labels is None for v in ds.train)
    assert ds.test[0].labels.tolist() == [0, 0, 1, 1, 1, 0, 0, 1, 1, 0]
    assert ds.test[1].labels.dtype == np.uint8 and ds.test[1].labels.tolist() == [1] * 8
    masks = ds.test[0].masks
    assert len(masks) == 10 and masks[2].dtype == bool and masks[2].shape == (24, 32)
    assert np.array_equal(labels_from_masks(masks), ds.test[0].labels)
    assert ds.test[1].masks is None
    assert dataset_info(ds) == {
        "layout": "ffp",
        "train": {"videos": 2, "frames": 21},
        "test": {"videos": 2, "frames": 18, "anomalous_frames": 13},
    }


def test_ffp_interval_past_the_end_names_video_and_numbers(tmp_path):
    root = make_ffp(tmp_path / "bench", gt=((3, 5), (2, 11)), masks=False)
    with pytest.raises(StvadError, match=r"interval 2-11 does not fit the 8 frames of video 02") as err:
        open_dataset(root)
    assert err.value.path == str(root / "bench.mat")


def test_ffp_mask_count_mismatch(tmp_path):
    root = make_ffp(tmp_path / "bench")
    (root / "testing" / "masks" / "01" / "009.png").unlink()
    with pytest.raises(StvadError, match="video 01 has 10 frames but its ground truth .* has 9"):
        open_dataset(root)


def test_ffp_mat_video_count_mismatch_and_large_values(tmp_path):
    root = make_ffp(tmp_path / "bench", masks=False)
    # uint16 intervals past 255 must not wrap around
    scipy.io.savemat(root / "bench.mat", {"gt": cell([np.array([[250], [300]], np.uint16)])})
    assert read_ffp_mat(root / "bench.mat") == [[(250, 300)]]
    with pytest.raises(StvadError, match="ground truth for 1 test videos but testing/frames has 2"):
        open_dataset(root)


def test_ffp_without_ground_truth(tmp_path):
    root = make_ffp(tmp_path / "bench", masks=False)
    (root / "bench.mat").unlink()
    info = dataset_info(open_dataset(root))
    assert info["test"] == {"videos": 2, "frames": 18}


# ---------------------------------------------------------------- Avenue


def write_vollabel(path, flags, size=(24, 32)):
    masks = []
    for flag in flags:
        m = np.zeros(size, np.uint8)
        if flag:
            m[10, 12] = 1
        masks.append(m)
    scipy.io.savemat(path, {"volLabel": cell(masks)})


def make_avenue(root):
    write_video(root / "training_videos" / "01.avi", 7)
    write_video(root / "testing_videos" / "01.avi", 6)
    write_video(root / "testing_videos" / "02.avi", 5)
    (root / "testing_label_mask").mkdir()
    write_vollabel(root / "testing_label_mask" / "1_label.mat", [0, 1, 1, 0, 0, 1])
    write_vollabel(root / "testing_label_mask" / "2_label.mat", [0, 0, 0, 0, 1])
    write_vollabel(root / "testing_label_mask" / "3_label.mat", [1, 1])  # a video that is absent
    return root


def test_avenue_videos_and_volLabel_masks(tmp_path):
    root = make_avenue(tmp_path / "avenue")
    assert detect_layout(root) == "avenue"
    ds = open_dataset(root)
    assert all(isinstance(v.source, VideoSource) for v in ds.train + ds.test)
    assert ds.test[0].labels.tolist() == [0, 1, 1, 0, 0, 1]
    assert ds.test[1].labels.tolist() == [0, 0, 0, 0, 1]
    mask = ds.test[0].masks[1]
    assert mask.dtype == bool and mask.shape == (24, 32) and mask.sum() == 1 and mask[10, 12]
    assert dataset_info(ds)["test"] == {"videos": 2, "frames": 11, "anomalous_frames": 4}
    standalone = read_avenue_labels(root / "testing_label_mask")
    assert list(standalone) == ["01", "02", "03"] and standalone["03"].tolist() == [1, 1]


def test_avenue_length_mismatch(tmp_path):
    root = make_avenue(tmp_path / "avenue")
    write_vollabel(root / "testing_label_mask" / "2_label.mat", [0, 0, 0, 1])
    with pytest.raises(StvadError, match="video 02 has 5 frames but its ground truth .*2_label.mat has 4"):
        open_dataset(root)


def test_avenue_missing_mask_file(tmp_path):
    root = make_avenue(tmp_path / "avenue")
    (root / "testing_label_mask" / "2_label.mat").unlink()
    with pytest.raises(StvadError, match="no 2_label.mat for test video 02"):
        open_dataset(root)


# ---------------------------------------------------------------- UCSD


UCSD_M = """TestVideoFile = {};
% a comment with TestVideoFile{end+1}.gt_frame = [1:2];
TestVideoFile{end+1}.gt_frame = [3:5];
TestVideoFile{end+1}.gt_frame = [1:2, 5:6 8];
"""


def make_ucsd(parent, name="UCSDped2"):
    ped = parent / name
    write_frames(ped / "Train" / "Train001", 6, ext=".tif")
    write_frames(ped / "Train" / "Train002", 5, ext=".tif")
    write_frames(ped / "Test" / "Test001", 7, ext=".tif")
    write_frames(ped / "Test" / "Test002", 8, ext=".tif")
    write_masks(ped / "Test" / "Test001_gt", [0, 0, 1, 1, 1, 0, 0], ext=".bmp")
    (ped / "Test" / f"{name}.m").write_text(UCSD_M)
    return ped


def test_ucsd_m_parsed_as_text(tmp_path):
    path = tmp_path / "UCSDped9.m"
    path.write_text(UCSD_M + "TestVideoFile{4}.gt_frame = [];\nTestVideoFile{3}.gt_frame = [10:12];\n")
    assert read_ucsd_m(path) == [[(3, 5)], [(1, 2), (5, 6), (8, 8)], [(10, 12)], []]
    path.write_text("TestVideoFile{2}.gt_frame = [1:3];\n")
    with pytest.raises(StvadError, match="no gt_frame for test video"):
        read_ucsd_m(path)
    path.write_text("x = 1;\n")
    with pytest.raises(StvadError, match="no 'gt_frame"):
        read_ucsd_m(path)


@pytest.mark.parametrize("from_parent", [True, False])
def test_ucsd_layout(tmp_path, from_parent):
    ped = make_ucsd(tmp_path)
    root = tmp_path if from_parent else ped
    assert detect_layout(root) == "ucsd"
    ds = open_dataset(root)
    assert [v.name for v in ds.train] == ["Train001", "Train002"]
    assert [v.name for v in ds.test] == ["Test001", "Test002"]  # Test001_gt is a mask folder, not a video
    assert ds.test[0].labels.tolist() == [0, 0, 1, 1, 1, 0, 0]
    assert ds.test[1].labels.tolist() == [1, 1, 0, 0, 1, 1, 0, 1]
    assert np.array_equal(labels_from_masks(ds.test[0].masks), ds.test[0].labels)
    assert ds.test[1].masks is None
    assert ds.label_source == str(ped / "Test" / "UCSDped2.m")


def test_ucsd_two_peds_is_ambiguous(tmp_path):
    make_ucsd(tmp_path, "UCSDped1")
    make_ucsd(tmp_path, "UCSDped2")
    with pytest.raises(StvadError, match="UCSDped1, UCSDped2: give one of them"):
        open_dataset(tmp_path)


def test_ucsd_range_longer_than_video(tmp_path):
    ped = make_ucsd(tmp_path)
    (ped / "Test" / "UCSDped2.m").write_text("T{end+1}.gt_frame = [3:5];\nT{end+1}.gt_frame = [1:9];\n")
    with pytest.raises(StvadError, match="interval 1-9 does not fit the 8 frames of video Test002"):
        open_dataset(ped)


# ---------------------------------------------------------------- ShanghaiTech


def make_shanghaitech(root):
    write_video(root / "training" / "videos" / "01_001.avi", 6)
    write_video(root / "training" / "videos" / "01_002.avi", 5)
    write_frames(root / "testing" / "frames" / "01_0014", 6, ext=".jpg")
    write_frames(root / "testing" / "frames" / "01_0015", 4, ext=".jpg")
    (root / "testing" / "test_frame_mask").mkdir(parents=True)
    np.save(root / "testing" / "test_frame_mask" / "01_0014.npy", np.array([0, 0, 1, 1, 0, 0], np.uint8))
    np.save(root / "testing" / "test_frame_mask" / "01_0015.npy", np.array([1, 0, 0, 0], np.uint8))
    (root / "testing" / "test_pixel_mask").mkdir()
    volume = np.zeros((6, 24, 32), np.uint8)
    volume[2:4, 5:9, 5:9] = 1
    np.save(root / "testing" / "test_pixel_mask" / "01_0014.npy", volume)
    return root


def test_shanghaitech_layout(tmp_path):
    root = make_shanghaitech(tmp_path / "sht")
    assert detect_layout(root) == "shanghaitech"
    ds = open_dataset(root)
    assert [v.name for v in ds.train] == ["01_001", "01_002"]
    assert all(isinstance(v.source, VideoSource) for v in ds.train)
    assert ds.test[0].labels.tolist() == [0, 0, 1, 1, 0, 0]
    assert len(ds.test[0].masks) == 6 and ds.test[0].masks[2].sum() == 16 and not ds.test[0].masks[0].any()
    assert ds.test[1].masks is None
    assert dataset_info(ds) == {
        "layout": "shanghaitech",
        "train": {"videos": 2, "frames": 11},
        "test": {"videos": 2, "frames": 10, "anomalous_frames": 3},
    }
    assert read_shanghaitech_labels(root / "testing" / "test_frame_mask")["01_0015"].tolist() == [1, 0, 0, 0]


def test_shanghaitech_length_mismatch(tmp_path):
    root = make_shanghaitech(tmp_path / "sht")
    np.save(root / "testing" / "test_frame_mask" / "01_0015.npy", np.zeros(5, np.uint8))
    with pytest.raises(StvadError, match="video 01_0015 has 4 frames but its ground truth .* has 5"):
        open_dataset(root)


# ---------------------------------------------------------------- own folder


def make_own(root):
    write_video(root / "train" / "walk.avi", 6)
    write_frames(root / "train" / "street", 5)
    write_video(root / "test" / "cam1.avi", 4)
    write_frames(root / "test" / "cam2", 3, ext=".jpg")
    rows = ["video,frame,label"] + [f"cam1,{i},{int(i >= 2)}" for i in range(4)]
    rows += ["cam2,2,1", "cam2,0,0", "cam2,1,0"]  # any order
    (root / "test" / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_own_folder_layout(tmp_path):
    root = make_own(tmp_path / "mine")
    assert detect_layout(root) == "folder"
    ds = open_dataset(root)
    assert [v.name for v in ds.train] == ["street", "walk"]
    assert isinstance(ds.train[0].source, ImageFolderSource) and isinstance(ds.train[1].source, VideoSource)
    assert ds.test[0].labels.tolist() == [0, 0, 1, 1] and ds.test[1].labels.tolist() == [0, 0, 1]
    assert dataset_info(ds)["test"] == {"videos": 2, "frames": 7, "anomalous_frames": 3}


def test_own_folder_unlabelled_and_single_frame_folder(tmp_path):
    root = tmp_path / "mine"
    write_frames(root / "train", 5)
    write_video(root / "test" / "x.avi", 3)
    ds = open_dataset(root)
    assert [v.name for v in ds.train] == ["train"] and len(ds.train[0].source) == 5
    assert dataset_info(ds)["test"] == {"videos": 1, "frames": 3}


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        (["cam1,0,0", "cam1,1,0", "cam1,2,0"], "video cam1 has 4 frames but its ground truth .* has 3"),
        (["cam1,0,0", "cam1,1,0", "cam1,3,0", "cam1,4,0"], r"frames 0..4 are not all listed"),
        ([f"cam1,{i},0" for i in range(4)] + ["cam3,0,1"], "labels for videos not in test/: cam3"),
        (["cam1,0,2"], "label 0 or 1"),
        (["cam1,x,0"], "line 2: frame and label must be integers"),
    ],
)
def test_own_folder_bad_labels(tmp_path, rows, match):
    root = make_own(tmp_path / "mine")
    keep = [f"cam2,{i},0" for i in range(3)]
    (root / "test" / "labels.csv").write_text("\n".join(["video,frame,label", *rows, *keep]) + "\n")
    with pytest.raises(StvadError, match=match):
        open_dataset(root)


def test_labels_csv_needs_header(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(StvadError, match="video,frame,label"):
        read_labels_csv(path)


# ---------------------------------------------------------------- detection and CLI


def test_forced_layout_and_unknown_folders(tmp_path):
    root = make_own(tmp_path / "mine")
    with pytest.raises(StvadError, match="unknown layout 'kitti'"):
        open_dataset(root, layout="kitti")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StvadError, match="no known benchmark layout"):
        open_dataset(tmp_path / "empty")
    with pytest.raises(StvadError, match="no videos found for the ffp layout"):
        open_dataset(root, layout="ffp")
    with pytest.raises(StvadError, match="benchmark folder not found"):
        open_dataset(tmp_path / "nowhere", layout="ffp")


def test_forced_layout_overrides_detection(tmp_path):
    # an own folder that also has an (empty) training/frames: detection says ffp, the option wins
    root = make_own(tmp_path / "mine")
    (root / "training" / "frames").mkdir(parents=True)
    assert detect_layout(root) == "ffp"
    assert open_dataset(root, layout="folder").layout == "folder"


def test_cli_data_info_json_and_text(tmp_path, capsys):
    root = make_ffp(tmp_path / "bench")
    assert main(["data", "info", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "layout": "ffp",
        "train": {"videos": 2, "frames": 21},
        "test": {"videos": 2, "frames": 18, "anomalous_frames": 13},
    }
    assert main(["data", "info", str(root)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "layout: ffp",
        "train: 2 videos, 21 frames",
        "test: 2 videos, 18 frames, 13 anomalous",
    ]


def test_cli_error_is_one_line(tmp_path, capsys):
    root = make_avenue(tmp_path / "avenue")
    write_vollabel(root / "testing_label_mask" / "1_label.mat", [0, 1])
    assert main(["data", "info", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("stvad: error: ")
    assert "01.avi" in err and "6 frames" in err and "has 2" in err
