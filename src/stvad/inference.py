"""Run a trained model over frames: windows -> G predicts -> D judges -> scores and anomaly maps.

``Scorer`` is the path of ``stvad eval`` and of calibration; the API, ``stvad score`` and ``stvad watch``
go through :mod:`stvad.engine`, whose backends call this module's ``judge`` for the scores, so both paths
compute a window's score with the same code (tests/test_stream.py holds them equal up to float rounding),
but they batch windows in two loops: one engine for all is still to come. This module also fits the alarm
threshold on held-out *normal* clips (never on test labels).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils import parametrize
from tqdm.auto import tqdm

from stvad._io import atomic_write_json
from stvad.checkpoint import LoadedRun, load_run
from stvad.config import Config, ScoreConfig
from stvad.data.sources import FrameSource, to_model
from stvad.data.windows import iter_windows
from stvad.errors import StvadError
from stvad.scoring import NEEDS_D, VARIANTS, ScoreBatch, psnr_score, score_batch, score_prediction

COPY_LAST = "copy-last"  # the floor: the previous frame as the prediction, scored by -PSNR
CALIBRATION_FILE = "calibration.json"
# How an alarm scores a frame, fitted with its threshold: the worst window of half the frame's shorter side
# instead of the whole frame's sum (equation 4, which benchmarks keep). A frame sum grows with the number
# of people moving, so a threshold fitted on a quiet stretch of footage fires all through a busy one; the
# worst window measures the most abnormal place. Chosen on normal footage (bench/footage_alarms.py).
ALARM_SCORE = ("score.aggregate=patch-max", "score.patch=0.5")
ALARM_KEYS = ("aggregate", "patch")  # the score settings a calibration records and alarms then use


@dataclass
class SourceScores:
    """Per-frame scores of one video; ``index[k]`` is the frame number that ``scores[v][k]`` belongs to."""

    name: str
    index: np.ndarray  # (n,) int frame numbers, starting at T
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # variant -> (n,) raw scores
    maps: np.ndarray | None = None  # (n, H, W) float16 full anomaly maps at model resolution


def fold_spectral_norm(module: torch.nn.Module) -> torch.nn.Module:
    """Replace every parametrized weight by its current (eval-mode) value, in place.

    In eval mode a spectrally normalised weight is a constant, W / sigma with sigma from the stored power
    iteration vectors, yet the parametrization recomputes it on every forward pass. PyTorch gives deep
    copies of a parametrized module one shared generated class, so folding a copy breaks the others:
    fold modules loaded afresh (``load_run``), not copies.
    """
    with torch.no_grad():
        for m in list(module.modules()):
            for name in list(getattr(m, "parametrizations", {}) or {}):
                parametrize.remove_parametrizations(m, name, leave_parametrized=True)
    return module


def prepare(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``module`` made ready for scoring, in place: eval mode, spectral norm folded, moved to ``device``,
    and on a CPU its weights channels-last.

    Folding spectral norm saves recomputing every normalised weight on each call (the scores are
    bit-identical). oneDNN, which runs PyTorch's CPU convolutions, works channels-last: with NCHW tensors
    each convolution reorders its input and output, with channels-last weights the activations stay
    channels-last from layer to layer. At the ``cpu`` preset the full score got 1.19-1.30x faster at batch 1
    (folding 1.08-1.10x of it) and 1.06-1.15x at batch 16 over two runs of bench/score_throughput.py.
    """
    module = fold_spectral_norm(module.eval()).to(device)
    if device.type == "cpu":
        module.to(memory_format=torch.channels_last)
    return module


def judge(
    D: torch.nn.Module, target: torch.Tensor, pred: torch.Tensor, cfg: ScoreConfig, past: torch.Tensor | None
) -> ScoreBatch:
    """D's verdict on a window: every variant's score and the pixel map from one D pass over xi.

    ``past`` (B, T, C, H, W) are the window's past frames, which a D with ``model.d_context`` > 0 judges the
    frame after (it sees the same past beside xi and beside G(x)); the paper's single-frame D ignores them.

    Of D on the prediction G(x) the score needs only F2 (equation 5), so only D's first two layers run on it:
    the discriminator adds one pass, not two, to the generator's cost.
    Shared by the plain scorer, the cached streaming scorer and the exported graph, so all three score alike.
    """
    return score_batch(target, pred, D(target, past), D.features2(pred, past), cfg)


class Scorer:
    """Scores windows with a loaded run.

    ``variants`` picks the scores to compute (default: all, from one G + D pass). When none of them needs
    the discriminator (``only-stn``, ``psnr``), D is not run at all. The run's modules are made ready for
    scoring in place (:func:`prepare`), so the run is for scoring afterwards, not for training.
    """

    def __init__(
        self,
        run: LoadedRun,
        batch_size: int = 16,
        device: str | torch.device = "cpu",
        variants: Sequence[str] | None = None,
    ):
        self.variants = tuple(VARIANTS if variants is None else variants)
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or not self.variants:
            raise StvadError(f"unknown score variant(s) {unknown}: choose from {', '.join(VARIANTS)}")
        self.use_d = any(v in NEEDS_D for v in self.variants)
        self.run = run
        self.cfg = run.config
        self.device = torch.device(device)
        self.G = prepare(run.generator, self.device)
        self.D = prepare(run.discriminator, self.device)
        self.batch_size = batch_size

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, which: str = "best", **kw) -> Scorer:
        return cls(load_run(run_dir, which=which), **kw)

    @property
    def T(self) -> int:
        return self.cfg.data.T

    def frames(self, source: FrameSource, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        return source.frames(self.cfg.data.size, self.cfg.data.channels, start=start, stop=stop)

    @torch.no_grad()
    def score_windows(
        self, past: np.ndarray, target: np.ndarray
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """past uint8 (B, T, H, W, C), target uint8 (B, H, W, C) -> (variant -> (B,), maps (B, H, W))."""
        x = to_model(past).to(self.device)  # (B, T, C, H, W)
        y = to_model(target).to(self.device)  # (B, C, H, W)
        pred = self.G(x)
        sc = self.cfg.score
        sb = judge(self.D, y, pred, sc, x) if self.use_d else score_prediction(y, pred, sc)
        scores = {k: sb.scores[k] for k in self.variants}
        scores[COPY_LAST] = psnr_score(y, x[:, -1], sc)
        return scores, sb.anomaly_map

    def score_frames(
        self, frames: Iterable[np.ndarray], name: str = "", keep_maps: bool = False, progress: bool = False
    ) -> SourceScores:
        """Score every frame after the first T of a frame stream (uint8 HxWxC at model size), once each."""
        index: list[int] = []
        parts: dict[str, list[np.ndarray]] = {}
        maps: list[np.ndarray] = []
        batch: list[tuple[int, np.ndarray, np.ndarray]] = []

        def flush() -> None:
            scores, amap = self.score_windows(
                np.stack([b[1] for b in batch]), np.stack([b[2] for b in batch])
            )
            index.extend(b[0] for b in batch)
            for k, v in scores.items():
                # a copy: a kept view would pin each batch's small score tensor, allocated among the
                # batch's large temporaries, and those pinned blocks fragment the heap so that memory
                # grew by ~25 KB a frame (bench/score_memory.py)
                parts.setdefault(k, []).append(v.float().cpu().numpy().copy())
            if keep_maps:
                maps.append(amap.cpu().numpy().astype(np.float16))
            batch.clear()

        bar = tqdm(desc=f"scoring {name}".strip(), unit="frame", disable=not progress, leave=False)
        for w in iter_windows(frames, self.T):
            batch.append(w)
            if len(batch) == self.batch_size:
                flush()
                bar.update(self.batch_size)
        if batch:
            bar.update(len(batch))
            flush()
        bar.close()
        keys = (*self.variants, COPY_LAST)
        return SourceScores(
            name=name,
            index=np.asarray(index, dtype=np.int64),
            scores={k: np.concatenate(parts[k]) if parts else np.zeros(0, np.float32) for k in keys},
            maps=np.concatenate(maps) if keep_maps and maps else None,
        )

    def score_source(
        self, source: FrameSource, keep_maps: bool = False, progress: bool = False
    ) -> SourceScores:
        return self.score_frames(
            self.frames(source), name=source.name, keep_maps=keep_maps, progress=progress
        )


def calibrate(
    run_dir: str | os.PathLike,
    quantile: float | None = None,
    progress: bool = False,
    scorer: Scorer | None = None,
    sources: Sequence[str | os.PathLike] = (),
    score_set: Sequence[str] = ALARM_SCORE,
) -> dict:
    """Fit the alarm threshold on the run's held-out normal validation clips and store it in the run.

    The threshold is a quantile (``score.threshold_quantile``) of the raw ``score.variant`` scores of
    normal frames, with their mean and standard deviation, so that live scores are comparable across
    videos without test-set normalisation. ``sources`` (video files or frame folders of normal footage not
    used in training) are scored whole and added to those frames. When the frames are too few for the
    quantile (fewer than 10 above it), the result carries a ``warning``.

    ``score_set`` (``score.KEY=VALUE``) says how alarms score a frame (:data:`ALARM_SCORE` by default);
    the calibration records it under ``score`` and every alarm path (``watch``, ``score``, ``predict``, the
    exported graph) scores with it (:func:`alarm_config`), so the threshold and the live scores agree.
    """
    from stvad.data.layouts import open_dataset
    from stvad.data.sources import open_source
    from stvad.data.windows import split_train_val

    run_dir = Path(run_dir)
    scorer = scorer or Scorer.from_run(run_dir)
    scorer.cfg = cfg = scorer.cfg.with_score(score_set)
    q = cfg.score.threshold_quantile if quantile is None else quantile
    data_root = scorer.run.meta.get("data_root")
    ds = open_dataset(data_root, layout=cfg.data.layout)
    _, val_clips = split_train_val(ds.train, cfg.data.val_fraction, T=cfg.data.T)
    extra = [open_source(s) for s in sources]  # every one readable before any is scored
    clips = [*val_clips, *((src, 0, None) for src in extra)]
    normal = np.concatenate(
        [
            scorer.score_frames(scorer.frames(src, start, stop), name=src.name, progress=progress).scores[
                cfg.score.variant
            ]
            for src, start, stop in clips
        ]
    )
    cal = {
        "variant": cfg.score.variant,
        "score": {k: getattr(cfg.score, k) for k in ALARM_KEYS},
        "quantile": q,
        "threshold": float(np.quantile(normal, q)),
        "normal_mean": float(normal.mean()),
        "normal_std": float(normal.std()),
        "normal_max": float(normal.max()),
        "frames": int(normal.size),
        "source": "the held-out tail of each normal training video"
        + "".join(f"; {src.path}" for src in extra),
    }
    above = normal.size * (1 - q)
    if above < 10:
        cal["warning"] = (
            f"{normal.size} normal frames give only {above:.1f} above the {q} quantile, so the threshold is "
            "close to the largest normal score; add normal footage (stvad calibrate RUN VIDEO ...) or lower "
            "--quantile"
        )
    atomic_write_json(run_dir / CALIBRATION_FILE, cal)
    return cal


def alarm_config(cfg: Config, calibration: dict | None) -> Config:
    """``cfg`` scoring as the calibration's alarms do (its recorded ``score`` settings); unchanged without
    a calibration, or for one fitted before calibrations recorded them (those scored with ``cfg``)."""
    if not calibration or not isinstance(calibration.get("score"), dict):
        return cfg
    return cfg.with_score([f"score.{k}={v}" for k, v in calibration["score"].items() if k in ALARM_KEYS])


def read_calibration(run_dir: str | os.PathLike) -> dict | None:
    """The run's stored calibration (see :func:`calibrate`), or None when it has not been fitted yet."""
    path = Path(run_dir) / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        cal = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise StvadError(f"unreadable calibration ({e})", path) from e
    if not isinstance(cal, dict) or not isinstance(cal.get("threshold"), (int, float)):
        raise StvadError("calibration has no numeric 'threshold'", path)
    return cal
