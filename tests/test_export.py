"""Exported graphs score like PyTorch: ONNX within 1e-4 on the score and the map, TorchScript too."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from stvad.calibration import alarm_config
from stvad.checkpoint import load_run
from stvad.cli import main
from stvad.config import preset
from stvad.data.layouts import open_dataset
from stvad.data.sources import to_model
from stvad.data.windows import iter_windows
from stvad.engine import Scorer, TorchEngine, score_frames
from stvad.errors import StvadError
from stvad.export import OnnxEngine, WindowScore, export, fold_spectral_norm, write_graph
from stvad.model import build_discriminator, build_generator

pytestmark = pytest.mark.usefixtures("torch_one_thread")
TOL = 1e-4


@pytest.fixture(scope="module")
def onnx_model(tiny_run, tmp_path_factory):
    pytest.importorskip("onnxruntime")
    out = tmp_path_factory.mktemp("export") / "model.onnx"  # not inside tiny_run, which tests share
    return export(tiny_run, "onnx", out)


def real_windows(run_dir, synth_small, n: int = 12):
    cfg = load_run(run_dir).config
    frames = open_dataset(synth_small).test[0].source.frames(cfg.data.size, cfg.data.channels)
    return [w for _, w in zip(range(n), iter_windows(frames, cfg.data.T))]


def test_onnx_equals_pytorch_on_score_and_map(onnx_model, tiny_run, synth_small):
    assert onnx_model["max_abs_diff_score"] <= TOL and onnx_model["max_abs_diff_map"] <= TOL
    engine = OnnxEngine(onnx_model["path"])
    scorer = Scorer.from_run(tiny_run)
    variant = scorer.cfg.score.variant
    for _, past, target in real_windows(tiny_run, synth_small):
        want_scores, want_map = scorer.score_windows(past[None], target[None])
        score, amap = engine.run(to_model(past[None]), to_model(target[None]))
        assert abs(float(score[0]) - float(want_scores[variant][0])) <= TOL
        assert float((amap - want_map).abs().max()) <= TOL


def test_onnx_backend_scores_a_video_like_torch(onnx_model, tiny_run, synth_small):
    cfg = load_run(tiny_run).config
    frames = list(open_dataset(synth_small).test[2].source.frames(cfg.data.size, cfg.data.channels))[:24]
    t = score_frames(TorchEngine(load_run(tiny_run)), frames, keep_maps=True)
    o = score_frames(OnnxEngine(onnx_model["path"]), frames, keep_maps=True, chunk=5)
    (i_torch, s_torch, m_torch), (i_onnx, s_onnx, m_onnx) = (
        (r.index, r.scores[cfg.score.variant], r.maps) for r in (t, o)
    )
    np.testing.assert_array_equal(i_onnx, i_torch)
    np.testing.assert_allclose(s_onnx, s_torch, rtol=0, atol=TOL)
    np.testing.assert_allclose(m_onnx.astype(np.float32), m_torch.astype(np.float32), rtol=0, atol=1e-3)


def test_onnx_file_carries_config_and_calibration(square_run, tmp_path):
    pytest.importorskip("onnxruntime")
    path = export(square_run, "onnx", tmp_path / "m.onnx")["path"]
    engine = OnnxEngine(path)
    assert engine.calibration is not None and engine.calibration["threshold"] > 0
    # the graph scores as the calibrated alarms do, which is not how benchmarks score the run
    assert engine.cfg.to_dict() == alarm_config(load_run(square_run).config, engine.calibration).to_dict()
    assert engine.cfg.score.aggregate == "patch-max" != load_run(square_run).config.score.aggregate


def test_torchscript_equals_pytorch(tiny_run, synth_small, tmp_path):
    r = export(tiny_run, "torchscript", tmp_path / "model.pt")
    assert r["max_abs_diff_score"] <= TOL and r["max_abs_diff_map"] <= TOL
    traced = torch.jit.load(r["path"])
    scorer = Scorer.from_run(tiny_run)
    _, past, target = real_windows(tiny_run, synth_small, n=1)[0]
    with torch.no_grad():
        score, amap = traced(to_model(past[None]), to_model(target[None]))
    want_scores, want_map = scorer.score_windows(past[None], target[None])
    assert abs(float(score[0]) - float(want_scores[scorer.cfg.score.variant][0])) <= TOL
    assert float((amap - want_map).abs().max()) <= TOL


def test_export_cli_writes_the_file_and_rejects_unknown_formats(square_run, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "deploy" / "cam.onnx"
    assert main(["export", str(square_run), "--format", "onnx", "--out", str(out)]) == 0
    assert out.is_file() and f"wrote {out}" in capsys.readouterr().out
    assert not list(out.parent.glob(".*tmp*"))
    assert main(["export", str(square_run), "--format", "tflite", "--out", str(out)]) == 2
    assert "unknown export format" in capsys.readouterr().err


def test_missing_onnx_runtime_is_a_clear_error(monkeypatch, tiny_run, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with pytest.raises(StvadError, match=r"stvad\[export\]"):
        export(tiny_run, "onnx", tmp_path / "m.onnx")
    with pytest.raises(StvadError, match=r"stvad\[export\]"):
        OnnxEngine(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("arch", ["stgan-residual", "ffp", "stgan-context"])
def test_other_models_export_too(arch, tmp_path):
    """The residual generator (atanh, which the exporter lacks a rule for), the FFP baseline, and a D
    conditioned on the past frames."""
    pytest.importorskip("onnxruntime")
    cfg = preset("tiny")
    cfg.model.g_residual = arch == "stgan-residual"
    cfg.model.d_context = 4 if arch == "stgan-context" else 0
    cfg.model.arch = "stgan" if arch.startswith("stgan") else "ffp"
    model = fold_spectral_norm(WindowScore(build_generator(cfg), build_discriminator(cfg), cfg).eval())
    r = write_graph(model, "onnx", tmp_path / "m.onnx")
    assert r["max_abs_diff_score"] <= TOL and r["max_abs_diff_map"] <= TOL


def test_f2_flow_exports_the_f2_graph_with_the_flow_model_beside_it(tiny_run, synth_small, tmp_path):
    """The graph computes f2 (D's first two layers only); the flow model travels as metadata, and the ONNX
    engine adds the flow's score as PyTorch's does. TorchScript, which cannot carry it, refuses."""
    pytest.importorskip("onnxruntime")
    run = load_run(tiny_run)
    run.config.score.variant = "f2+flow"
    step = run.meta["step"]  # which f2 standardiser the graph's engine uses, as TorchEngine does
    graph = fold_spectral_norm(WindowScore(run.generator, run.discriminator, run.config, run.motion, step))
    assert graph.variant == "f2" and not graph.need_map and graph.motion is run.motion
    path = write_graph(graph, "onnx", tmp_path / "m.onnx")["path"]
    frames = list(open_dataset(synth_small).test[2].source.frames(run.config.data.size, 1))[:24]
    fresh = load_run(tiny_run)
    fresh.config.score.variant = "f2+flow"
    t = score_frames(TorchEngine(fresh), frames, keep_maps=True)
    o = score_frames(OnnxEngine(path), frames, keep_maps=True, chunk=5)
    np.testing.assert_allclose(o.scores["f2+flow"], t.scores["f2+flow"], rtol=0, atol=TOL)
    np.testing.assert_allclose(o.maps.astype(np.float32), t.maps.astype(np.float32), rtol=0, atol=1e-2)
    with pytest.raises(StvadError, match="TorchScript .* export to onnx"):
        write_graph(graph, "torchscript", tmp_path / "m.pt")
    run.config.score.variant = "flow"
    with pytest.raises(StvadError, match="flow score alone has no graph"):
        WindowScore(run.generator, run.discriminator, run.config, run.motion, step)
