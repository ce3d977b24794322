"""stvad eval and calibration end to end on a tiny trained run (numbers here are not quality claims)."""

import json
import shutil

import numpy as np
import pytest

from stvad.calibration import calibrate
from stvad.cli import main
from stvad.config import preset
from stvad.data.layouts import open_dataset
from stvad.engine import COPY_LAST, Scorer
from stvad.errors import StvadError
from stvad.evaluate import ROW_ORDER, evaluate
from stvad.scoring import VARIANTS


@pytest.fixture(scope="module")
def evaluated(tiny_run, synth_small, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    res = evaluate(
        tiny_run,
        synth_small,
        json_path=out / "eval.json",
        report_dir=out / "report",
        smoothing_sigma=2.0,
        progress=False,
    )
    return res, out


def test_every_frame_after_the_first_T_is_scored_once(evaluated, synth_small):
    res, _ = evaluated
    ds = open_dataset(synth_small)
    T = preset("tiny").data.T
    p = res["protocol"]
    assert p["frames_dropped_per_video"] == T
    assert p["scored_frames"] == sum(len(v.source) - T for v in ds.test)
    assert p["anomalous_frames"] == sum(int(v.labels[T:].sum()) for v in ds.test)
    assert p["layout"] == "ffp" and p["label_source"].endswith(".mat")


def test_json_has_one_entry_per_variant_with_the_four_metrics(evaluated):
    res, out = evaluated
    saved = json.loads((out / "eval.json").read_text())
    assert set(saved) == {"protocol", "results", "results_smoothed", "by_event_type"}  # synthetic: has types
    assert list(saved["results"]) == [v for v in ROW_ORDER if v in saved["results"]]
    assert set(saved["results"]) == {*VARIANTS, COPY_LAST}
    for entry in saved["results"].values():
        for key in ("auroc_micro", "auroc_macro", "aupr", "eer"):
            assert 0.0 <= entry[key] <= 1.0
        # global-max (eq. 6) rescales every frame by one number: the pooled AUROC cannot move
        by = entry["by_normalisation"]
        assert by["global-max"]["auroc_micro"] == pytest.approx(by["none"]["auroc_micro"])
    assert 0.0 <= saved["results"]["full"]["pixel_auroc"] <= 1.0
    assert saved["protocol"]["smoothed_sigma"] == 2.0


def test_copy_last_row_is_the_previous_frame_floor(evaluated, tiny_run, synth_small):
    """The copy-last row must equal -PSNR(frame t, frame t-1) computed independently."""
    from stvad.metrics import auroc_micro

    res, _ = evaluated
    s = Scorer.from_run(tiny_run)
    ds = open_dataset(synth_small)
    scores, labels = [], []
    for v in ds.test:
        f = np.stack(list(s.frames(v.source))).astype(np.float64) / 255.0
        mse = ((f[s.T :] - f[s.T - 1 : -1]) ** 2).reshape(len(f) - s.T, -1).mean(1)
        scores.append(10 * np.log10(np.maximum(mse, 1e-10)))
        labels.append(v.labels[s.T :])
    want = auroc_micro(scores, labels)
    got = res["results"][COPY_LAST]["by_normalisation"]["none"]["auroc_micro"]
    assert got == pytest.approx(want, abs=1e-3)


def test_report_page_exists_and_links_figures(evaluated):
    res, out = evaluated
    html = (out / "report" / "index.html").read_text()
    assert "<table" in html and "full" in html
    for name in ("roc", "top"):
        assert any(name in p.name for p in (out / "report" / "figures").iterdir())


def test_calibration_is_fitted_on_normal_clips(tiny_run, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    cal = calibrate(run, quantile=0.9)
    saved = json.loads((run / "calibration.json").read_text())
    assert saved == cal
    assert cal["frames"] > 0 and cal["variant"] == "full"
    assert cal["normal_mean"] <= cal["threshold"] <= cal["normal_max"]


def test_cli_eval_prints_the_table(tiny_run, synth_small, tmp_path, capsys):
    assert main(["eval", str(tiny_run), str(synth_small), "--json", str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| variant |") and "| copy-last |" in out
    assert (tmp_path / "e.json").exists()


def test_cli_eval_without_labels_is_a_one_line_error(tiny_run, tmp_path, capsys):
    from conftest import write_frames

    for split in ("train", "test"):
        write_frames(tmp_path / "own" / split / "clip", 12)
    assert main(["eval", str(tiny_run), str(tmp_path / "own")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no frame labels" in err[0] and "clip" in err[0]


def test_generator_only_variants_skip_the_discriminator_and_agree(tiny_run, synth_small, monkeypatch):
    source = open_dataset(synth_small).test[0].source
    every = Scorer.from_run(tiny_run).score_source(source)
    lean = Scorer.from_run(tiny_run, variants=("only-stn", "psnr"))

    def no_d(*args, **kwargs):
        raise AssertionError("D was called for generator-only variants")

    monkeypatch.setattr(lean.D, "forward", no_d)
    monkeypatch.setattr(lean.D, "features2", no_d)
    got = lean.score_source(source)
    assert set(got.scores) == {"only-stn", "psnr", COPY_LAST}
    for k in got.scores:
        np.testing.assert_allclose(got.scores[k], every.scores[k], rtol=1e-5)


def test_f2_alone_runs_only_d_first_two_layers_and_agrees(tiny_run, synth_small, monkeypatch):
    source = open_dataset(synth_small).test[0].source
    every = Scorer.from_run(tiny_run).score_source(source, keep_maps=True)
    lean = Scorer.from_run(tiny_run, variants=("f2", "only-stn"))
    assert lean.use_d and not lean.engine.use_d_map

    def no_full_d(*args, **kwargs):
        raise AssertionError("D's whole pass was run for f2 alone")

    monkeypatch.setattr(lean.D, "forward", no_full_d)
    got = lean.score_source(source, keep_maps=True)
    assert set(got.scores) == {"f2", "only-stn", COPY_LAST}
    for k in got.scores:
        np.testing.assert_allclose(got.scores[k], every.scores[k], rtol=1e-5, err_msg=k)
    # its map is f2's per-pixel terms, which sum to the f2 score (the default aggregate is the sum)
    np.testing.assert_allclose(got.maps.astype(np.float32).sum(axis=(1, 2)), got.scores["f2"], rtol=2e-2)
    assert not np.allclose(got.maps, every.maps)  # not the full method's map


def test_unknown_score_variant_is_refused(tiny_run):
    with pytest.raises(StvadError, match="unknown score variant"):
        Scorer.from_run(tiny_run, variants=("psnr", "mse"))


def test_synthetic_sets_are_also_measured_per_anomaly_type(evaluated, synth_small):
    from sklearn.metrics import roc_auc_score

    from stvad.scoring import postprocess

    res, out = evaluated
    by_type = json.loads((out / "eval.json").read_text())["by_event_type"]
    events = json.loads((synth_small / "events.json").read_text())["events"]
    ds = open_dataset(synth_small)
    T = preset("tiny").data.T
    kinds = {e["type"] for e in events}
    assert set(by_type["frames"]) <= kinds and by_type["frames"]
    assert sum(by_type["frames"].values()) == res["protocol"]["anomalous_frames"]
    assert "Micro AUROC by anomaly type" in res["table"]
    # copy-last on one type, recomputed from the frames: the previous frame as prediction, -PSNR, min-max
    kind = max(by_type["frames"], key=by_type["frames"].get)
    per_video, keep, labels = [], [], []
    for v in ds.test:
        f = np.stack(list(v.source.frames(preset("tiny").data.size, 1))).astype(np.float64) / 255
        s = 10 * np.log10(((f[T:] - f[T - 1 : -1]) ** 2).reshape(len(f) - T, -1).mean(1).clip(1e-10))
        per_video.append(s)
        y = np.asarray(v.labels[T:]).astype(bool)
        t = np.zeros(len(y), bool)
        for e in events:
            if e["video"] == v.name and e["type"] == kind:
                t[max(e["start"] - T, 0) : e["end"] - T + 1] = True
        keep.append(~y | t)
        labels.append(y)
    s = np.concatenate(postprocess(per_video, res["protocol"]["normalisation"], 0.0))
    k, y = np.concatenate(keep), np.concatenate(labels)
    assert by_type["copy-last"][kind] == pytest.approx(roc_auc_score(y[k], s[k]), abs=1e-3)


def test_eval_can_change_how_the_run_is_scored_and_records_it(tiny_run, synth_small, tmp_path):
    config_before = (tiny_run / "config.json").read_text()
    flags = ["--set", "score.aggregate=patch-max", "--set", "score.patch=0.25"]
    assert main(["eval", str(tiny_run), str(synth_small), "--json", str(tmp_path / "e.json"), *flags]) == 0
    score = json.loads((tmp_path / "e.json").read_text())["protocol"]["score"]
    assert score["aggregate"] == "patch-max" and score["patch"] == 0.25
    assert (tiny_run / "config.json").read_text() == config_before  # the run itself is not changed


def test_eval_refuses_to_change_what_the_run_learned(tiny_run, synth_small, capsys):
    assert main(["eval", str(tiny_run), str(synth_small), "--set", "model.g_width=8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "only score.* settings" in err[0]


def test_a_compared_run_adds_its_rows_beside_the_run(tiny_run, synth_small, tmp_path, capsys):
    """`stvad eval RUN DATA --compare OTHER`: the other run's full, only-stn, dmap and f2 rows, tagged (by
    its folder here, since both runs share a preset), in the table, the JSON and the per-type table."""

    twin = tmp_path / "twin"
    shutil.copytree(tiny_run, twin)
    out = tmp_path / "e.json"
    assert main(["eval", str(tiny_run), str(synth_small), "--compare", str(twin), "--json", str(out)]) == 0
    table = capsys.readouterr().out
    res = json.loads(out.read_text())
    for v in ("full", "only-stn", "dmap", "f2"):
        row = f"{v} [twin]"
        assert f"| {row} |" in table and row in res["by_event_type"]
        # the same weights scored the same way: the same numbers as the run's own rows
        assert res["results"][row]["auroc_micro"] == pytest.approx(res["results"][v]["auroc_micro"], abs=1e-9)
    assert res["protocol"]["compared_runs"] == [str(twin)]


def test_the_pixel_auroc_and_report_maps_are_those_of_the_runs_own_score(
    tiny_run, synth_small, tmp_path, monkeypatch
):
    """A run scored by f2+flow is localised by f2+flow's map, not by full's (the all-rows pass keeps), and
    the one pass over the test videos that scores every row gives both maps."""
    from stvad.calibration import fit_motion
    from stvad.evaluate import _pixel_auroc

    run = shutil.copytree(tiny_run, tmp_path / "run")
    fit_motion(run)
    passes = []
    score_source = Scorer.score_source

    def counted(self, *args, **kwargs):
        passes.append(1)
        return score_source(self, *args, **kwargs)

    monkeypatch.setattr(Scorer, "score_source", counted)
    res = evaluate(
        run, synth_small, report_dir=tmp_path / "report", progress=False, score_set=["score.variant=f2+flow"]
    )
    assert len(passes) == len(open_dataset(synth_small).test)  # one pass, not one more for the own map
    monkeypatch.undo()
    own = res["results"]["f2+flow"]["pixel_auroc"]
    videos = open_dataset(synth_small).test
    alone = Scorer.from_run(run, variants=("f2+flow",))
    alone.cfg = alone.cfg.with_score(["score.variant=f2+flow"])
    want = _pixel_auroc(videos, [alone.score_source(v.source, keep_maps=True) for v in videos])
    assert own == pytest.approx(want, abs=1e-9)
    assert own != pytest.approx(res["results"]["full"]["pixel_auroc"], abs=1e-6)
    assert "f2+flow anomaly map (the run's score)" in res["table"]
    assert "f2+flow score: frame-level micro AUROC" in (tmp_path / "report" / "index.html").read_text()
