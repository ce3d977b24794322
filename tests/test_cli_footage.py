"""From a user's own video files to alarms, on the command line alone: train on a video file, the run ends
calibrated, `watch` raises events with no --threshold, none shorter than the minimum, `score` marks frames
anomalous; `calibrate` refits on more normal footage and warns when the frames are too few."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import SQUARE_SIZE, square_scene
from stvad.cli import main
from stvad.data.sources import open_source
from stvad.scoring import causal_mean


def write_avi(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    big = 2 * SQUARE_SIZE
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (big, big))
    assert writer.isOpened()
    for f in frames:
        big_frame = cv2.resize(f, (big, big), interpolation=cv2.INTER_NEAREST)
        writer.write(cv2.cvtColor(big_frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("footage")
    return {
        "monday": write_avi(root / "monday.avi", square_scene(60, 1)),
        "tuesday": write_avi(root / "tuesday.avi", square_scene(60, 2)),
        "later": write_avi(root / "later.avi", square_scene(200, 4)),
        "today": write_avi(root / "today.avi", square_scene(80, 3, anomaly=True)),
    }


@pytest.fixture(scope="module")
def cli_run(footage, tmp_path_factory) -> tuple[Path, str]:
    """`stvad train` on two video files (tiny preset, 40 steps); the run folder and what it printed."""
    run = tmp_path_factory.mktemp("runs") / "cam1"
    args = ["train", str(footage["monday"]), str(footage["tuesday"]), "--out", str(run), "--preset", "tiny",
            "--set", "train.max_steps=40", "--set", "train.val_every=20"]  # fmt: skip
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            assert main(args) == 0
    finally:
        torch.set_num_threads(before)
    return run, printed.getvalue()


def test_video_files_to_a_calibrated_run_to_events_and_flagged_frames(
    cli_run, footage, tmp_path, torch_one_thread
) -> None:
    run, out = cli_run
    assert "checkpoint chosen: step" in out and "dB for copying the last frame" in out
    assert "discriminator at the last validation" in out
    cal = json.loads((run / "calibration.json").read_text())
    assert f"threshold {cal['threshold']:.4g}" in out and cal["frames"] > 0

    events = tmp_path / "events.jsonl"
    watch = ["watch", str(run), str(footage["today"]), "--events", str(events), "--min-event", "0.3"]
    assert main(watch) == 0
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert records, "no event on a video with an anomaly"
    assert all(r["frames"] >= 3 for r in records)  # 0.3 s at 10 frames/s

    assert main(["score", str(run), str(footage["today"]), "--out", str(tmp_path / "scores")]) == 0
    with open(tmp_path / "scores" / "today.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and {r["anomalous"] for r in rows} <= {"0", "1"} and "1" in {r["anomalous"] for r in rows}


def test_calibrate_adds_normal_footage_and_warns_when_frames_are_too_few(
    cli_run, footage, capsys, torch_one_thread
) -> None:
    run, _ = cli_run
    before = json.loads((run / "calibration.json").read_text())
    capsys.readouterr()
    assert main(["calibrate", str(run), str(footage["later"]), "--quantile", "0.9"]) == 0
    out, err = capsys.readouterr()
    after = json.loads((run / "calibration.json").read_text())
    assert after["frames"] == before["frames"] + 200 - 4  # the new video's frames after the first T
    assert after["quantile"] == 0.9 and str(footage["later"]) in after["source"]
    assert "warning" not in after and "warning" not in err
    assert main(["calibrate", str(run), "--quantile", "0.999"]) == 0
    err = capsys.readouterr().err
    assert "stvad: warning:" in err and "above the 0.999 quantile" in err


def test_messages_name_the_real_problem_and_the_fix(cli_run, tmp_path, capsys, torch_one_thread) -> None:
    import shutil

    run, _ = cli_run

    def error(args: list[str]) -> str:
        assert main(args) == 2
        return capsys.readouterr().err.strip().splitlines()[-1]

    # the demo's top folder, whose run is one level down
    demo = tmp_path / "demo"
    shutil.copytree(run, demo / "run")
    assert (
        error(["score", str(demo), str(tmp_path)])
        == f"stvad: error: {demo}: not a run folder; did you mean {demo / 'run'}?"
    )
    # a damaged best checkpoint: the last one is offered
    damaged = tmp_path / "damaged"
    shutil.copytree(run, damaged)
    best = damaged / "checkpoints" / "best.ckpt"
    best.write_bytes(best.read_bytes()[:1000])
    assert error(["score", str(damaged), str(tmp_path)]).endswith(
        f"; the run's last checkpoint is {damaged / 'checkpoints' / 'last.ckpt'}: pass that instead"
    )
    # an exported model given to the PyTorch backend
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"onnx")
    assert error(["score", str(onnx), str(tmp_path)]) == (
        f"stvad: error: {onnx}: an exported ONNX model: score it with --backend onnxruntime"
    )
    # resuming a finished run without more steps
    assert error(["train", "x", "--out", str(run), "--resume"]) == (
        f"stvad: error: {run}: nothing to resume: the run has done 40 steps and train.max_steps is 40; "
        "train longer with --set train.max_steps=N (N > 40)"
    )
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("stvad 0.")


def test_every_argument_of_every_command_is_described() -> None:
    import argparse

    from stvad.cli import build_parser

    def parsers(p: argparse.ArgumentParser):
        yield p
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from parsers(sub)

    undocumented = [
        f"{p.prog} {a.dest}"
        for p in parsers(build_parser())
        for a in p._actions
        if not isinstance(a, argparse._SubParsersAction) and not a.help
    ]
    assert not undocumented


def test_threads_auto_leaves_busy_cores_alone(monkeypatch) -> None:
    from stvad.cli import busy_cores, threads_for
    from stvad.errors import StvadError

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)

    assert threads_for("auto", cores=2, load=0.1) == 2  # idle: every core
    assert threads_for("auto", cores=2, load=1.2) == 1  # one core busy with another job
    assert threads_for("auto", cores=2, load=5.0) == 1  # never fewer than one
    assert threads_for("auto", cores=8, load=2.0) == 6  # the machine given, not this one's core count
    assert threads_for("3") == 3
    with pytest.raises(StvadError, match="--threads takes a number"):
        threads_for("0")
    assert 0.0 <= busy_cores(0.05) <= (os.cpu_count() or 1) + 1e-9
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the environment's limit holds
    assert threads_for("auto", cores=2, load=0.0) == 1


def test_alarms_score_as_their_threshold_was_fitted(
    cli_run, footage, tmp_path, capsys, torch_one_thread
) -> None:
    """The calibration records how alarms score a frame (the worst half-frame window by default) and
    Detector, `watch`'s engine, and a refit with --set all score that way, so threshold and scores agree."""
    import shutil

    from stvad.api import Detector
    from stvad.calibration import read_calibration
    from stvad.engine import Scorer

    run = tmp_path / "run"
    shutil.copytree(cli_run[0], run)
    assert read_calibration(run)["score"] == {"aggregate": "patch-max", "patch": 0.5, "causal_window": 1}
    alarm = Detector.load(run).score(footage["later"]).score
    scorer = Scorer.from_run(run)
    scorer.cfg = scorer.cfg.with_score(["score.aggregate=patch-max", "score.patch=0.5"])
    expected = scorer.score_source(open_source(footage["later"])).scores["full"]
    np.testing.assert_allclose(alarm, expected, rtol=1e-4, atol=1e-6)
    whole = Scorer.from_run(run).score_source(open_source(footage["later"])).scores["full"]
    assert not np.allclose(alarm, whole)  # benchmarks keep equation 4's frame sum
    assert main(["calibrate", str(run), "--set", "score.aggregate=sum"]) == 0
    assert "alarms score full, aggregate sum" in capsys.readouterr().out
    assert read_calibration(run)["score"]["aggregate"] == "sum"
    np.testing.assert_allclose(Detector.load(run).score(footage["later"]).score, whole, rtol=1e-4, atol=1e-6)
    # a causal mean of the last 3 frame scores: threshold fitted on smoothed normal scores, alarms smoothed
    before = read_calibration(run)["threshold"]
    assert (
        main(["calibrate", str(run), "--set", "score.aggregate=sum", "--set", "score.causal_window=3"]) == 0
    )
    cal = read_calibration(run)
    assert cal["score"]["causal_window"] == 3 and cal["threshold"] != before
    result = Detector.load(run).score(footage["later"])
    smoothed = result.score
    np.testing.assert_allclose(smoothed, causal_mean(whole, 3), rtol=1e-4, atol=1e-6)
    assert smoothed[0] == pytest.approx(whole[0]) and np.ptp(smoothed) < np.ptp(whole)
    # watch raises the events of the smoothed scores against that threshold, not of the raw ones
    from stvad.events import EventTracker

    events = tmp_path / "events.jsonl"
    assert main(["watch", str(run), str(footage["later"]), "--events", str(events), "--min-event", "0"]) == 0
    got = [json.loads(line)["start_frame"] for line in events.read_text().splitlines()]
    spans = []
    for scores in (smoothed, whole):
        tracker = EventTracker.in_seconds(cal["threshold"], result.fps or 25.0, 0.0, 1.0)
        ends = [
            tracker.update(int(i), None, v, np.zeros((2, 2)), (2, 2)) for i, v in zip(result.frame, scores)
        ]
        spans.append([e["start_frame"] for e in [*ends, tracker.close()] if e])
    assert got == spans[0] and spans[0] != spans[1]
