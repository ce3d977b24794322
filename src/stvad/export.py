"""``stvad export``: the trained scorer as one graph, for ONNX Runtime or TorchScript.

The graph takes a window, ``past`` (1, T, C, H, W) and ``target`` (1, C, H, W), frames in [-1, 1], and
returns the frame score of the configured variant (1,) and the pixel map (1, H, W): G's prediction, D's
pass and equations 4-5 (:func:`stvad.engine.judge`), exactly as the PyTorch scorer computes them.

The batch is fixed at 1: PyTorch's TorchScript-based ONNX exporter (the only one usable without the
optional ``onnxscript`` package) freezes the batch size that the generator reads from its input shape.
Spectral normalisation is folded into the weights first (its eval-mode weights are constants), because
the power-iteration code it would otherwise trace has no ONNX operator.

The ONNX file carries the run's config and calibration as metadata, so it scores on its own:
``stvad score model.onnx VIDEO --backend onnxruntime``. onnx and onnxruntime are the optional extra
``stvad[export]``; they are imported only here, when needed.
"""

from __future__ import annotations

import importlib
import json
import os
import warnings
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from stvad._io import check_writable
from stvad.calibration import alarm_config, read_calibration
from stvad.checkpoint import load_run
from stvad.config import Config
from stvad.engine import WindowEngine, fold_spectral_norm, judge, no_motion_model, run_folder
from stvad.errors import StvadError
from stvad.model import Features
from stvad.motion import MotionModel
from stvad.scoring import NEEDS_D_MAP, NEEDS_FLOW, model_variants

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
EXPORT_DIR = "export"
ONNX_FILE = "model.onnx"
OPSET = 17


def _require(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise StvadError(
            f"{module} is not installed: it is part of the optional extra, pip install 'stvad[export]'"
        ) from e


class WindowScore(nn.Module):
    """One window -> (frame score of ``cfg.score.variant`` (B,), pixel map (B, H, W)).

    For ``f2+flow`` the graph computes ``f2`` and its map; the flow model (``motion``, OpenCV's optical flow
    and a table, no graph) travels beside it as metadata, and the engine adds its score (as
    :meth:`stvad.engine.WindowEngine.add_flow` does for PyTorch)."""

    def __init__(
        self,
        G: nn.Module,
        D: nn.Module,
        cfg: Config,
        motion: MotionModel | None = None,
        step: int | None = None,
    ):
        super().__init__()
        self.G, self.D, self.cfg = G, D, cfg
        variant = cfg.score.variant
        if variant == "flow":
            raise StvadError("the flow score alone has no graph to export: export score.variant=f2+flow")
        self.variant = model_variants([variant])[0]
        self.need_map = self.variant in NEEDS_D_MAP  # f2, only-stn, psnr: D's first two layers at most
        self.motion, self.step = (motion, step) if variant in NEEDS_FLOW else (None, None)

    def forward(self, past: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sb = judge(self.D, target, self.G(past), self.cfg.score, past, self.need_map)
        return sb.scores[self.variant], sb.maps[self.variant]


def window_score(
    run_dir: str | os.PathLike, which: str = "best", calibration: dict | None = None
) -> WindowScore:
    """The exportable scorer of a run, loaded afresh (folding spectral norm changes the modules); given the
    run's calibration, the graph scores as its alarms do (:func:`stvad.calibration.alarm_config`)."""
    run = load_run(run_dir, which=which)
    cfg = alarm_config(run.config, calibration)
    if cfg.score.variant in NEEDS_FLOW and run.motion is None:
        raise no_motion_model(cfg.score.variant, run_dir)
    graph = WindowScore(run.generator, run.discriminator, cfg, run.motion, run.meta.get("step"))
    if graph.motion is not None:
        graph.motion.f2_scale(cfg.score, graph.step)  # fitted for the scoring exported, or say how to fit it
    return fold_spectral_norm(graph.eval())


def example_window(cfg: Config, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A random window of the run's shape: past (1, T, C, H, W), target (1, C, H, W), in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    (h, w), c = cfg.data.size, cfg.data.channels
    return torch.rand(1, cfg.data.T, c, h, w, generator=g) * 2 - 1, torch.rand(
        1, c, h, w, generator=g
    ) * 2 - 1


def export(
    run_dir: str | os.PathLike, fmt: str = "onnx", out: str | os.PathLike | None = None, which: str = "best"
) -> dict:
    """Write RUN's scorer as ONNX or TorchScript (default: RUN/export/model.onnx or .pt); see write_graph."""
    if fmt not in FORMATS:
        raise StvadError(f"unknown export format '{fmt}' (choose from: {', '.join(FORMATS)})")
    folder = run_folder(run_dir)
    out = Path(out) if out is not None else folder / EXPORT_DIR / f"model{FORMATS[fmt]}"
    calibration = read_calibration(folder) if folder.is_dir() else None
    return write_graph(window_score(run_dir, which, calibration), fmt, out, calibration)


def write_graph(
    model: WindowScore, fmt: str, out: str | os.PathLike, calibration: dict | None = None
) -> dict:
    """Write ``model`` as one graph and check it against PyTorch on a random window.

    Returns the path, the format and the largest absolute differences of score and map from PyTorch.
    """
    if fmt not in FORMATS:
        raise StvadError(f"unknown export format '{fmt}' (choose from: {', '.join(FORMATS)})")
    out = Path(out)
    past, target = example_window(model.cfg)
    with torch.no_grad():
        want_score, want_map = model(past, target)
    check_writable(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StvadError(f"cannot write here ({e.strerror or e})", out) from e
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        if fmt == "onnx":
            got_score, got_map = _export_onnx(model, past, target, tmp, calibration)
        else:
            got_score, got_map = _export_torchscript(model, past, target, tmp)
        os.replace(tmp, out)
    except OSError as e:
        raise StvadError(f"cannot write ({e.strerror or e})", out) from e
    finally:
        tmp.unlink(missing_ok=True)
    return {
        "path": str(out),
        "format": fmt,
        "max_abs_diff_score": float((got_score - want_score).abs().max()),
        "max_abs_diff_map": float((got_map - want_map).abs().max()),
    }


def _export_onnx(
    model: WindowScore, past: torch.Tensor, target: torch.Tensor, path: Path, calibration: dict | None
) -> tuple[torch.Tensor, torch.Tensor]:
    onnx = _require("onnx")
    _require("onnxruntime")
    # ONNX has had Atanh since opset 9, but the TorchScript-based exporter has no rule for it (g_residual)
    torch.onnx.register_custom_op_symbolic("aten::atanh", lambda g, x: g.op("Atanh", x), 9)
    with warnings.catch_warnings():
        # the tracer warns about the shape checks in the model code; the shapes are fixed here
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (past, target),
            str(path),
            dynamo=False,
            input_names=["past", "target"],
            output_names=["score", "map"],
            opset_version=OPSET,
        )
    proto = onnx.load(str(path))
    meta = {"stvad_config": json.dumps(model.cfg.to_dict())}
    if calibration is not None:
        meta["stvad_calibration"] = json.dumps(calibration)
    if model.motion is not None:
        meta["stvad_motion"] = json.dumps({**model.motion.to_dict(), "step": model.step})
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
    return OnnxEngine(path).run(past, target)


def _export_torchscript(
    model: WindowScore, past: torch.Tensor, target: torch.Tensor, path: Path
) -> tuple[torch.Tensor, torch.Tensor]:
    if model.motion is not None:
        raise StvadError(
            "a TorchScript file holds the graph alone, and the f2+flow score needs the flow model beside it: "
            "export to onnx (it carries the model as metadata)",
            path.with_name(path.name.lstrip(".").removesuffix(".tmp")),
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, (past, target), check_trace=False)
        traced.save(str(path))
        loaded = torch.jit.load(str(path))
    with torch.no_grad():
        return loaded(past, target)


def onnx_path(run: str | os.PathLike) -> Path:
    """RUN's exported ONNX file: RUN itself when it is one, else RUN/export/model.onnx."""
    path = Path(run)
    if path.suffix == ".onnx":
        if not path.is_file():
            raise StvadError("ONNX file not found", path)
        return path
    path = run_folder(path) / EXPORT_DIR / ONNX_FILE
    if not path.is_file():
        raise StvadError(f"no exported model; run `stvad export {run} --format onnx` first", path)
    return path


def _metadata(meta: dict[str, str], key: str, path: str | os.PathLike) -> dict | None:
    """A JSON object stored in the model's metadata under ``key`` (None when absent)."""
    if key not in meta:
        return None
    try:
        value = json.loads(meta[key])
    except json.JSONDecodeError as e:
        raise StvadError(f"the {key} metadata is not valid JSON ({e})", path) from e
    if not isinstance(value, dict):
        raise StvadError(f"the {key} metadata is not a JSON object", path)
    return value


class OnnxEngine(WindowEngine):
    """The exported graph in ONNX Runtime; it needs no PyTorch model code or checkpoint.

    The graph takes whole windows, so each frame is kept (not its features) and re-read by its T windows.
    """

    def __init__(self, path: str | os.PathLike):
        ort = _require("onnxruntime")
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for unreadable models
            raise StvadError(f"cannot load the ONNX model ({e})", path) from e
        meta = self.session.get_modelmeta().custom_metadata_map
        if "stvad_config" not in meta:
            raise StvadError("not an stvad export (no stvad_config metadata)", path)
        # the graph computes one score, its config's variant (f2 for f2+flow, whose flow model is metadata)
        cfg = Config.from_dict(_metadata(meta, "stvad_config", path), source=str(path))
        motion = _metadata(meta, "stvad_motion", path)
        step = None if motion is None else motion.get("step")
        motion = None if motion is None else MotionModel.from_dict(motion, path)
        super().__init__(cfg, motion=motion, step=step)
        calibration = _metadata(meta, "stvad_calibration", path)
        if calibration is not None and not isinstance(calibration.get("threshold"), (int, float)):
            raise StvadError("the stvad_calibration metadata has no numeric 'threshold'", path)
        self.calibration = calibration

    @classmethod
    def from_run(cls, run: str | os.PathLike) -> OnnxEngine:
        return cls(onnx_path(run))

    def run(self, past: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One window through the graph: past (1, T, C, H, W), target (1, C, H, W) -> score (1,), map."""
        score, amap = self.session.run(
            None, {"past": past.contiguous().numpy(), "target": target.contiguous().numpy()}
        )
        return torch.from_numpy(score), torch.from_numpy(amap)

    def encode_frames(self, x: torch.Tensor) -> Features:
        return (x,)

    def judge_windows(
        self, windows: Features, target: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        past = windows[0]  # (M, T, C, H, W)
        results = [self.run(past[i : i + 1], target[i : i + 1]) for i in range(len(target))]
        variant = self.model_variants[0]
        return {variant: torch.cat([r[0] for r in results])}, {variant: torch.cat([r[1] for r in results])}
