"""The motion model (stvad.motion): fitted at the end of training, it finds abnormal motion, and the f2+flow
score is f2 and flow standardised on the held-out clips, the same on every path."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import SQUARE_ANOMALY
from stvad.calibration import ALARM_SCORE, fit_motion
from stvad.checkpoint import load_run
from stvad.cli import main
from stvad.config import ScoreConfig
from stvad.data.layouts import open_dataset
from stvad.engine import Scorer, TorchEngine, score_frames
from stvad.errors import StvadError
from stvad.metrics import auroc_micro
from stvad.motion import MOTION_FILE, MotionModel, read_motion, scale_key
from stvad.scoring import NEEDS_FLOW, VARIANTS

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_training_fits_the_motion_model_on_normal_clips(square_run):
    motion = read_motion(square_run)
    assert motion is not None and motion.size == (32, 32)
    step = load_run(square_run).meta["step"]
    cfg = load_run(square_run).config
    # standardisers for the run's own scoring and for the alarms' (calibrated with the run)
    own, alarm = scale_key(cfg.score, step), scale_key(cfg.with_score(list(ALARM_SCORE)).score, step)
    assert set(motion.scales["f2"]) == {own, alarm} and own != alarm
    mu, sd = motion.scales["flow"]
    assert sd > 0 and all(s[1] > 0 for s in motion.scales["f2"].values())
    # the swinging disc moves along the middle rows: only there did the prior see flows of 1/32 of the side
    # or more (sensor noise gives small flows everywhere); its counts start at one in every bin
    large = (motion.prior.counts.reshape(16, 16, 8, 6)[..., 3:] - 1).sum(axis=(1, 2, 3))
    assert large[:3].sum() == 0 and large[6:10].min() > 1000


def test_flow_finds_the_flying_square_and_f2_flow_adds_the_standardised_scores(square_run, square_data):
    scorer = Scorer.from_run(square_run, variants=("f2", "flow", "f2+flow"))
    video = open_dataset(square_data).test[0]
    got = scorer.score_source(video.source)
    labels = (got.index >= SQUARE_ANOMALY[0]) & (got.index < SQUARE_ANOMALY[1])
    # nothing moved in rows 4-11 of the training clips, so the square's flow there is rare
    assert auroc_micro([got.scores["flow"]], [labels.astype(np.uint8)]) > 0.95
    motion = read_motion(square_run)
    (mb, sb), (mf, sf) = motion.f2_scale(scorer.cfg.score, scorer.engine.step), motion.scales["flow"]
    want = (got.scores["f2"] - mb) / sb + scorer.cfg.score.flow_weight * (got.scores["flow"] - mf) / sf
    np.testing.assert_allclose(got.scores["f2+flow"], want, rtol=0, atol=1e-4)  # float32 scores
    # the weight is a score setting: a larger one leans further on the flow
    scorer.cfg = scorer.cfg.with_score(["score.flow_weight=3"])
    heavier = scorer.score_source(video.source).scores["f2+flow"]
    np.testing.assert_allclose(heavier - got.scores["f2+flow"], 2 * (got.scores["flow"] - mf) / sf, atol=1e-4)
    # so is the fusion: "max" takes the larger of the two standardised scores, frame by frame
    scorer.cfg = scorer.cfg.with_score(["score.flow_weight=1", "score.fusion=max"])
    larger = scorer.score_source(video.source).scores["f2+flow"]
    parts = (got.scores["f2"] - mb) / sb, (got.scores["flow"] - mf) / sf
    np.testing.assert_allclose(larger, np.maximum(*parts), rtol=0, atol=1e-4)
    assert (parts[0] > parts[1]).any() and (parts[1] > parts[0]).any()  # both parts win somewhere
    scorer.cfg = scorer.cfg.with_score(["score.fusion=mean"])
    with pytest.raises(StvadError, match="score.fusion"):
        scorer.score_source(video.source)


def test_the_f2_flow_map_shows_the_flow_where_the_square_flies(square_run, square_data):
    run = load_run(square_run)
    run.config.score.variant = "f2+flow"
    frames = list(open_dataset(square_data).test[0].source.frames(run.config.data.size, 1))
    scored = score_frames(TorchEngine(run), frames, keep_maps=True, chunk=5)
    k = int(np.flatnonzero(scored.index == SQUARE_ANOMALY[0] + 5)[0])
    amap = scored.maps[k].astype(np.float32)
    assert amap[4:12].sum() > amap[16:].sum()  # the square's rows, against the lower half


def test_a_run_without_a_motion_model_scores_the_rest_and_says_how_to_fit_it(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / MOTION_FILE).unlink()
    scorer = Scorer.from_run(run)
    assert scorer.variants == tuple(v for v in VARIANTS if v not in NEEDS_FLOW)
    loaded = load_run(run)
    loaded.config.score.variant = "f2+flow"
    engine = TorchEngine(loaded)
    frames = np.zeros((loaded.config.data.T + 2, *loaded.config.data.size, 1), np.uint8)
    with pytest.raises(StvadError, match="fit-motion"):
        engine.push_all(frames)
    # the command fits it from the run's own training data, and what it fitted is kept
    assert (
        main(["fit-motion", str(run), "--set", "score.aggregate=patch-max", "--set", "score.patch=0.25"]) == 0
    )
    assert "motion model in" in capsys.readouterr().out
    motion = read_motion(run)
    assert len(motion.scales["f2"]) == 3  # the run's scoring, the alarms', and the one asked for
    before = (run / MOTION_FILE).read_text()
    fit_motion(run)
    assert (run / MOTION_FILE).read_text() == before
    loaded = load_run(run)
    loaded.config.score.variant = "f2+flow"
    scores, _ = TorchEngine(loaded).push_all(frames)
    assert scores["f2+flow"].shape == (2,) and np.isfinite(scores["f2+flow"]).all()


def test_a_missing_scale_and_a_damaged_file_are_one_line_errors(tiny_run, tmp_path):
    motion = read_motion(tiny_run)
    fix = "stvad fit-motion RUN --set score.aggregate=patch-max --set score.patch=0.3"
    with pytest.raises(StvadError, match=f"{MOTION_FILE}: .*no f2 scale .*{fix}"):
        motion.f2_scale(ScoreConfig(aggregate="patch-max", patch=0.3), 0)
    path = tmp_path / MOTION_FILE
    path.write_text("{not json")
    with pytest.raises(StvadError, match="unreadable motion model"):
        MotionModel.load(path)
    d = motion.to_dict()
    d["counts"] = d["counts"][:-1]
    path.write_text(json.dumps(d))
    with pytest.raises(StvadError, match="not a readable motion model"):
        MotionModel.load(path)


def test_motion_model_round_trips_through_its_file(tiny_run, tmp_path):
    motion = read_motion(tiny_run)
    motion.save(tmp_path / MOTION_FILE)
    again = MotionModel.load(tmp_path / MOTION_FILE)
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (*motion.size, 1), dtype=np.uint8)
    b = np.roll(a, 2, axis=1)
    s1, m1 = motion.score(a, b)
    s2, m2 = again.score(a, b)
    assert s1 == pytest.approx(s2, rel=1e-6) and s1 > 0
    np.testing.assert_allclose(m1, m2, rtol=1e-6)
    assert m1.shape == motion.size and m1.sum() == pytest.approx(
        motion.prior.terms(motion.flow(a, b)).sum(), rel=1e-5
    )


def textured_square(at: tuple[float, float], size: int = 48) -> np.ndarray:
    """A textured 10x10 square on a still textured background, its corner at ``at`` (rows, cols)."""
    rng = np.random.default_rng(0)
    frame = rng.integers(60, 120, (size, size, 1)).astype(np.uint8)
    r, c = (int(round(v)) for v in at)
    frame[r : r + 10, c : c + 10] = rng.integers(150, 255, (10, 10, 1))
    return frame


def test_the_sway_finds_a_square_that_goes_back_and_forth_where_the_flow_alone_does_not():
    """Fitted on squares crossing at 2 pixels a frame both ways, a square going up and down 2 pixels a
    frame in one place has flows the prior has seen there, and a sway it has never seen:
    with the sway its frames score above the crossing squares', with the flow alone they do not."""
    walk = [[textured_square((r, 2 + 2 * t)) for t in range(18)] for r in (8, 20, 30)]
    walk += [[textured_square((r, 36 - 2 * t)) for t in range(18)] for r in (8, 20, 30)]
    walk += [[textured_square((2 + 2 * t, c)) for t in range(18)] for c in (8, 20, 30)]
    walk += [[textured_square((36 - 2 * t, c)) for t in range(18)] for c in (8, 20, 30)]
    hop = [textured_square((20 + 2 * min(t % 6, 6 - t % 6), 20)) for t in range(18)]
    normal = [textured_square((20, 2 + 2 * t)) for t in range(18)]
    for sway, want_above in ((8, True), (0, False)):
        motion = MotionModel((48, 48), sway=sway).fit(walk)
        assert motion.history == max(1, sway)
        got_hop, got_walk = motion.score_clip(hop, first=9), motion.score_clip(normal, first=9)
        assert (np.median(got_hop) > np.max(got_walk)) == want_above, (sway, got_hop, got_walk)
    # one flow has no sway: score() is the flow alone
    a, b = hop[0], hop[1]
    assert motion.score(a, b)[0] == MotionModel((48, 48), sway=8).fit(walk).score(a, b)[0]


def test_a_motion_model_with_a_sway_round_trips_and_an_old_file_scores_the_flow_alone(tmp_path):
    clips = [[textured_square((20 + 2 * min(t % 6, 6 - t % 6), 2 + t)) for t in range(14)]]  # hops along
    motion = MotionModel((48, 48)).fit(clips)
    assert motion.sway == 8 and motion.sway_prior.counts.sum() > motion.sway_prior.counts.size
    motion.save(tmp_path / MOTION_FILE)
    again = MotionModel.load(tmp_path / MOTION_FILE)
    hop = [textured_square((20 + 2 * min(t % 6, 6 - t % 6), 20)) for t in range(12)]
    assert again.score_clip(hop, 4) == pytest.approx(motion.score_clip(hop, 4), rel=1e-6)
    old = motion.to_dict()
    del old["sway"], old["sway_counts"]  # a file written before the sway
    flow_only = MotionModel.from_dict(old)
    assert flow_only.sway == 0 and flow_only.history == 1
    want = [motion.score(hop[i - 1], hop[i])[0] for i in range(4, 12)]
    assert flow_only.score_clip(hop, 4) == pytest.approx(want, rel=1e-6)


def test_the_default_presets_score_f2_flow_and_the_paper_presets_full():
    from stvad.config import PAPER_TWIN, preset

    for name, paper in PAPER_TWIN.items():
        assert preset(name).score.variant == "f2+flow" and preset(paper).score.variant == "full"


def test_an_f2_flow_detector_trains_calibrates_alarms_and_exports(square_data, tmp_path):
    """The default score end to end: the threshold is fitted on f2+flow with the alarms' window scoring (its
    own f2 standardiser), predictions and an ONNX export follow from it."""
    from stvad.api import Detector
    from stvad.export import OnnxEngine, export

    run = tmp_path / "run"
    det = Detector.fit(
        square_data, out=run, preset="tiny", max_steps=4, score__variant="f2+flow", progress=False
    )
    cal = json.loads((run / "calibration.json").read_text())
    assert cal["variant"] == "f2+flow" and cal["score"]["aggregate"] == "patch-max"
    assert cal["score"]["fusion"] == det.config.score.fusion  # how alarms join f2 and the flow, recorded
    assert scale_key(det.config.score, det.engine.step) in read_motion(run).scales["f2"]
    result = det.score(square_data / "test" / "t")
    assert np.isfinite(result.score).all() and result.variant == "f2+flow"
    assert set(np.unique(det.predict(square_data / "test" / "t"))) <= {-1, 0, 1}
    pytest.importorskip("onnxruntime")
    engine = OnnxEngine(export(run, "onnx", tmp_path / "m.onnx")["path"])
    frames = list(open_dataset(square_data).test[0].source.frames(det.config.data.size, 1))
    got = score_frames(engine, frames, chunk=8).scores["f2+flow"]
    np.testing.assert_allclose(got, score_frames(det.engine, frames).scores["f2+flow"], rtol=0, atol=1e-3)


def _square_clip(xs: list[int], seed: int) -> list[np.ndarray]:
    """32x32 grey frames (uint8, (H, W, 1)): a bright 4x4 square on row 12 at each x of ``xs``, on a fixed
    textured ground (where DIS finds no flow) with a little sensor noise."""
    rng, ground = np.random.default_rng(seed), np.random.default_rng(0).uniform(60, 140, (32, 32))
    out = []
    for x in xs:
        f = ground + rng.normal(0, 0.5, (32, 32))
        f[12:16, x : x + 4] = 200
        out.append(f.clip(0, 255).astype(np.uint8)[..., None])
    return out


def test_the_still_term_finds_a_figure_that_stops_where_figures_only_move(tmp_path):
    """Squares only ever cross the frame in training; one that stops is still foreground there: with the
    still term its frames outscore those where it moves, without it they are the quietest of the clip.
    The term is fitted and saved with the model, and needs a background (none: no term)."""
    walk = [list(range(0, 28, 2)) for _ in range(4)]
    train = [_square_clip(xs, s) for s, xs in enumerate(walk)]
    # moves 8 frames, stands 12, moves on, and another crosses: the clip's median is the empty scene
    stops = [*range(0, 16, 2), *[16] * 12, *range(18, 28, 2), *range(0, 28, 2)]
    test = _square_clip(stops, 9)
    with_still = MotionModel((32, 32), still=12).fit(train)
    without = MotionModel((32, 32)).fit(train)
    a, b = np.array(with_still.score_clip(test)), np.array(without.score_clip(test))
    # score_clip's scores start at frame 1; the square has stood for 8 frames from frame 16 to frame 19
    standing, moving = np.arange(16, 20) - 1, np.arange(1, 8) - 1
    assert a[standing].min() > a[moving].max()
    assert b[standing].max() < b[moving].min()
    # the term alone is what differs, and only where the square has stood long enough
    np.testing.assert_allclose(a[moving], b[moving], rtol=1e-6)
    # saved and read back, the model scores alike; an old file without the term reads as without it
    path = tmp_path / MOTION_FILE
    with_still.save(path)
    back = MotionModel.load(path)
    assert back.still == 12 and back.frames_needed == 9
    np.testing.assert_allclose(back.score_clip(test), a, rtol=1e-6)
    d = json.loads(path.read_text())
    del d["still"], d["still_counts"]
    assert MotionModel.from_dict(d).still_prior is None
    # without a background (a window scored alone) there is no still term
    flows = [with_still.flow(test[i - 1], test[i]) for i in range(11, 19)]
    assert with_still.score_flows(flows, test[10:19], None)[0] == pytest.approx(without.score_flows(flows)[0])


def test_a_run_scores_the_still_term_against_the_sources_median_or_a_running_one(
    square_run, square_data, tmp_path
):
    """fit_motion fits the still term when asked and the run then scores with it: a whole source against
    its own median, as MotionModel.score_clip does, and a stream without a fixed background against a
    running median (so its scores differ)."""
    run = tmp_path / "run"
    shutil.copytree(square_run, run)
    motion = fit_motion(run, still=12)  # a model without the term is refitted with it
    assert read_motion(run).still == 12 and motion.frames_needed == 9
    # adding a standardiser (as eval and calibrate do) or refitting keeps the term the model was fitted with
    fit_motion(run, score_sets=[["score.aggregate=patch-max", "score.patch=0.25"]])
    assert read_motion(run).still == 12
    assert fit_motion(run, refit=True).still == 12 and fit_motion(run, still=0).still_prior is None
    motion = fit_motion(run, still=12)
    scorer = Scorer.from_run(run, variants=("flow",))
    video = open_dataset(square_data).test[0]
    frames = list(scorer.frames(video.source))
    whole = scorer.score_source(video.source).scores["flow"]
    np.testing.assert_allclose(whole, motion.score_clip(frames, first=scorer.T), rtol=1e-5)
    assert scorer.engine.background is None  # the source's background is not kept for the next source
    stream = scorer.score_frames(iter(frames)).scores["flow"]
    assert np.isfinite(stream).all() and not np.allclose(stream, whole)


def test_a_file_is_scored_against_its_own_median_on_every_path(square_run, square_data, tmp_path):
    """Detector.score (so `stvad score`) judges a whole file's still term against the file's own median, as
    eval does (Scorer.score_source), not against the running median of a live stream."""
    from stvad.api import Detector

    run = tmp_path / "run"
    shutil.copytree(square_run, run)
    (run / "calibration.json").unlink()  # the run's own scoring, not its alarms'
    default = ["score.variant=f2+flow", "score.fusion=max"]  # the default presets' score
    fit_motion(run, still=12)
    det = Detector.load(run)
    det.engine.cfg = det.engine.cfg.with_score(default)
    det.engine.variant = variant = "f2+flow"
    assert variant in NEEDS_FLOW and det.engine.motion.frames_needed
    video = open_dataset(square_data).test[0]
    got = det.score(video.source)
    assert det.engine.background is None  # nothing kept for the next file
    scorer = Scorer.from_run(run, variants=(variant,))
    scorer.cfg = scorer.cfg.with_score(default)
    whole = scorer.score_source(video.source).scores[variant]
    np.testing.assert_allclose(got.score, whole, rtol=1e-5, atol=1e-4)
    stream = scorer.score_frames(scorer.frames(video.source)).scores[variant]
    assert not np.allclose(stream, whole)


def test_a_streams_sway_kept_flow_by_flow_is_the_sway_of_its_last_flows():
    """SwayWindow gives exactly what sway() gives over the same last k flows, at every frame of a long stream
    (fewer than k at its start), so a stream's scores equal a window's."""
    from stvad.motion import SwayWindow, sway

    rng = np.random.default_rng(0)
    flows = [rng.normal(0, 2, (24, 32, 2)).astype(np.float32) for _ in range(40)]
    kept = SwayWindow(8)
    for i, f in enumerate(flows):
        kept.append(f)
        assert len(kept) == min(i + 1, 8)
        np.testing.assert_array_equal(kept.value(), sway(flows[max(0, i - 7) : i + 1]))


def test_alarms_are_calibrated_on_held_out_clips_scored_as_files(square_run, square_data, tmp_path):
    """calibrate judges the still term of each held-out clip against its whole training video's median and
    of each extra source against its own, as `stvad score` judges a file and fit_motion standardised the
    flow score, not against a stream's cold running median (which takes a clip's people for background)."""
    from stvad.calibration import calibrate
    from stvad.data.sources import open_source

    run = tmp_path / "run"
    shutil.copytree(square_run, run)
    fit_motion(run, still=12)
    how = ["score.variant=flow", "score.causal_window=1"]
    extra = open_dataset(square_data).test[0].source.path  # a square stops in it: the still term fires
    cal = calibrate(run, quantile=0.9, score_set=how, sources=[extra])
    scorer = Scorer.from_run(run, variants=("flow",))
    scorer.cfg = scorer.cfg.with_score(how)
    assert scorer.engine.motion.frames_needed
    as_files, as_streams = [], []
    for src, start, stop in [*scorer.heldout_clips(), (open_source(extra), 0, None)]:
        as_streams.append(scorer.score_frames(scorer.frames(src, start, stop)).scores["flow"])
        as_files.append(scorer.score_source(src, start=start, stop=stop).scores["flow"])
    as_files, as_streams = np.concatenate(as_files), np.concatenate(as_streams)
    assert cal["frames"] == as_files.size
    assert cal["normal_mean"] == pytest.approx(float(as_files.mean()), rel=1e-5, abs=1e-5)
    assert cal["threshold"] == pytest.approx(float(np.quantile(as_files, 0.9)), rel=1e-5, abs=1e-5)
    assert not np.allclose(as_files, as_streams)
    assert scorer.engine.background is None
