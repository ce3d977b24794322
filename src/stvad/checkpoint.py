"""Reading training runs and their checkpoints, safely.

A checkpoint is a Lightning checkpoint whose ``"stvad"`` entry holds the full config (a plain dict), the
step, the validation metrics and the run's metadata. Everything in it is tensors and plain Python types,
so it is read with ``torch.load(weights_only=True)``: a file crafted to run code when unpickled is refused.
"""

from __future__ import annotations

import csv
import json
import math
import os
import pickle
import re
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from stvad.config import RESUMABLE_KEYS, UNUSED_BY_ARCH, Config, config_changes
from stvad.errors import StvadError
from stvad.model import build_discriminator, build_generator
from stvad.motion import MotionModel, read_motion

WHICH = ("best", "last")


class LoadedRun(NamedTuple):
    config: Config
    generator: nn.Module
    discriminator: nn.Module
    meta: dict[str, Any]
    motion: MotionModel | None = None  # the run's fitted flow model (RUN/motion.json), when it has one


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` on CPU, every failure as a StvadError naming the file."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise StvadError("checkpoint not found", path) from e
    except pickle.UnpicklingError as e:
        # the weights-only unpickler names the global (class or function) it refused to import
        found = re.search(r"unsupported global:?\s+(?:GLOBAL\s+)?([\w.]+)", str(e), re.IGNORECASE)
        if found is None:
            raise StvadError("not a readable checkpoint (corrupt or not written by torch.save)", path) from e
        raise StvadError(
            f"refusing to load: the checkpoint would import {found.group(1)}; a checkpoint may hold only "
            "tensors and plain types",
            path,
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        # torch's first sentence says what is wrong; the rest is advice about how files get corrupted
        raise StvadError(f"not a readable checkpoint ({str(e).split('. ')[0]})", path) from e
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "stvad" not in ckpt:
        raise StvadError("not an stvad checkpoint (no model state or config inside)", path)
    state, weights = ckpt["stvad"], ckpt["state_dict"]
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
        raise StvadError("not an stvad checkpoint (its 'stvad' entry holds no config)", path)
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
    ):
        raise StvadError("not an stvad checkpoint (its state_dict is not named tensors)", path)
    return ckpt


def checkpoint_path(run_dir: str | os.PathLike, which: str = "best") -> Path:
    """RUN/checkpoints/{which}.ckpt, or ``run_dir`` itself when it is a checkpoint file."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        if run_dir.suffix == ".onnx":
            raise StvadError("an exported ONNX model: score it with --backend onnxruntime", run_dir)
        return run_dir
    if which not in WHICH:
        raise StvadError(f"which must be one of {', '.join(WHICH)}, got '{which}'")
    path = run_dir / "checkpoints" / f"{which}.ckpt"
    if not path.exists():
        if not run_dir.exists():
            raise StvadError("run folder not found", run_dir)
        inner = sorted(c.parent.parent for c in run_dir.glob("*/checkpoints/*.ckpt"))
        if not (run_dir / "config.json").exists() and inner:
            raise StvadError(f"not a run folder; did you mean {inner[0]}?", run_dir)
        raise StvadError(
            f"no {which} checkpoint in this run (training has not reached a validation yet?)", path
        )
    return path


def _sub_state(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _check_run_config(path: Path, cfg: Config) -> None:
    """A checkpoint in RUN/checkpoints/ must agree with RUN/config.json on data, model and score settings.

    The checkpoint's own config is the one its weights fit; a config.json edited after training, or a
    checkpoint copied in from another run, would otherwise be ignored without a word.
    """
    cfg_path = path.parent.parent / "config.json"
    if path.parent.name != "checkpoints" or not cfg_path.is_file():
        return
    try:
        run_cfg = Config.from_dict(json.loads(cfg_path.read_text()), source=str(cfg_path))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StvadError(f"not a readable config ({e})", cfg_path) from e
    a, b = cfg.to_dict(), run_cfg.to_dict()
    changed = [
        f"{s}.{k}: {a[s][k]!r} in {path.name}, {b[s][k]!r} here"
        for s in ("data", "model", "score")
        for k in a[s]
        if a[s][k] != b[s][k]
    ]
    if changed:
        raise StvadError(
            f"does not match the checkpoint ({'; '.join(changed)}): the run was changed after training; "
            "restore config.json or the run's own checkpoints",
            cfg_path,
        )


def _first_mismatch(e: RuntimeError) -> str:
    """The first problem load_state_dict lists (its first line only says that there are some)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[1] if len(lines) > 1 else lines[0] if lines else type(e).__name__


def load_run(run_dir: str | os.PathLike, which: str = "best") -> LoadedRun:
    """Load a run's config, generator and discriminator (CPU, eval mode) from its best or last checkpoint."""
    path = checkpoint_path(run_dir, which)
    try:
        ckpt = read_checkpoint(path)
    except StvadError as e:
        other = path.with_name("last.ckpt")
        damaged = e.message.startswith("not a readable checkpoint")  # not one refused for what it holds
        if damaged and path.name == "best.ckpt" and other.exists():  # the last checkpoint may do
            hint = f"; the run's last checkpoint is {other}: pass that instead"
            raise StvadError(e.message + hint, path) from e
        raise
    state = ckpt["stvad"]
    cfg = Config.from_dict(state["config"], source=str(path))
    _check_run_config(path, cfg)
    G, D = build_generator(cfg), build_discriminator(cfg)
    # a run trained with train.g_ema is scored with the average of G's weights, as it was validated
    g_name = "G_ema" if any(k.startswith("G_ema.") for k in ckpt["state_dict"]) else "G"
    for name, net in ((g_name, G), ("D", D)):
        try:
            net.load_state_dict(_sub_state(ckpt["state_dict"], f"{name}."))
        except RuntimeError as e:
            raise StvadError(
                f"the {name} weights do not fit the saved config ({_first_mismatch(e)})", path
            ) from e
        net.eval()
    meta = {
        **state.get("meta", {}),
        "step": state.get("step"),
        "best": state.get("best"),
        "val": state.get("val"),
        "checkpoint": str(path),
    }
    return LoadedRun(cfg, G, D, meta, read_motion(path.parent.parent))


def validation_rows(run_dir: str | os.PathLike) -> list[dict[str, float]]:
    """The rows of ``RUN/metrics.csv`` that carry a validation (step, val_psnr, val_psnr_copy_last,
    val_d_auc, val_d_pixel_auc, ...), as floats; [] when the run has none yet."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val_psnr")]
    return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in rows]


def training_summary(run_dir: str | os.PathLike) -> tuple[list[str], list[str]]:
    """What a finished training achieved, as lines to print, and warnings: the checkpoint chosen, the
    generator's validation PSNR against the copy-last floor, and the discriminator's health."""
    run_dir = Path(run_dir)
    rows = validation_rows(run_dir)
    if not rows:
        return ["no validation yet: raise train.max_steps above train.val_every"], []
    state = read_checkpoint(checkpoint_path(run_dir, "last"))["stvad"]
    best_step = int(state["best"]["step"])
    best = next((r for r in rows if int(r["step"]) == best_step), rows[-1])
    last = rows[-1]
    gain = best["val_psnr"] - best["val_psnr_copy_last"]
    lines = [
        f"steps: {int(state['step'])}; checkpoint chosen: step {best_step} (best validation PSNR on held-out "
        f"normal clips), {checkpoint_path(run_dir, 'best')}",
        f"generator: {best['val_psnr']:.2f} dB against {best['val_psnr_copy_last']:.2f} dB for copying the "
        f"last frame ({gain:+.2f} dB)",
        f"discriminator at the last validation: AUROC real vs predicted "
        f"{last.get('val_d_auc', math.nan):.2f} (global), {last.get('val_d_pixel_auc', math.nan):.2f} "
        "(mean pixel); 0.5 is chance",
    ]
    warns = []
    if gain <= 0:
        warns.append(
            "the generator did not beat copying the last frame on held-out normal clips: train longer "
            "(train.max_steps) or check that the training videos move"
        )
    adversarial = state["config"].get("train", {}).get("adversarial", True)
    health = max(last.get("val_d_auc", 0.5), last.get("val_d_pixel_auc", 0.5))
    if adversarial and health < 0.45:
        warns.append(
            "the discriminator ranks the generator's predictions above real frames at the last validation "
            "(AUROC below 0.5): G's last steps found frames D takes for real, and G's validation PSNR "
            "usually dips with it; train.g_ema=0.99 validates and scores a moving average of G instead"
        )
    elif adversarial and health < 0.55:
        warns.append("the discriminator is near chance at the last validation: its map carries little")
    return lines, warns


def run_config(run_dir: str | os.PathLike) -> Config:
    """The config a run was trained with (``RUN/config.json``)."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise StvadError("not a training run (no config.json)", run_dir)
    try:
        return Config.from_dict(json.loads(path.read_text()), source=str(path))
    except json.JSONDecodeError as e:
        raise StvadError(f"config.json is not valid JSON ({e})", path) from e


def check_reusable(run: Path, cfg: Config) -> None:
    """Reuse a finished run only if it was trained with the config asked for now (a preset may have changed
    since); otherwise stop, naming the differing fields, rather than report a stale run under a new name."""
    ignore = UNUSED_BY_ARCH.get(cfg.model.arch, set()) | set(RESUMABLE_KEYS)
    changed = config_changes(run_config(run), cfg, ignore)
    if changed:
        detail = ", ".join(f"{k}: {old!r} in the run, {new!r} asked for" for k, old, new in changed)
        raise StvadError(f"finished run trained with another config ({detail}); use another --runs", run)
