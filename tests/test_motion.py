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
    np.testing.assert_allclose(heavier - got.scores["f2+flow"], 2 * (got.scores["flow"] - mf) / sf, atol=1e-5)


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
    assert scale_key(det.config.score, det.engine.step) in read_motion(run).scales["f2"]
    result = det.score(square_data / "test" / "t")
    assert np.isfinite(result.score).all() and result.variant == "f2+flow"
    assert set(np.unique(det.predict(square_data / "test" / "t"))) <= {-1, 0, 1}
    pytest.importorskip("onnxruntime")
    engine = OnnxEngine(export(run, "onnx", tmp_path / "m.onnx")["path"])
    frames = list(open_dataset(square_data).test[0].source.frames(det.config.data.size, 1))
    got = score_frames(engine, frames, chunk=8).scores["f2+flow"]
    np.testing.assert_allclose(got, score_frames(det.engine, frames).scores["f2+flow"], rtol=0, atol=1e-3)
