"""The built-in synthetic benchmark: layout, determinism, labels and masks, anomaly types, clean training."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from stvad.cli import main
from stvad.data.layouts import open_dataset
from stvad.data.synth import (
    EVENT_TYPES,
    MOTION_ONLY,
    SIZES,
    _event_schedule,
    generate,
    labels_to_intervals,
    plan_dataset,
)
from stvad.data.synth_actors import Pedestrian, in_picture
from stvad.data.synth_scene import Camera
from stvad.errors import StvadError


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def expand(intervals: np.ndarray, n: int) -> np.ndarray:
    """FFP ``gt`` columns (1-based, inclusive) -> per-frame 0/1 labels."""
    labels = np.zeros(n, np.uint8)
    for start, end in intervals.T:
        labels[int(start) - 1 : int(end)] = 1
    return labels


def test_ffp_layout_read_by_the_ffp_reader(synth_small):
    spec = SIZES["small"]
    ds = open_dataset(synth_small)
    assert ds.layout == "ffp"
    assert [v.name for v in ds.train] == [f"{i + 1:02d}" for i in range(spec.train_videos)]
    assert [len(v.source) for v in ds.test] == [spec.test_frames] * spec.test_videos
    assert all(v.labels is None and v.masks is None for v in ds.train)
    frame = cv2.imread(str(synth_small / "testing" / "frames" / "01" / "000.png"), cv2.IMREAD_UNCHANGED)
    assert frame.dtype == np.uint8 and frame.shape == (spec.height, spec.width)  # one grey channel
    assert next(iter(ds.test[0].source)).shape == (spec.height, spec.width, 3)
    for video in ds.test:
        assert len(video.masks) == len(video.source)
        assert 0 < video.labels.sum() < len(video.labels)


def test_frame_labels_are_any_pixel_of_the_masks(synth_small):
    gt = scipy.io.loadmat(synth_small / "synth.mat")["gt"]
    ds = open_dataset(synth_small)
    assert gt.shape == (1, len(ds.test))  # a cell of one 2xK array per test video, as in ped2.mat
    events = json.loads((synth_small / "events.json").read_text())["events"]
    for video, intervals in zip(ds.test, gt[0]):
        assert intervals.shape[0] == 2
        any_pixel = np.array([video.masks[i].any() for i in range(len(video.masks))], np.uint8)
        assert np.array_equal(expand(intervals, len(any_pixel)), any_pixel)
        assert np.array_equal(video.labels, any_pixel)
        in_events = np.zeros_like(any_pixel)
        for e in events:
            if e["video"] == video.name:
                in_events[e["start"] : e["end"] + 1] = 1
        assert np.array_equal(in_events, any_pixel)  # every labelled frame belongs to a listed event


def test_masks_are_0_or_255_and_cover_the_anomaly_only(synth_small):
    for e in json.loads((synth_small / "events.json").read_text())["events"]:
        t = (e["start"] + e["end"]) // 2
        mask = cv2.imread(
            str(synth_small / "testing" / "masks" / e["video"] / f"{t:03d}.png"), cv2.IMREAD_UNCHANGED
        )
        assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
        assert (mask > 0).mean() < 0.2, e["type"]


def test_same_seed_same_bytes_other_seed_other_bytes(synth_small, tmp_path):
    again = files_of(generate(tmp_path / "again", seed=0, size="small"))
    assert again == files_of(synth_small)
    other = files_of(generate(tmp_path / "other", seed=1, size="small"))
    assert other.keys() == again.keys()
    frames = [k for k in again if k.endswith(".png") and "frames" in k]
    assert sum(other[k] != again[k] for k in frames) == len(frames)


def test_every_anomaly_type_is_drawn_with_a_mask(synth_small):
    meta = json.loads((synth_small / "events.json").read_text())
    seen = {e["type"] for e in meta["events"] if e["frames"] > 0}
    assert seen == set(EVENT_TYPES)
    for e in meta["events"]:
        assert e["motion_only"] == (e["type"] in MOTION_ONLY)


def test_default_and_large_schedules_cover_every_type_and_are_mostly_motion_only():
    for size in ("default", "large"):
        schedule = _event_schedule(np.random.default_rng(0), SIZES[size])
        kinds = [k for video in schedule for k in video]
        assert set(kinds) == set(EVENT_TYPES)
        assert sum(k in MOTION_ONLY for k in kinds) > len(kinds) / 2
        assert all(k != "left_object" for video in schedule for k in video[:-1])  # a left bag comes last


def test_running_is_several_times_faster_than_walking(synth_small):
    meta = json.loads((synth_small / "events.json").read_text())
    walk = np.median([v["walker_speed_px"] for v in meta["train"] + meta["test"]])
    runs = [e["speed_px"] for e in meta["events"] if e["type"] == "run"]
    assert runs and min(runs) > 3 * walk


def test_few_people_large_enough_to_see_at_64x64():
    """1-4 people in the picture most of the time, and where anomalies happen a person is >= 12 px tall."""
    planned = plan_dataset(0, "small")
    for video in planned.videos:
        walkers = [a for a in video.plan.actors if isinstance(a, Pedestrian)]
        count = np.zeros(video.plan.n_frames, int)
        for a in walkers:
            for t in range(max(a.t0, 0), min(a.t1, video.plan.n_frames)):
                count[t] += bool(in_picture(a.pos[t - a.t0][None])[0])
        assert count.max() <= 6 and np.mean((count >= 1) & (count <= 4)) > 0.8, video.plan.name
    cam = Camera(64, 64)

    def tall(h: float, z: float) -> float:
        return float(np.diff(cam.project(np.array([[0.0, h, z], [0.0, 0.0, z]]))[1])[0])

    assert tall(1.74, 13.0) >= 12  # a person of median height at the far end of the crossing routes
    assert tall(1.55, 15.0) >= 10  # the shortest person at the far end of where anomalies happen


def test_training_videos_hold_only_normal_walkers():
    planned = plan_dataset(0, "small")
    train = [v for v in planned.videos if v.split == "train"]
    assert len(train) == SIZES["small"].train_videos
    for video in train:
        assert video.plan.events == []
        assert video.plan.actors and all(
            isinstance(a, Pedestrian) and a.action is None and a.event is None and 1.0 <= a.speed <= 1.6
            for a in video.plan.actors
        )
        assert not any(mask.any() for _, mask, _ in planned.render(video))


def test_labels_to_intervals_matches_the_ffp_format():
    iv = labels_to_intervals(np.array([0, 1, 1, 0, 1], np.uint8))
    assert iv.tolist() == [[2, 5], [3, 5]]
    assert labels_to_intervals(np.zeros(4, np.uint8)).shape == (2, 0)


def test_replaces_its_own_set_but_refuses_a_foreign_folder(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(StvadError, match="not an stvad synthetic set"):
        generate(foreign, size="small")
    assert (foreign / "notes.txt").read_text() == "keep me"
    with pytest.raises(StvadError, match="unknown size"):
        generate(tmp_path / "x", size="huge")


def test_cli_writes_the_set(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["synth", str(out), "--size", "small", "--seed", "3", "--quiet"]) == 0
    assert str(out) in capsys.readouterr().out
    assert json.loads((out / "events.json").read_text())["seed"] == 3
    assert main(["synth", str(out), "--size", "small", "--seed", "4", "--quiet"]) == 0  # replaces it
    assert json.loads((out / "events.json").read_text())["seed"] == 4
    assert main(["synth", str(tmp_path / "t"), "--size", "nope"]) == 2


@pytest.mark.slow
def test_default_set_has_every_type_and_mostly_motion_only_anomalies(tmp_path):
    root = generate(tmp_path / "d", seed=0, size="default")
    meta = json.loads((root / "events.json").read_text())
    assert {e["type"] for e in meta["events"] if e["frames"] > 0} == set(EVENT_TYPES)
    motion_only = sum(e["frames"] for e in meta["events"] if e["motion_only"])
    assert motion_only > sum(e["frames"] for e in meta["events"]) / 2
    ds = open_dataset(root)
    assert [len(v.source) for v in ds.train + ds.test] == [200] * 12
