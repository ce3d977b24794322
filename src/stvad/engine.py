"""The scoring engine: windows of T past frames and the next one, pushed through a backend, out come
scores and maps. ``WindowEngine`` keeps the last T per-frame states and batches the windows; a backend
says how a frame is encoded and a window judged: ``TorchEngine`` here (each frame through G's encoder once,
its features reused by every window that holds it), ``stvad.export.OnnxEngine`` for an exported graph.
Every path scores through it: ``stvad eval`` and calibration (:class:`Scorer`, all variants at once),
the API and ``stvad score`` (:func:`score_frames`), ``stvad watch`` (``push``). One result type,
:class:`SourceScores`; the API's ``FrameScores`` is its user-facing view.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils import parametrize
from tqdm.auto import tqdm

from stvad.checkpoint import LoadedRun, load_run
from stvad.config import Config, ScoreConfig
from stvad.data.sources import FrameSource, to_model
from stvad.errors import StvadError
from stvad.model import Features, feature_windows
from stvad.motion import STILL_FRAMES, MotionModel, RunningBackground, SwayWindow, background
from stvad.scoring import (
    NEEDS_D,
    NEEDS_D_MAP,
    NEEDS_FLOW,
    VARIANTS,
    ScoreBatch,
    combine_flow,
    model_variants,
    psnr_score,
    score_batch,
    score_features,
    score_prediction,
)

COPY_LAST = "copy-last"  # the floor: the previous frame as the prediction, scored by -PSNR
MOTION_HINT = "RUN/motion.json"
BACKGROUND_FRAMES = 400  # at most this many frames, spread over a whole source, give its still background
Clip = tuple[FrameSource, int, int | None]  # a video, its first frame and its stop


def no_motion_model(variant: str, run: str | os.PathLike | None = None) -> StvadError:
    """The error for a flow score asked of a run without a motion model."""
    return StvadError(
        f"the {variant} score needs the run's motion model ({MOTION_HINT}), and this run has none: fit it "
        "with stvad fit-motion RUN",
        run,
    )


@dataclass
class SourceScores:
    """Per-frame scores of one video; ``index[k]`` is the frame number that ``scores[v][k]`` belongs to."""

    name: str
    index: np.ndarray  # (n,) int frame numbers, starting at T
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # variant -> (n,) raw scores
    # (n, H, W) float16 maps at model resolution: full's where the pass computed it (the one eval's full row
    # is localised by), else those of the engine's score; ``own_maps`` are always the engine's score's (the
    # same array when the two are one), so one pass gives both
    maps: np.ndarray | None = None
    own_maps: np.ndarray | None = None
    frames_read: int = 0  # frames in the stream, including the first T that have no score


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
    D: torch.nn.Module,
    target: torch.Tensor,
    pred: torch.Tensor,
    cfg: ScoreConfig,
    past: torch.Tensor | None,
    need_map: bool = True,
) -> ScoreBatch:
    """D's verdict on a window: every variant's score and the pixel map from one D pass over xi.

    ``past`` (B, T, C, H, W) are the window's past frames, which a D with ``model.d_context`` > 0 judges the
    frame after (it sees the same past beside xi and beside G(x)); the paper's single-frame D ignores them.

    Of D on the prediction G(x) the score needs only F2 (equation 5), so only D's first two layers run on it:
    the discriminator adds one pass, not two, to the generator's cost. Without ``need_map`` (no variant asked
    for needs D's map: ``f2``, ``only-stn``, ``psnr``) only D's first two layers run, on xi and on G(x).
    Shared by the plain scorer, the cached streaming scorer and the exported graph, so all three score alike.
    """
    if not need_map:
        return score_features(target, pred, D.features2(target, past), D.features2(pred, past), cfg)
    return score_batch(target, pred, D(target, past), D.features2(pred, past), cfg)


class WindowEngine:
    """Scores a stream of frames window by window; subclasses say how frames are encoded and judged.

    ``push`` takes the next frames and returns the scores of those that complete a window. The engine keeps
    the per-frame states (features, or the frames themselves) of the last T frames and nothing more.
    """

    calibration: dict | None = None  # the run's fitted threshold and normal-score statistics, when known

    def __init__(
        self,
        cfg: Config,
        device: str | torch.device = "cpu",
        variants: tuple[str, ...] | None = None,
        motion: MotionModel | None = None,
        step: int | None = None,
    ):
        if cfg.score.variant not in VARIANTS:
            raise StvadError(f"score.variant must be one of {', '.join(VARIANTS)}, got '{cfg.score.variant}'")
        self.cfg = cfg
        self.T = cfg.data.T
        self.variant = cfg.score.variant
        # the scores each window gets: ``score.variant`` alone by default; the copy-last floor may be one
        self._variants = None if variants is None else tuple(variants)
        unknown = [v for v in self.variants if v not in (*VARIANTS, COPY_LAST)]
        if unknown or not self.variants:
            raise StvadError(f"unknown score variant(s) {unknown}: choose from {', '.join(VARIANTS)}")
        self.device = torch.device(device)
        self._ring: Features | None = None
        # the flow scores' model and the checkpoint's step, which picks the f2 standardiser (stvad.motion)
        self.motion, self.step = motion, step
        self._prev: np.ndarray | None = None  # the last frame pushed: the flow into the next one starts there
        self._flows: deque[np.ndarray] | None = None  # the last flows since the reset, for the motion model
        self._sway: SwayWindow | None = None  # their sway, kept up to date flow by flow
        self._frames: deque[np.ndarray] | None = None  # the last frames since the reset, for its still term
        # the still term's background: the source's, fixed by whoever knows the whole source
        # (Scorer.score_source), else a running median of the stream since the reset
        self.background: np.ndarray | None = None
        self._running: RunningBackground | None = None

    @property
    def variants(self) -> tuple[str, ...]:
        """The scores each window gets (``score.variant`` alone unless the engine was built with more)."""
        return (self.variant,) if self._variants is None else self._variants

    @property
    def model_variants(self) -> tuple[str, ...]:
        """The scores G and D compute for :attr:`variants` (``f2+flow`` needs ``f2``; ``flow`` none)."""
        return model_variants(self.variants)

    @property
    def needs_flow(self) -> bool:
        """Whether :attr:`variants` need the motion model (an error names the run when it has none)."""
        asked = [v for v in self.variants if v in NEEDS_FLOW]
        if asked and self.motion is None:
            raise no_motion_model(asked[0])
        return bool(asked)

    def window_flows(self, past: np.ndarray, target: np.ndarray) -> list[tuple]:
        """Windows given one by one (uint8 past (M, P, H, W, C), target (M, H, W, C)) -> for each target
        what the motion model reads (:meth:`stvad.motion.MotionModel.score_flows`): the flows into it
        between its window's frames, oldest first (the last ``motion.history`` of the P), its window's
        last frames and the fixed :attr:`background` (without one, no still term)."""
        k = min(past.shape[1], self.motion.history)
        out = []
        for p, t in zip(past, target):
            frames = [*p[-k:], t]
            flows = [self.motion.flow(a, b) for a, b in zip(frames[:-1], frames[1:])]
            out.append((flows, [*p[-STILL_FRAMES:], t], self.background))
        return out

    def _stream_flows(self, seq: np.ndarray, m: int) -> list[tuple]:
        """The flow into each frame of ``seq`` after its first (which the last call's flows end at, or the
        first after a reset), kept for the next call; for each of the last ``m`` frames what the motion
        model reads: the flows into it since the reset (the last ``motion.history`` of them), oldest first,
        the frames up to it since the reset (the still term's last ones), the background and the flows'
        sway (kept by a :class:`stvad.motion.SwayWindow`; None without a sway or before a second flow)."""
        if self._flows is None or self._flows.maxlen != self.motion.history:
            self._flows = deque(maxlen=self.motion.history)
            self._sway = SwayWindow(self.motion.sway) if self.motion.sway_prior is not None else None
        still = self.motion.frames_needed
        if still and self._frames is None:  # a fresh start: the first frame begins the still term's past
            self._frames, self._running = deque([seq[0]], maxlen=still), RunningBackground()
            self._running.update(seq[0])
        out = []
        for i in range(1, len(seq)):
            self._flows.append(self.motion.flow(seq[i - 1], seq[i]))
            if self._sway is not None:
                self._sway.append(self._flows[-1])
            bg = None
            if still:
                self._frames.append(seq[i])
                bg = self._running.update(seq[i]) if self.background is None else self.background
            if i >= len(seq) - m:
                swayed = self._sway.value() if self._sway is not None and len(self._flows) > 1 else None
                out.append((list(self._flows), list(self._frames or ()), bg, swayed))
        return out

    def add_flow(
        self,
        scores: dict[str, torch.Tensor],
        maps: dict[str, torch.Tensor],
        flows: list[tuple] | None,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The model's scores (:attr:`model_variants`) of M windows and their maps (variant -> (M, H, W)),
        with the flow scores added: ``flows`` hold what the motion model reads for each window's target
        (:meth:`window_flows`; None when :attr:`needs_flow` is false). Returns the scores of
        :attr:`variants`, and the maps with those of ``flow`` and ``f2+flow`` added where asked (f2's
        standardised terms joined with the flow's)."""
        if not self.needs_flow:
            return scores, maps
        got = [self.motion.score_flows(*f) for f in flows]
        flow = torch.tensor([g[0] for g in got], dtype=torch.float64)
        fmap = torch.from_numpy(np.stack([g[1] for g in got])) if got else torch.zeros(0, *self.cfg.data.size)
        fs = self.motion.scales.get("flow")
        out, maps = {}, dict(maps)
        for v in self.variants:
            if v == "flow":
                out[v], maps[v] = flow, fmap
            elif v == "f2+flow":
                bs = self.motion.f2_scale(self.cfg.score, self.step)
                w, how = self.cfg.score.flow_weight, self.cfg.score.fusion
                out[v] = combine_flow(scores["f2"].cpu().double(), flow, bs, fs, w, how)
                # no means in a map
                maps[v] = combine_flow(maps["f2"].cpu().float(), fmap, (0.0, bs[1]), (0.0, fs[1]), w, how)
            else:
                out[v] = scores[v]
        return out, maps

    def map_names(self, maps: dict[str, torch.Tensor]) -> tuple[str, ...]:
        """Which of a pass's maps an engine gives: full's where the pass computed it (eval localises its full
        row by it), then its own score's; an engine asked for other scores than its own (calibration's f2
        alone) gives the first it has."""
        names = tuple(dict.fromkeys(n for n in ("full", self.variant) if n in maps))
        return names or (next(iter(maps)),)

    def encode_frames(self, x: torch.Tensor) -> Features:
        """(N, C, H, W) frames in [-1, 1] -> per-frame states, one (N, ...) tensor per entry."""
        raise NotImplementedError

    def judge_windows(
        self, windows: Features, target: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """States stacked over M windows, (M, T, ...) each, and the targets -> scores (variant -> (M,)) of
        ``self.variants``, and maps (variant -> (M, H, W)): at least those of :attr:`model_variants`."""
        raise NotImplementedError

    @contextlib.contextmanager
    def whole_source(self, source: FrameSource) -> Iterator[None]:
        """Within it, a motion model with the still term judges against ``source``'s own background
        (:func:`source_background`, one more read of it) instead of a running one: how a whole file or
        folder is scored (``stvad eval``, ``stvad score``, ``Detector.score``); a live stream cannot be."""
        if self.needs_flow and self.motion.frames_needed:
            self.background = source_background(source, self.cfg)
        try:
            yield
        finally:
            self.background = None

    def reset(self) -> None:
        """Forget the past (after a break in the stream): the next T frames only refill the ring."""
        self._ring = None
        self._prev = None
        self._flows = None
        self._frames = None  # a fixed background stays: it is the source's, set around a whole source

    def push(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The next N frames, uint8 (N, H, W, C) at model size -> scores (M,) of ``score.variant`` and
        maps (M, H, W); see :meth:`push_all`."""
        scores, amap = self.push_all(frames)
        return scores[self.variant], amap

    def push_all(self, frames: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The next N frames, uint8 (N, H, W, C) at model size -> scores (variant -> (M,)) of
        ``self.variants`` and maps (M, H, W), full's where the pass computed it (:meth:`map_names`)."""
        scores, maps = self.push_maps(frames)
        return scores, next(iter(maps.values()))

    @torch.no_grad()
    def push_maps(self, frames: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The next N frames, uint8 (N, H, W, C) at model size -> scores (variant -> (M,)) of
        ``self.variants`` and maps (name -> (M, H, W), the names of :meth:`map_names` in its order).

        The results belong to the last M of the N frames: those with T frames before them since the last
        reset (M = N once the ring is full).
        """
        frames = np.asarray(frames)
        x = to_model(frames).to(self.device)  # (N, C, H, W)
        # the flow into each target starts at the frame before it, which may be the last one pushed before
        seq = frames if self._prev is None else np.concatenate([self._prev[None], frames])
        self._prev = frames[-1].copy()
        state = self.encode_frames(x)
        if self._ring is not None:
            state = tuple(torch.cat([r, s]) for r, s in zip(self._ring, state))
        # a copy, so the chunk's tensors are freed and the ring never holds more than T frames
        self._ring = tuple(s[-self.T :].clone() for s in state)
        m = state[0].shape[0] - self.T
        flows = self._stream_flows(seq, max(m, 0)) if self.needs_flow else None
        if m <= 0:
            none = np.zeros((0, *x.shape[-2:]), np.float32)
            return {v: np.zeros(0, np.float32) for v in self.variants}, {self.variant: none}
        scores, maps = self.judge_windows(feature_windows(state, self.T), x[-m:])
        # m < len(seq): after a reset the first T frames have no window, and before one the last frame is kept
        scores, maps = self.add_flow(scores, maps, flows)
        # the scores copied out of torch's tensor: callers keep them (score_frames), and a kept view pins
        # a small block among each call's large temporaries, which fragments the heap so that memory grows
        # by ~25 KB a frame (bench/score_memory.py)
        scores = {v: s.float().cpu().numpy().copy() for v, s in scores.items()}
        return scores, {k: maps[k].float().cpu().numpy() for k in self.map_names(maps)}


class TorchEngine(WindowEngine):
    """The trained G and D in PyTorch; each frame goes through G's encoder once.

    A discriminator conditioned on past frames (``model.d_context`` > 0) and the copy-last floor also need
    the frames themselves, so then each frame's state is G's features plus the frame. When no variant asked
    for needs the discriminator (``only-stn``, ``psnr``), D is not run.
    """

    def __init__(
        self, run: LoadedRun, device: str | torch.device = "cpu", variants: tuple[str, ...] | None = None
    ):
        super().__init__(run.config, device, variants, motion=run.motion, step=run.meta.get("step"))
        self.G = prepare(run.generator, self.device)
        self.D = prepare(run.discriminator, self.device)
        self.keep_frames = self.cfg.model.d_context > 0 or COPY_LAST in self.variants

    @property
    def use_d(self) -> bool:
        return any(v in NEEDS_D for v in self.variants)

    @property
    def use_d_map(self) -> bool:
        """Whether a variant asked for needs D's whole pass (its map), not only its first two layers."""
        return any(v in NEEDS_D_MAP for v in self.variants)

    def judge_prediction(
        self, target: torch.Tensor, pred: torch.Tensor, past: torch.Tensor | None
    ) -> ScoreBatch:
        """The scores of G's prediction that the variants asked for need: D's whole pass, its first two
        layers alone (``f2``), or no D at all. A single-frame D ignores the past it is given."""
        if not self.use_d:
            return score_prediction(target, pred, self.cfg.score)
        return judge(self.D, target, pred, self.cfg.score, past, self.use_d_map)

    def encode_frames(self, x: torch.Tensor) -> Features:
        feats = self.G.encode_frames(x)
        return (*feats, x) if self.keep_frames else feats

    def judge_windows(
        self, windows: Features, target: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        past = None
        if self.keep_frames:
            windows, past = windows[:-1], windows[-1]
        pred = self.G.predict_from_features(windows)
        sb = self.judge_prediction(target, pred, past)
        scores = {v: sb.scores[v] for v in self.model_variants if v != COPY_LAST}
        if COPY_LAST in self.variants:
            scores[COPY_LAST] = psnr_score(target, past[:, -1], self.cfg.score)
        return scores, sb.maps


class Scorer:
    """Scores whole videos with a loaded run, every variant at once: the path of ``stvad eval`` and of
    calibration, on the same engine as the rest (a :class:`TorchEngine` asked for ``variants`` and the
    copy-last floor).

    ``variants`` picks the scores to compute (default: all, from one G + D pass, and the flow's when the
    run has a motion model). When none of them needs
    the discriminator (``only-stn``, ``psnr``), D is not run at all. The run's modules are made ready for
    scoring in place (:func:`prepare`), so the run is for scoring afterwards, not for training.
    ``cfg`` may be replaced (``scorer.cfg = scorer.cfg.with_score(...)``) to score differently.
    """

    def __init__(
        self,
        run: LoadedRun,
        batch_size: int = 16,
        device: str | torch.device = "cpu",
        variants: Sequence[str] | None = None,
    ):
        if variants is None:  # every score the run has what it needs for
            variants = [v for v in VARIANTS if run.motion is not None or v not in NEEDS_FLOW]
        self.variants = tuple(variants)
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or not self.variants:
            raise StvadError(f"unknown score variant(s) {unknown}: choose from {', '.join(VARIANTS)}")
        self.run = run
        self.batch_size = batch_size
        self.engine = TorchEngine(run, device, variants=(*self.variants, COPY_LAST))

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, which: str = "best", **kw) -> Scorer:
        return cls(load_run(run_dir, which=which), **kw)

    def alongside(self, variants: Sequence[str]) -> Scorer:
        """A scorer of other ``variants`` on the same loaded run, batch size and device, with this one's
        motion model (which may be newer than the one the run was read with); its config is the run's."""
        other = Scorer(self.run, self.batch_size, self.device, variants)
        other.engine.motion = self.engine.motion
        return other

    @property
    def cfg(self) -> Config:
        return self.engine.cfg

    @cfg.setter
    def cfg(self, cfg: Config) -> None:
        self.engine.cfg, self.engine.variant = cfg, cfg.score.variant

    @property
    def G(self) -> torch.nn.Module:
        return self.engine.G

    @property
    def D(self) -> torch.nn.Module:
        return self.engine.D

    @property
    def device(self) -> torch.device:
        return self.engine.device

    @property
    def use_d(self) -> bool:
        return self.engine.use_d

    @property
    def T(self) -> int:
        return self.cfg.data.T

    def frames(self, source: FrameSource, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        return source.frames(self.cfg.data.size, self.cfg.data.channels, start=start, stop=stop)

    @torch.no_grad()
    def score_windows(
        self, past: np.ndarray, target: np.ndarray
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Windows given one by one, not as a stream: past uint8 (B, P, H, W, C), target uint8 (B, H, W, C)
        -> (variant -> (B,), maps (B, H, W)). G runs on each whole window (the reference the engine's
        feature reuse is tested against, and the way to score windows that are not consecutive). G and D
        read the last T past frames; the motion model the flows between all P and the target (its
        ``history`` last ones), so P = ``motion.history`` gives a window the flows a stream gives it."""
        x = to_model(past[:, -self.T :]).to(self.device)  # (B, T, C, H, W)
        y = to_model(target).to(self.device)  # (B, C, H, W)
        pred = self.G(x)
        sb = self.engine.judge_prediction(y, pred, x)
        scores = {k: sb.scores[k] for k in self.engine.model_variants if k != COPY_LAST}
        scores[COPY_LAST] = psnr_score(y, x[:, -1], self.cfg.score)
        flows = self.engine.window_flows(past, target) if self.engine.needs_flow else None
        scores, maps = self.engine.add_flow(scores, sb.maps, flows)
        return scores, maps[self.engine.map_names(maps)[0]]

    def score_many(
        self, past: np.ndarray, target: np.ndarray, batch: int | None = None
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """:meth:`score_windows` over any number of windows, ``batch`` (default ``batch_size``) a call:
        float32 scores per variant (n,) and maps (n, H, W) as numpy arrays."""
        batch = batch or self.batch_size
        parts: dict[str, list[np.ndarray]] = {}
        maps = []
        for i in range(0, len(past), batch):
            got, amap = self.score_windows(past[i : i + batch], target[i : i + batch])
            for k, v in got.items():
                parts.setdefault(k, []).append(v.float().cpu().numpy())
            maps.append(amap.float().cpu().numpy())
        return {k: np.concatenate(v) for k, v in parts.items()}, np.concatenate(maps)

    def clips(self) -> tuple[list[Clip], list[Clip]]:
        """The run's training clips and its held-out normal clips (the tail of each training video that
        validation and calibration use, ``data.val_fraction``), each as (source, first frame, stop)."""
        from stvad.data.layouts import open_dataset
        from stvad.data.windows import split_train_val

        cfg = self.cfg
        ds = open_dataset(self.run.meta.get("data_root"), layout=cfg.data.layout)
        return split_train_val(ds.train, cfg.data.val_fraction, T=cfg.data.T)

    def heldout_clips(self) -> list[Clip]:
        """The run's held-out normal clips (see :meth:`clips`)."""
        return self.clips()[1]

    def score_frames(
        self, frames: Iterable[np.ndarray], name: str = "", keep_maps: bool = False, progress: bool = False
    ) -> SourceScores:
        """Score every frame after the first T of a frame stream (uint8 HxWxC at model size), once each."""
        if progress:
            frames = tqdm(frames, desc=f"scoring {name}".strip(), unit="frame", leave=False)
        return score_frames(self.engine, frames, keep_maps=keep_maps, chunk=self.batch_size, name=name)

    def source_background(self, source: FrameSource) -> np.ndarray | None:
        """A whole source's background for the still term (:func:`source_background`)."""
        return source_background(source, self.cfg)

    def score_source(
        self,
        source: FrameSource,
        keep_maps: bool = False,
        progress: bool = False,
        start: int = 0,
        stop: int | None = None,
    ) -> SourceScores:
        """Score a whole source, or its frames ``start:stop`` (:meth:`score_frames`), as a file is scored:
        a motion model with the still term reads it once more first, for the whole source's background
        (the median of up to :data:`BACKGROUND_FRAMES` frames spread over it)."""
        with self.engine.whole_source(source):
            frames = self.frames(source, start, stop)
            return self.score_frames(frames, name=source.name, keep_maps=keep_maps, progress=progress)


def source_background(source: FrameSource, cfg: Config) -> np.ndarray | None:
    """A whole source's background for the still term: the median of up to :data:`BACKGROUND_FRAMES` of
    its frames at model size, spread over it (None for an empty source)."""
    step = max(1, len(source) // BACKGROUND_FRAMES)
    frames = [f for i, f in enumerate(source.frames(cfg.data.size, cfg.data.channels)) if i % step == 0]
    return background(frames) if frames else None


def run_folder(run: str | os.PathLike) -> Path:
    """The run folder of RUN, which may also name one of its checkpoint files."""
    path = Path(run)
    return path.parent.parent if path.suffix == ".ckpt" else path


def score_frames(
    engine: WindowEngine,
    frames: Iterable[np.ndarray],
    keep_maps: bool = False,
    chunk: int = 16,
    name: str = "",
) -> SourceScores:
    """Score a finite stream of model-size frames from a fresh start, ``chunk`` frames a call: every
    variant of ``engine.variants``, the maps (float16) with ``keep_maps`` (full's where the engine computes
    it, and its own score's), and the count of frames read."""
    engine.reset()
    index: list[np.ndarray] = []
    parts: dict[str, list[np.ndarray]] = {v: [] for v in engine.variants}
    maps: dict[str, list[np.ndarray]] = {}
    batch: list[np.ndarray] = []
    seen = 0

    def flush() -> None:
        scores, got = engine.push_maps(np.stack(batch))
        n = len(next(iter(scores.values())))
        index.append(np.arange(seen - n, seen))
        for v, sc in scores.items():
            parts[v].append(sc)
        if keep_maps and n:
            for k, m in got.items():
                maps.setdefault(k, []).append(m.astype(np.float16))
        batch.clear()

    for frame in frames:
        batch.append(frame)
        seen += 1
        if len(batch) == chunk:
            flush()
    if batch:
        flush()
    h, w = engine.cfg.data.size
    kept = {k: np.concatenate(m) for k, m in maps.items()}
    first = next(iter(kept.values()), np.zeros((0, h, w), np.float16))  # full's, or the engine's own
    return SourceScores(
        name=name,
        index=np.concatenate(index) if index else np.zeros(0, np.int64),
        scores={v: np.concatenate(p) if p else np.zeros(0, np.float32) for v, p in parts.items()},
        maps=first if keep_maps else None,
        own_maps=kept.get(engine.variant, first) if keep_maps else None,
        frames_read=seen,
    )
