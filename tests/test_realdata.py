"""The readers on the real benchmark files in ../shared/data (skipped where that folder is absent)."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
import scipy.io

from stvad.cli import main
from stvad.data.labels import (
    ImageMaskSource,
    intervals_to_labels,
    labels_from_masks,
    read_avenue_labels,
    read_ffp_mat,
    read_shanghaitech_labels,
    read_ucsd_m,
)
from stvad.data.layouts import dataset_info, open_dataset
from stvad.data.sources import open_source

pytestmark = pytest.mark.realdata

AVENUE_TEST_FRAMES = {"08": 36, "17": 426, "18": 294, "19": 248, "20": 273, "21": 76}


@pytest.fixture(scope="module")
def avenue_labels(shared_data):
    return read_avenue_labels(shared_data / "gt" / "avenue" / "testing_label_mask")


@pytest.fixture(scope="module")
def ucsd_ped2_masks(shared_data, tmp_path_factory):
    """The Ped2 *_gt bmp folders, extracted from the archive into a temporary folder."""
    out = tmp_path_factory.mktemp("ucsd_gt")
    with tarfile.open(shared_data / "gt" / "ucsd" / "ucsd_pixel_gt.tar.xz") as tar:
        members = [m for m in tar.getmembers() if "/UCSDped2/" in m.name]
        tar.extractall(out, members=members, filter="data")
    return out / "UCSD_Anomaly_Dataset.v1p2" / "UCSDped2" / "Test"


def test_ped2_ffp_counts(shared_data):
    info = dataset_info(open_dataset(shared_data / "ped2"))
    assert info == {
        "layout": "ffp",
        "train": {"videos": 16, "frames": 2550},
        "test": {"videos": 12, "frames": 2010, "anomalous_frames": 1648},
    }


def test_cli_data_info_ped2(shared_data, capsys):
    assert main(["data", "info", str(shared_data / "ped2"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["layout"] == "ffp"
    assert info["train"] == {"videos": 16, "frames": 2550}
    assert info["test"] == {"videos": 12, "frames": 2010, "anomalous_frames": 1648}


def test_ped2_ground_truth_formats_agree(shared_data, ucsd_ped2_masks):
    mat = read_ffp_mat(shared_data / "ped2" / "ped2.mat")
    m_file = read_ucsd_m(shared_data / "gt" / "ucsd" / "UCSDped2.m")
    assert mat == m_file and len(mat) == 12
    test = open_dataset(shared_data / "ped2").test
    mnad = np.load(shared_data / "gt" / "mnad" / "frame_labels_ped2.npy").ravel()
    assert np.array_equal(np.concatenate([v.labels for v in test]), mnad)
    for k, video in enumerate(test, start=1):
        masks = ImageMaskSource(ucsd_ped2_masks / f"Test{k:03d}_gt")
        assert len(masks) == len(video.source)
        assert np.array_equal(labels_from_masks(masks), intervals_to_labels(m_file[k - 1], len(masks)))
        assert np.array_equal(video.labels, intervals_to_labels(mat[k - 1], len(masks)))


def test_ucsd_layout_on_real_ped2_ground_truth(shared_data, ucsd_ped2_masks, tmp_path):
    # the original UCSD layout, assembled from the real frames, .m file and bmp masks by symlinks
    test = tmp_path / "UCSDped2" / "Test"
    test.mkdir(parents=True)
    for k in range(1, 13):
        (test / f"Test{k:03d}").symlink_to(shared_data / "ped2" / "testing" / "frames" / f"{k:02d}")
        (test / f"Test{k:03d}_gt").symlink_to(ucsd_ped2_masks / f"Test{k:03d}_gt")
    (test / "UCSDped2.m").symlink_to(shared_data / "gt" / "ucsd" / "UCSDped2.m")
    ds = open_dataset(tmp_path)
    assert ds.layout == "ucsd" and all(v.masks is not None for v in ds.test)
    assert dataset_info(ds)["test"] == {"videos": 12, "frames": 2010, "anomalous_frames": 1648}
    assert ds.test[0].masks[100].shape == (240, 360)


def test_ped1_mat_equals_m_file(shared_data):
    intervals = read_ffp_mat(shared_data / "gt" / "ffp_mat" / "ped1.mat")
    assert intervals == read_ucsd_m(shared_data / "gt" / "ucsd" / "UCSDped1.m")
    assert sum(int(intervals_to_labels(iv, 200).sum()) for iv in intervals) == 4045


def test_avenue_masks_counts(avenue_labels, shared_data):
    assert len(avenue_labels) == 21
    assert sum(len(v) for v in avenue_labels.values()) == 15324
    assert sum(int(v.sum()) for v in avenue_labels.values()) == 3712
    reference = scipy.io.loadmat(shared_data / "gt" / "avenue" / "avenue_perframe_talreiss.mat")
    for name, labels in avenue_labels.items():
        assert np.array_equal(labels, reference[name].ravel()), name


def test_shanghaitech_frame_masks(shared_data):
    labels = read_shanghaitech_labels(shared_data / "gt" / "shanghaitech" / "test_frame_mask")
    assert len(labels) == 107
    assert sum(len(v) for v in labels.values()) == 40791
    assert sum(int(v.sum()) for v in labels.values()) == 17326
    mnad = np.load(shared_data / "gt" / "mnad" / "frame_labels_shanghai.npy").ravel()
    assert np.array_equal(np.concatenate(list(labels.values())), mnad)


def test_avenue_videos_decode_to_ground_truth_lengths(shared_data, avenue_labels):
    folder = shared_data / "avenue_partial" / "testing_videos"
    counts = {p.stem: len(open_source(p)) for p in sorted(folder.glob("*.avi"))}
    assert counts == AVENUE_TEST_FRAMES
    assert all(len(avenue_labels[name]) == n for name, n in counts.items())
    frames = list(open_source(folder / "08.avi"))
    assert len(frames) == 36 and frames[0].shape == (360, 640, 3)


def test_avenue_layout_with_real_masks(shared_data, tmp_path):
    root = tmp_path / "avenue"
    root.mkdir()
    (root / "testing_videos").symlink_to(shared_data / "avenue_partial" / "testing_videos")
    (root / "training_videos").symlink_to(shared_data / "avenue_partial" / "training_videos")
    (root / "testing_label_mask").symlink_to(shared_data / "gt" / "avenue" / "testing_label_mask")
    ds = open_dataset(root)
    assert [v.name for v in ds.test] == list(AVENUE_TEST_FRAMES)
    assert [len(v.labels) for v in ds.test] == list(AVENUE_TEST_FRAMES.values())
    assert ds.test[0].masks[0].shape == (360, 640)
    # video 08's first 20 frames are anomalous in the pixel masks (data README)
    assert ds.test[0].labels[:20].all()


def test_vtest_decodes_795_frames(shared_data):
    src = open_source(shared_data / "opencv" / "vtest.avi")
    decoded = sum(1 for f in src.frames((144, 192), 1) if f.shape == (144, 192, 1))
    assert decoded == 795
    assert len(src) == 795
