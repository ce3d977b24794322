"""Online scoring: the cached path equals the plain scorer, events find the anomaly, streams come back."""

from __future__ import annotations

import itertools
import json
import re
import shutil
from collections.abc import Iterator

import numpy as np
import pytest

from conftest import SQUARE_ANOMALY, SQUARE_SIZE, SQUARE_TEST_FRAMES, square_position
from stvad.checkpoint import LoadedRun, load_run
from stvad.cli import main
from stvad.config import preset
from stvad.data.follow import Backoff, Follow
from stvad.data.layouts import open_dataset
from stvad.data.sources import FrameSource
from stvad.engine import COPY_LAST, Scorer, TorchEngine, score_frames
from stvad.errors import StvadError
from stvad.events import EventTracker, anomaly_box
from stvad.model import build_discriminator, build_generator
from stvad.scoring import NEEDS_FLOW, VARIANTS
from stvad.stream import watch

pytestmark = pytest.mark.usefixtures("torch_one_thread")

# Scores are float32 sums over every pixel (a few hundred for only-stn), where one rounding step is ~3e-5:
# "equal within 1e-5" is relative for them; the per-pixel maps are compared absolutely.
RTOL, ATOL = 1e-5, 1e-5


def plain_path(
    run: LoadedRun, frames: list[np.ndarray]
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Frame numbers, every variant's scores and float32 maps from Scorer.score_windows, window by window;
    each window's past holds the frames the motion model's history reads too (all of them near the start)."""
    scorer = Scorer(run, batch_size=8)
    P = max(scorer.T, scorer.engine.motion.history if scorer.engine.motion else 1)
    frames = np.stack(frames)
    groups = [[i] for i in range(scorer.T, min(P, len(frames)))] + [list(range(P, len(frames)))]
    parts = []
    for idx in (g for g in groups if g):
        past = np.stack([frames[i - min(i, P) : i] for i in idx])
        parts.append(scorer.score_many(past, frames[idx]))
    scores = {k: np.concatenate([p[0][k] for p in parts]) for k in parts[0][0]}
    return np.arange(scorer.T, len(frames)), scores, np.concatenate([p[1] for p in parts])


def test_cached_stream_equals_plain_scorer(tiny_run, synth_small):
    run = load_run(tiny_run)
    video = open_dataset(synth_small).test[0]
    frames = list(video.source.frames(run.config.data.size, run.config.data.channels))
    index, want, want_maps = plain_path(run, frames)
    engine = TorchEngine(run)
    for chunk in (1, 7):
        for variant in VARIANTS:
            engine.variant = variant
            scored = score_frames(engine, frames, keep_maps=False, chunk=chunk)
            assert scored.frames_read == len(frames) and list(scored.scores) == [variant]
            np.testing.assert_array_equal(scored.index, index)
            np.testing.assert_allclose(
                scored.scores[variant],
                want[variant],
                rtol=RTOL,
                atol=ATOL,
                err_msg=f"{variant}, chunk {chunk}",
            )
    engine.variant = run.config.score.variant
    engine.reset()
    for i, frame in enumerate(frames):  # one frame at a time, as `stvad watch` feeds it
        score, amap = engine.push(frame[None])
        if i < engine.T:
            assert score.size == 0
        else:
            np.testing.assert_allclose(amap[0], want_maps[i - engine.T], rtol=0, atol=ATOL)
            np.testing.assert_allclose(score[0], want[engine.variant][i - engine.T], rtol=RTOL, atol=ATOL)
    assert all(s.shape[0] == engine.T for s in engine._ring)  # the ring holds T frames, however many passed


@pytest.mark.parametrize("model", ["arch=ffp", "d_context=3", "g_skip_frames=4"])
def test_cached_stream_equals_plain_scorer_for_other_models(model, synth_small):
    """The baseline's encode_frames is the identity, and a D conditioned on past frames needs the frames
    themselves beside G's features: the cached path must still score both exactly."""
    cfg = preset("tiny").override([f"model.{model}"])
    run = LoadedRun(cfg, build_generator(cfg).eval(), build_discriminator(cfg).eval(), {})
    frames = list(open_dataset(synth_small).test[1].source.frames(cfg.data.size, cfg.data.channels))[:30]
    index, want, _ = plain_path(run, frames)
    scored = score_frames(TorchEngine(run), frames, chunk=4)
    np.testing.assert_array_equal(scored.index, index)
    np.testing.assert_allclose(
        scored.scores[cfg.score.variant], want[cfg.score.variant], rtol=RTOL, atol=ATOL
    )
    # evaluation's path: every variant and the copy-last floor from one engine pass each chunk
    every = Scorer(run, batch_size=5).score_frames(frames, keep_maps=True)
    assert set(every.scores) == {*(v for v in VARIANTS if v not in NEEDS_FLOW), COPY_LAST}  # no motion model
    for v, got in every.scores.items():
        np.testing.assert_allclose(got, want[v], rtol=RTOL, atol=ATOL, err_msg=v)


def test_evaluation_scores_through_the_engine_with_the_window_by_window_scores(tiny_run, synth_small):
    """Scorer (stvad eval, calibration) and the engine (API, score, watch) are one path: Scorer's every
    variant, copy-last and maps equal the reference that runs G on each whole window."""
    run = load_run(tiny_run)
    frames = list(
        open_dataset(synth_small).test[0].source.frames(run.config.data.size, run.config.data.channels)
    )
    index, want, want_maps = plain_path(run, frames)
    scorer = Scorer(run)
    assert isinstance(scorer.engine, TorchEngine)
    got = scorer.score_frames(frames, keep_maps=True)
    np.testing.assert_array_equal(got.index, index)
    for v in (*VARIANTS, COPY_LAST):
        np.testing.assert_allclose(got.scores[v], want[v], rtol=RTOL, atol=ATOL, err_msg=v)
    np.testing.assert_allclose(got.maps.astype(np.float32), want_maps, rtol=0, atol=2e-3)  # float16 maps
    g_only = Scorer(run, variants=("only-stn",))
    assert not g_only.use_d  # no variant asked for needs D: it is not run
    got = g_only.score_frames(frames)
    assert set(got.scores) == {"only-stn", COPY_LAST}
    np.testing.assert_allclose(got.scores["only-stn"], want["only-stn"], rtol=RTOL, atol=ATOL)


def test_anomaly_box_is_the_region_around_the_peak():
    amap = np.zeros((32, 32), np.float32)
    amap[5:9, 10:16] = 1.0
    amap[7, 12] = 2.0
    amap[20:30, 20:30] = 0.9  # a separate region below half the peak: not part of the box
    assert anomaly_box(amap) == (10, 5, 16, 9)
    assert anomaly_box(np.zeros((4, 4))) is None


def test_event_tracker_groups_frames_and_scales_boxes():
    tracker = EventTracker(threshold=1.0, source="cam")
    amap = np.zeros((8, 8), np.float32)
    amap[2:4, 2:4] = 1.0
    out = [tracker.update(i, i / 10, s, amap, (80, 80)) for i, s in enumerate([0.5, 2.0, 3.0, 0.9, 0.2])]
    assert out[:3] == [None, None, None] and out[4] is None
    ev = out[3]
    assert (ev["start_frame"], ev["end_frame"], ev["frames"], ev["peak_frame"]) == (1, 2, 2, 2)
    assert ev["peak_score"] == 3.0 and ev["start_time"] == 0.1 and ev["end_time"] == 0.2
    assert ev["box"] == ev["peak_box"] == [20, 20, 40, 40]  # map cells 2..3 of 8 -> pixels 20..39 of 80
    assert tracker.close() is None


def test_events_merge_across_short_gaps_and_short_ones_are_dropped():
    amap = np.ones((4, 4), np.float32)
    scores = [2, 0, 2, 2, 0, 0, 0, 2, 0, 0, 0, 0, 2, 2, 2, 0]  # above 1 at 0, 2-3, 7, 12-14
    tracker = EventTracker(threshold=1.0, min_frames=3, gap_frames=2)
    out = [tracker.update(i, None, s, amap, (4, 4)) for i, s in enumerate(scores)]
    out.append(tracker.close())
    events = [(e["event"], e["start_frame"], e["end_frame"]) for e in out if e is not None]
    # 0 and 2-3 merge across the one-frame gap; 7 alone is too short; 12-14 is long enough
    assert events == [(1, 0, 3), (2, 12, 14)]
    assert tracker.count == 2


def test_events_on_a_synthetic_video_overlap_its_labelled_anomaly(square_run, square_data, tmp_path):
    events = tmp_path / "events.jsonl"
    # raw runs above a threshold just over the video's own normal part (no merging, no minimum length): this
    # tests where events fall, not how well a threshold from the training clips carries over to this scene
    from stvad.api import Detector

    scored = Detector.load(square_run).score(square_data / "t.avi")
    threshold = float(scored.score[scored.frame < SQUARE_ANOMALY[0]].max())
    summary = watch(
        square_run, square_data / "t.avi", events=events, echo=None, threshold=threshold,
        min_event_s=0, merge_gap_s=0,
    )  # fmt: skip
    assert summary["frames"] == SQUARE_TEST_FRAMES
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert records and all(r["type"] == "anomaly" for r in records)
    start, stop = SQUARE_ANOMALY
    assert any(r["start_frame"] < stop and r["end_frame"] >= start for r in records)
    strongest = max(records, key=lambda r: r["peak_score"])
    assert start <= strongest["peak_frame"] < stop
    flagged = sum(r["frames"] for r in records)
    inside = sum(max(0, min(r["end_frame"] + 1, stop) - max(r["start_frame"], start)) for r in records)
    assert inside >= 0.8 * flagged, records  # most flagged frames are labelled anomalous
    # the box (in the video's 64x64 pixels) meets the square at the peak frame
    x0, y0, x1, y1 = strongest["peak_box"]
    sx = 2 * square_position(strongest["peak_frame"])
    assert x0 < sx + 16 and x1 > sx and y0 < 24 and y1 > 8
    assert strongest["start_time"] == pytest.approx(strongest["start_frame"] / 10, abs=1e-3)


def test_watch_on_a_file_ends_cleanly(square_run, square_data, tmp_path, capsys):
    events = tmp_path / "events.jsonl"
    assert main(["watch", str(square_run), str(square_data / "t.avi"), "--events", str(events)]) == 0
    out, err = capsys.readouterr()
    printed = [json.loads(line) for line in out.splitlines()]
    assert printed == [json.loads(line) for line in events.read_text().splitlines()]
    assert f"watched {SQUARE_TEST_FRAMES} frames" in err and "against the source's 10" in err
    assert re.search(r"(\d+\.\d s behind it at the end|kept up with it)", err)
    assert main(["watch", str(square_run), str(square_data / "test" / "t"), "--max-frames", "10"]) == 0
    assert "watched 10 frames" in capsys.readouterr().err
    assert main(["watch", str(square_run), str(square_data / "t.avi"), "--loop", "--max-frames", "200"]) == 0
    assert "watched 200 frames" in capsys.readouterr().err


def test_watch_without_a_threshold_is_a_clear_error(square_run, square_data, tmp_path, capsys):
    run = shutil.copytree(square_run, tmp_path / "run")
    (run / "calibration.json").unlink()
    assert main(["watch", str(run), str(square_data / "t.avi")]) == 2
    assert "no threshold" in capsys.readouterr().err


URL = "rtsp://camera.invalid/stream"


class FakeStream(FrameSource):
    """A network stream that delivers ``n`` frames and then drops."""

    live = True

    def __init__(self, n: int, size: int = SQUARE_SIZE):
        self.n, self.size = n, size
        self.name, self.path = "fake", URL

    def __len__(self) -> int:
        raise StvadError("length unknown", self.path)

    def iter_range(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        for i in range(self.n):
            yield np.full((self.size, self.size, 3), (40 + 9 * i) % 256, np.uint8)

    def read(self, i: int) -> np.ndarray:
        raise StvadError("no random access", self.path)


def scripted_open(script: list):
    """open_source replacement: each call takes the next entry, a source to return or an error to raise."""
    calls = iter(script)

    def open_source(target):
        step = next(calls, StvadError("unreachable", str(target)))
        if isinstance(step, Exception):
            raise step
        return step

    return open_source


def test_dropped_stream_reconnects_with_bounded_backoff(monkeypatch):
    script = [
        FakeStream(6),
        StvadError("connection refused"),
        StvadError("connection refused"),
        FakeStream(5),
    ]
    monkeypatch.setattr("stvad.data.follow.open_source", scripted_open(script))
    reports, sleeps = [], []
    backoff = Backoff(initial=0.5, maximum=1.5, retries=4)
    follow = Follow(
        "rtsp://camera.invalid/stream", backoff=backoff, report=reports.append, sleep=sleeps.append
    )
    frames, fresh = [], []
    with pytest.raises(StvadError, match="stream lost: no frame after 4 reconnections"):
        for frame, is_fresh in follow:
            frames.append(frame)
            fresh.append(is_fresh)
    assert len(frames) == 11
    assert [i for i, f in enumerate(fresh) if f] == [6]  # the first frame after the gap starts afresh
    kinds = [r["type"] for r in reports]
    assert kinds == ["reconnect"] * 3 + ["reconnected"] + ["reconnect"] * 4
    assert [r["attempt"] for r in reports if r["type"] == "reconnect"] == [1, 2, 3, 1, 2, 3, 4]
    assert sleeps == [0.5, 1.0, 1.5, 0.5, 1.0, 1.5, 1.5]  # doubling, capped at the maximum, reset on success
    assert reports[1]["reason"] == "connection refused"
    assert reports[3]["attempts"] == 3


def test_a_stream_unreachable_at_start_gets_the_same_backoff(monkeypatch):
    monkeypatch.setattr(
        "stvad.data.follow.open_source",
        scripted_open([StvadError("refused"), StvadError("refused"), FakeStream(3)]),
    )
    reports, sleeps = [], []
    follow = Follow(URL, backoff=Backoff(0.5, 1.5, 4), report=reports.append, sleep=sleeps.append)
    assert len(list(itertools.islice(follow, 3))) == 3 and sleeps == [0.5, 1.0]
    assert [r["type"] for r in reports][:3] == ["reconnect", "reconnect", "reconnected"]
    monkeypatch.setattr("stvad.data.follow.open_source", scripted_open([]))  # never reachable
    with pytest.raises(StvadError, match="stream unreachable: no connection after 2 attempts"):
        Follow(URL, backoff=Backoff(0.01, 0.01, 2), sleep=lambda s: None)
    # a file, a folder or a camera that cannot be opened fails at once
    monkeypatch.setattr("stvad.data.follow.open_source", scripted_open([StvadError("no such file")]))
    with pytest.raises(StvadError, match="no such file"):
        Follow("missing.avi", sleep=lambda s: pytest.fail("no retry for a file"))


def test_watch_reports_reconnections_and_gives_up(monkeypatch, square_run, tmp_path):
    monkeypatch.setattr("stvad.data.follow.open_source", scripted_open([FakeStream(12), FakeStream(12)]))
    monkeypatch.setattr("stvad.stream.time.sleep", lambda s: None)
    events = tmp_path / "events.jsonl"
    with pytest.raises(StvadError, match="stream lost"):
        watch(
            square_run,
            "rtsp://camera.invalid/stream",
            events=events,
            backoff=Backoff(0.01, 0.02, 2),
            echo=None,
        )
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert [r["attempt"] for r in records if r["type"] == "reconnect"] == [1, 1, 2]
    assert [r["delay_s"] for r in records if r["type"] == "reconnect"] == [0.01, 0.01, 0.02]
    assert sum(r["type"] == "reconnected" for r in records) == 1


def test_a_file_that_fails_to_decode_is_an_error_not_a_reconnect(monkeypatch):
    class Broken(FakeStream):
        live = False

        def iter_range(self, start=0, stop=None):
            yield np.zeros((8, 8, 3), np.uint8)
            raise StvadError("frame 1 of 9 could not be decoded", "clip.avi")

    monkeypatch.setattr("stvad.data.follow.open_source", scripted_open([Broken(1)]))
    with pytest.raises(StvadError, match="could not be decoded"):
        list(Follow("clip.avi"))
