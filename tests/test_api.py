"""The Python API (fit, load, score, predict) and `stvad score`'s files: CSV, JSON, maps, overlay video."""

from __future__ import annotations

import csv
import json
import shutil

import cv2
import numpy as np
import pytest

from conftest import SQUARE_ANOMALY, SQUARE_SIZE, SQUARE_TEST_FRAMES
from stvad.api import UNSCORED, Detector, _apply
from stvad.checkpoint import load_run
from stvad.cli import main
from stvad.config import preset
from stvad.errors import StvadError

pytestmark = pytest.mark.usefixtures("torch_one_thread")
T = preset("tiny").data.T


def count_frames(path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n


@pytest.mark.parametrize("given", ["list of videos", "folder of videos", "benchmark root"])
def test_fit_trains_and_calibrates(given, square_data, tmp_path):
    videos = {
        "list of videos": [square_data / "train" / "a", square_data / "train" / "b"],
        "folder of videos": square_data / "train",
        "benchmark root": square_data,
    }[given]
    det = Detector.fit(videos, out=tmp_path / "run", preset="tiny", max_steps=4, progress=False)
    train_clips = {name for name, _, _ in load_run(tmp_path / "run").meta["train_clips"]}
    assert len(train_clips) == 2 and all(name.endswith(("a", "b")) for name in train_clips)
    assert (tmp_path / "run" / "calibration.json").is_file() and det.threshold is not None
    assert det.config.train.max_steps == 4 and det.config.data.size == (SQUARE_SIZE, SQUARE_SIZE)
    labels = det.predict(square_data / "test" / "t")
    assert labels.shape == (SQUARE_TEST_FRAMES,) and labels.dtype == np.int8
    assert (labels[:T] == UNSCORED).all() and set(np.unique(labels[T:])) <= {0, 1}  # no score, no label
    with pytest.raises(StvadError, match="not empty"):
        Detector.fit(videos, out=tmp_path / "run", preset="tiny", max_steps=4, progress=False)


def test_fit_settings_are_checked_before_training():
    cfg = _apply(preset("tiny"), {"max_steps": 7, "score__variant": "psnr", "size": (64, 64)})
    assert (cfg.train.max_steps, cfg.score.variant, cfg.data.size) == (7, "psnr", (64, 64))
    with pytest.raises(StvadError, match="unknown setting 'max_step'"):
        _apply(preset("tiny"), {"max_step": 7})
    with pytest.raises(StvadError, match="expects int"):
        _apply(preset("tiny"), {"max_steps": "many"})


def test_score_and_predict_find_the_flying_square(square_run, square_data):
    det = Detector.load(square_run)
    result = det.score(square_data / "test" / "t", maps=True)
    np.testing.assert_array_equal(result.frame, np.arange(T, SQUARE_TEST_FRAMES))
    assert result.maps.shape == (SQUARE_TEST_FRAMES - T, SQUARE_SIZE, SQUARE_SIZE)
    assert list(result)[0] == (T, pytest.approx(result.score[0]))
    labels = det.predict(square_data / "test" / "t")
    truth = np.zeros(SQUARE_TEST_FRAMES, np.uint8)
    truth[slice(*SQUARE_ANOMALY)] = 1
    labels = labels.clip(0)  # the first T frames (unscored) count as not flagged
    hits = int((labels & truth).sum())
    assert hits >= 0.8 * truth.sum() and labels.sum() - hits <= 3  # found, with at most 3 false alarms


def test_score_command_writes_scores_maps_and_overlay(square_run, square_data, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["score", str(square_run), str(square_data / "test" / "t"), "--out", str(out), "--maps", "--video"]
    assert main(args) == 0
    assert str(out / "t.overlay.avi") in capsys.readouterr().out
    n_scored = SQUARE_TEST_FRAMES - T
    with open(out / "t.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == n_scored and rows[0].keys() == {"frame", "score", "anomalous"}
    doc = json.loads((out / "t.json").read_text())
    assert doc["frames"] == SQUARE_TEST_FRAMES and len(doc["scores"]) == n_scored
    assert [r["frame"] for r in doc["scores"]] == [int(r["frame"]) for r in rows]
    assert doc["threshold"] == json.loads((square_run / "calibration.json").read_text())["threshold"]
    with np.load(out / "t.maps.npz") as npz:
        assert npz["maps"].shape == (n_scored, SQUARE_SIZE, SQUARE_SIZE)
        np.testing.assert_allclose(npz["score"], [float(r["score"]) for r in rows], rtol=1e-6)
    assert count_frames(out / "t.overlay.avi") == SQUARE_TEST_FRAMES
    assert sorted(p.name for p in out.iterdir()) == ["t.csv", "t.json", "t.maps.npz", "t.overlay.avi"]


def test_score_command_on_a_video_file_with_mp4_overlay_and_onnx_backend(square_run, square_data, tmp_path):
    pytest.importorskip("onnxruntime")
    run = shutil.copytree(square_run, tmp_path / "run")
    assert main(["export", str(run)]) == 0
    out = tmp_path / "out"
    args = [
        "score",
        str(run),
        str(square_data / "t.avi"),
        "--out",
        str(out),
        "--video",
        "--video-format",
        "mp4",
    ]
    assert main([*args, "--backend", "onnxruntime"]) == 0
    assert count_frames(out / "t.overlay.mp4") == SQUARE_TEST_FRAMES
    onnx_scores = [r["score"] for r in json.loads((out / "t.json").read_text())["scores"]]
    assert main(args) == 0
    torch_scores = [r["score"] for r in json.loads((out / "t.json").read_text())["scores"]]
    np.testing.assert_allclose(onnx_scores, torch_scores, rtol=1e-5, atol=1e-4)
    assert json.loads((out / "t.json").read_text())["fps"] == pytest.approx(10.0)


def test_score_command_errors_name_the_file(square_run, tmp_path, capsys):
    missing = tmp_path / "nope.avi"
    assert main(["score", str(square_run), str(missing), "--out", str(tmp_path / "out")]) == 2
    assert str(missing) in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert main(["score", str(square_run), str(missing), "--backend", "tensorrt"]) == 2
    assert "unknown backend" in capsys.readouterr().err


def test_training_root_rebuilds_links_a_failed_start_left_and_keeps_a_started_runs(square_data, tmp_path):
    from stvad.api import training_root

    a, b = square_data / "train" / "a", square_data / "train" / "b"
    out = tmp_path / "run"
    root = training_root([a], out)
    assert [p.name for p in (root / "train").iterdir()] == ["000_a"]
    root = training_root([b], out)  # no run began (no config.json): the new sources, not the old links
    assert [p.name for p in (root / "train").iterdir()] == ["000_b"] and a.exists()
    (out / "config.json").write_text("{}")
    root = training_root([a], out)  # a run began on b: resuming keeps what it trained on
    assert [p.name for p in (root / "train").iterdir()] == ["000_b"]
