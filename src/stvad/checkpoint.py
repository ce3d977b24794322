"""Reading training runs and their checkpoints, safely.

A checkpoint is a Lightning checkpoint whose ``"stvad"`` entry holds the full config (a plain dict), the
step, the validation metrics and the run's metadata. Everything in it is tensors and plain Python types,
so it is read with ``torch.load(weights_only=True)``: a file crafted to run code when unpickled is refused.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from stvad.config import Config
from stvad.errors import StvadError
from stvad.model import build_discriminator, build_generator

WHICH = ("best", "last")


class LoadedRun(NamedTuple):
    config: Config
    generator: nn.Module
    discriminator: nn.Module
    meta: dict[str, Any]


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
        raise StvadError(f"not a readable checkpoint ({e})", path) from e
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "stvad" not in ckpt:
        raise StvadError("not an stvad checkpoint (no model state or config inside)", path)
    return ckpt


def checkpoint_path(run_dir: str | os.PathLike, which: str = "best") -> Path:
    """RUN/checkpoints/{which}.ckpt, or ``run_dir`` itself when it is a checkpoint file."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        return run_dir
    if which not in WHICH:
        raise StvadError(f"which must be one of {', '.join(WHICH)}, got '{which}'")
    path = run_dir / "checkpoints" / f"{which}.ckpt"
    if not path.exists():
        if not run_dir.exists():
            raise StvadError("run folder not found", run_dir)
        raise StvadError(
            f"no {which} checkpoint in this run (training has not reached a validation yet?)", path
        )
    return path


def _sub_state(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def load_run(run_dir: str | os.PathLike, which: str = "best") -> LoadedRun:
    """Load a run's config, generator and discriminator (CPU, eval mode) from its best or last checkpoint."""
    path = checkpoint_path(run_dir, which)
    ckpt = read_checkpoint(path)
    state = ckpt["stvad"]
    cfg = Config.from_dict(state["config"], source=str(path))
    G, D = build_generator(cfg), build_discriminator(cfg)
    for name, net in (("G", G), ("D", D)):
        try:
            net.load_state_dict(_sub_state(ckpt["state_dict"], f"{name}."))
        except RuntimeError as e:
            raise StvadError(
                f"the {name} weights do not fit the saved config ({str(e).splitlines()[0]})", path
            ) from e
        net.eval()
    meta = {
        **state.get("meta", {}),
        "step": state.get("step"),
        "best": state.get("best"),
        "val": state.get("val"),
        "checkpoint": str(path),
    }
    return LoadedRun(cfg, G, D, meta)
