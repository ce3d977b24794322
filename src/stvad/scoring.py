"""Anomaly scores from one generator + discriminator pass (METHOD.md, equations 4-6).

    a(x_t) = || |xi - G(x_t)| * map ||_1                                  (4)
    map    = (1 - sigmoid(D_dec(xi))) * up(reduce_c |F2(xi) - F2(G(x_t))|)  (5)
    S(x_t) = a(x_t) / max_m a(x_m)                                      (6)

xi is the real next frame, G(x_t) its prediction, both (B, C, H, W) in [-1, 1]. The colour channels of
|xi - G| are reduced by their mean, so ``||.||_1`` is the sum over pixels of one HxW error image.

Named variants, all computed by :func:`score_batch` from the same pass:
- ``full``: equations 4-5.
- ``only-stn``: the paper's ablation, the plain L1 prediction error (the map replaced by ones).
- ``psnr``: the FFP score, minus the PSNR of the prediction (images mapped to [0, 1] as FFP does).
- ``dmap``: the error weighted by ``1 - sigmoid(D_dec(xi))`` alone.
- ``f2``: the error weighted by the upsampled F2 difference alone.

Two more need the run's motion model (:mod:`stvad.motion`, not in the paper), beside G's pass:
- ``flow``: how rare the frame's optical flow is where it occurs, under the normal training clips' flow.
- ``f2+flow``: ``f2`` and ``flow``, each standardised on the held-out normal clips, the flow weighted by
  ``score.flow_weight``, added (``score.fusion`` ``sum``) or the larger of the two (``max``: either score
  alone can raise the frame; :func:`combine_flow`).

Defaults for the choices the paper leaves open (``ScoreConfig``): the F2 difference is reduced over
channels by the mean, which keeps its scale independent of the discriminator's width and lets no single
noisy channel dominate (``max``, ``l2`` are the alternatives to measure); it is upsampled bilinearly, so
the weight varies smoothly instead of stepping at the borders of F2's coarse cells (``nearest`` keeps the
blocks).

How the per-pixel terms become one frame score (``score.aggregate``): ``sum`` is equation 4's L1 norm over
the whole frame, the default. ``patch-max`` (not in the paper) takes the largest sum over square windows
of side ``score.patch`` (a fraction of the frame's shorter side, half-overlapping), for anomalies small
against the frame; ``psnr`` and the copy-last floor then use the worst window's MSE. On Ped2 it lowers
every row's AUROC, the more the smaller the window (experiments/pseudo_selection.py), so it stays an option.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter1d
from torch import Tensor

from stvad.config import ScoreConfig
from stvad.errors import StvadError

VARIANTS = ("full", "only-stn", "psnr", "dmap", "f2", "flow", "f2+flow")
FUSIONS = ("sum", "max")  # score.fusion: how f2+flow joins its two standardised scores
NEEDS_FLOW = ("flow", "f2+flow")  # need the run's motion model (stvad.motion)
NEEDS_D = ("full", "dmap", "f2", "f2+flow")  # the others are the generator's alone: scoring them skips D
NEEDS_D_MAP = ("full", "dmap")  # f2 needs only D's first two layers: scoring it alone skips the rest of D
NORMALISATIONS = ("global-max", "per-video-minmax", "none")
F2_REDUCTIONS = ("mean", "max", "l2")
UPSAMPLINGS = ("bilinear", "nearest")
AGGREGATES = ("sum", "patch-max")


class DiscriminatorOutput(Protocol):
    """What scoring needs of ``stvad.model``'s ``DOutput``: the per-pixel logits and the F2 features."""

    pixel_logits: Tensor  # (B, 1, H, W) logits of D_dec at frame size
    f2: Tensor  # (B, C2, h, w) features after D_enc's second convolution


class F2Features(Protocol):
    """What scoring needs of D on the prediction: only the F2 features (``DOutput`` or ``F2Output``)."""

    f2: Tensor  # (B, C2, h, w)


class ScoreBatch(NamedTuple):
    scores: dict[str, Tensor]  # variant -> (B,) raw frame scores, higher = more anomalous
    # variant -> (B, H, W) the per-pixel terms of every score this pass computed ("only-stn" and "psnr" the
    # error), so that one pass gives the map of any of them
    maps: dict[str, Tensor]

    @property
    def anomaly_map(self) -> Tensor:
        """(B, H, W) the per-pixel terms of "full" (error * map), of "f2" when D ran only F2, else error"""
        return next(self.maps[k] for k in ("full", "f2", "only-stn") if k in self.maps)


def _choice(value: str, options: Sequence[str], key: str) -> str:
    if value not in options:
        raise StvadError(f"{key} must be one of {', '.join(options)}, got '{value}'")
    return value


def prediction_error(target: Tensor, pred: Tensor) -> Tensor:
    """|xi - G(x)| averaged over colour channels: (B, C, H, W) x 2 -> (B, H, W)."""
    if target.shape != pred.shape or target.ndim != 4:
        raise ValueError(
            f"target {tuple(target.shape)} and prediction {tuple(pred.shape)} must be equal BCHW"
        )
    return (target - pred).abs().mean(dim=1)


def discriminator_map(d_real: DiscriminatorOutput) -> Tensor:
    """1 - sigmoid(D_dec(xi)): where D finds the real frame unrealistic. (B, 1, H, W) -> (B, H, W).

    A D with a separate map head (``model.d_map_head``) gives that head's logits instead of D_dec's."""
    logits = getattr(d_real, "map_logits", None)
    return 1.0 - torch.sigmoid((d_real.pixel_logits if logits is None else logits)[:, 0])


def feature_map(
    d_real: F2Features,
    d_fake: F2Features,
    size: tuple[int, int],
    reduce: str = "mean",
    upsample: str = "bilinear",
) -> Tensor:
    """|F2(xi) - F2(G(x))| reduced over channels and upsampled to ``size``: (B, C2, h, w) -> (B, H, W)."""
    diff = (d_real.f2 - d_fake.f2).abs()
    reduce = _choice(reduce, F2_REDUCTIONS, "score.f2_reduce")
    if reduce == "mean":
        r = diff.mean(dim=1, keepdim=True)
    elif reduce == "max":
        r = diff.amax(dim=1, keepdim=True)
    else:
        r = torch.linalg.vector_norm(diff, dim=1, keepdim=True)
    mode = _choice(upsample, UPSAMPLINGS, "score.upsample")
    align = False if mode == "bilinear" else None
    return F.interpolate(r, size=size, mode=mode, align_corners=align)[:, 0]


def patch_side(size: Sequence[int], patch: float) -> int:
    """The window side in pixels for ``score.patch`` (a fraction of the shorter side), at least 1."""
    if not 0.0 < patch <= 1.0:
        raise StvadError(f"score.patch must be in (0, 1], got {patch}")
    return max(1, round(patch * min(int(n) for n in size[-2:])))  # int(): shapes are tensors when traced


def aggregate(terms: Tensor, cfg: ScoreConfig) -> Tensor:
    """Per-pixel terms (B, H, W) -> frame scores (B,): their sum over the frame (``sum``, equation 4) or
    over the worst half-overlapping window of side ``patch_side`` (``patch-max``)."""
    if _choice(cfg.aggregate, AGGREGATES, "score.aggregate") == "sum":
        return terms.sum(dim=(1, 2))
    k = patch_side(terms.shape, cfg.patch)
    sums = F.avg_pool2d(terms[:, None], k, stride=max(1, k // 2)) * (k * k)  # (B, 1, h', w')
    return sums.flatten(1).amax(dim=1)


def psnr_score(target: Tensor, pred: Tensor, cfg: ScoreConfig) -> Tensor:
    """Minus the PSNR of ``pred`` (FFP's score), of the frame's MSE or the worst window's (patch-max)."""
    if cfg.aggregate == "sum":
        return -psnr(target, pred)
    sq = (((target - pred) / 2) ** 2).mean(dim=1)  # on [0, 1] as psnr() does: (B, H, W)
    k = patch_side(sq.shape, cfg.patch)
    return -_psnr_of_mse(aggregate(sq, cfg) / (k * k))


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """PSNR in dB per sample of images in [-1, 1], computed on [0, 1] like FFP: (B, ...) x 2 -> (B,).

    The MSE is floored at 1e-10 (100 dB) so identical images give a finite value.
    """
    return _psnr_of_mse((((a + 1) / 2 - (b + 1) / 2) ** 2).flatten(1).mean(dim=1))


def _psnr_of_mse(mse: Tensor) -> Tensor:
    """dB of a peak-1 signal over ``mse``, floored at 1e-10 (100 dB)."""
    return 10.0 * torch.log10(1.0 / mse.clamp_min(1e-10))


@torch.no_grad()
def score_batch(
    target: Tensor,
    pred: Tensor,
    d_real: DiscriminatorOutput,
    d_fake: F2Features,
    cfg: ScoreConfig | None = None,
) -> ScoreBatch:
    """Every variant's frame score and the full method's pixel map, from one G + D pass.

    ``target`` is xi (B, C, H, W), ``pred`` is G(x) (B, C, H, W); ``d_real = D(target)``,
    ``d_fake`` = ``D(pred)`` or just its F2 features (``D.features2(pred)``).
    ``cfg`` supplies ``f2_reduce``, ``upsample``, ``aggregate`` (:class:`ScoreConfig`'s defaults if None).
    The map is the per-pixel terms whatever the aggregation; with ``sum`` it sums to ``scores["full"]``.
    """
    cfg = cfg or ScoreConfig()
    plain, err, fmap = _f2_terms(target, pred, d_real, d_fake, cfg)
    dmap = err * discriminator_map(d_real)
    anomaly_map = dmap * fmap
    scores = {"full": aggregate(anomaly_map, cfg), **plain, "dmap": aggregate(dmap, cfg)}
    maps = {"full": anomaly_map, "dmap": dmap, "f2": err * fmap, "only-stn": err, "psnr": err}
    return ScoreBatch(scores, maps)


def _f2_terms(
    target: Tensor, pred: Tensor, d_real: F2Features, d_fake: F2Features, cfg: ScoreConfig
) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """The scores that need D's F2 at most (only-stn, psnr, f2), the error (B, H, W) and the F2 map."""
    err = prediction_error(target, pred)  # (B, H, W)
    fmap = feature_map(d_real, d_fake, tuple(err.shape[-2:]), cfg.f2_reduce, cfg.upsample)
    scores = {
        "only-stn": aggregate(err, cfg),
        "psnr": psnr_score(target, pred, cfg),
        "f2": aggregate(err * fmap, cfg),
    }
    return scores, err, fmap


@torch.no_grad()
def score_features(
    target: Tensor, pred: Tensor, f_real: F2Features, f_fake: F2Features, cfg: ScoreConfig | None = None
) -> ScoreBatch:
    """The variants that need only F2 (``f2``, ``only-stn``, ``psnr``), from D's first two layers on xi and
    on G(x) (``D.features2``): D's deeper layers and its map are not run. The map is f2's per-pixel terms."""
    cfg = cfg or ScoreConfig()
    scores, err, fmap = _f2_terms(target, pred, f_real, f_fake, cfg)
    return ScoreBatch(scores, {"f2": err * fmap, "only-stn": err, "psnr": err})


@torch.no_grad()
def score_prediction(target: Tensor, pred: Tensor, cfg: ScoreConfig | None = None) -> ScoreBatch:
    """The variants that need no discriminator (``only-stn``, ``psnr``); the map is the plain L1 error."""
    cfg = cfg or ScoreConfig()
    err = prediction_error(target, pred)
    scores = {"only-stn": aggregate(err, cfg), "psnr": psnr_score(target, pred, cfg)}
    return ScoreBatch(scores, {"only-stn": err, "psnr": err})


def model_variants(variants: Sequence[str]) -> tuple[str, ...]:
    """The scores of G and D that ``variants`` are made of: ``f2+flow`` needs ``f2``, ``flow`` none."""
    need = [("f2" if v == "f2+flow" else v) for v in variants if v != "flow"]
    return tuple(dict.fromkeys(need))


def combine_flow(
    f2: np.ndarray, flow: np.ndarray, f2_scale, flow_scale, weight: float, fusion: str = "sum"
) -> np.ndarray:
    """``f2+flow``: (f2 - mean) / deviation and weight x (flow - mean) / deviation, each score's (mean,
    deviation) on the run's held-out normal clips, added (``fusion`` "sum") or the larger one ("max").
    Takes numpy arrays or torch tensors. The maps are combined by it too, with means of 0."""
    (mb, sb), (mf, sf) = f2_scale, flow_scale
    a, b = (f2 - mb) / sb, weight * (flow - mf) / sf
    if _choice(fusion, FUSIONS, "score.fusion") == "sum":
        return a + b
    return np.maximum(a, b) if isinstance(a, np.ndarray) else a.maximum(b)


def normalise(scores: Sequence[np.ndarray], method: str) -> list[np.ndarray]:
    """Rescale per-video score arrays; returns new float64 arrays.

    - ``global-max`` (equation 6): divide by the largest magnitude over all test frames. A single positive
      factor for everything, so it cannot change a pooled (micro) AUROC; using the magnitude keeps the
      order of signed scores such as -PSNR.
    - ``per-video-minmax`` (FFP, MNAD): map each video to [0, 1] on its own (a constant video maps to 0).
      This changes the pooled AUROC, usually upwards, because it uses each test video's range.
    - ``none``: unchanged.
    """
    method = _choice(method, NORMALISATIONS, "score.normalisation")
    out = [np.asarray(s, dtype=np.float64).copy() for s in scores]
    if method == "global-max":
        top = max((float(np.abs(s).max()) for s in out if s.size), default=0.0)
        if top > 0:
            out = [s / top for s in out]
    elif method == "per-video-minmax":
        for i, s in enumerate(out):
            if s.size:
                span = s.max() - s.min()
                out[i] = (s - s.min()) / span if span > 0 else np.zeros_like(s)
    return out


def smooth(scores: Sequence[np.ndarray], sigma: float) -> list[np.ndarray]:
    """Gaussian smoothing over time within each video (sigma in frames, edges repeated); 0 = off."""
    if sigma < 0:
        raise StvadError(f"score.smoothing_sigma must be >= 0, got {sigma}")
    out = [np.asarray(s, dtype=np.float64) for s in scores]
    if sigma == 0:
        return [s.copy() for s in out]
    return [gaussian_filter1d(s, sigma, mode="nearest") if s.size else s.copy() for s in out]


def postprocess(scores: Sequence[np.ndarray], normalisation: str, sigma: float = 0.0) -> list[np.ndarray]:
    """Smooth, then normalise, so the normalised range holds whether or not smoothing is on."""
    return normalise(smooth(scores, sigma), normalisation)


def causal_mean(scores: np.ndarray, window: int) -> np.ndarray:
    """The mean of each frame's score and the ``window - 1`` before it (fewer at the start): a smoothing
    that sees no future frame, so a live alarm can use it. ``window`` = 1 returns a copy."""
    if window < 1:
        raise StvadError(f"score.causal_window must be >= 1, got {window}")
    s = np.asarray(scores, dtype=np.float64)
    c = np.cumsum(np.r_[0.0, s])
    hi = np.arange(1, len(s) + 1)
    lo = np.maximum(hi - window, 0)
    return (c[hi] - c[lo]) / (hi - lo)


class CausalMean:
    """:func:`causal_mean` one score at a time, for a stream; ``reset`` after a break in it."""

    def __init__(self, window: int):
        if window < 1:
            raise StvadError(f"score.causal_window must be >= 1, got {window}")
        self.window, self.recent = window, []

    def reset(self) -> None:
        self.recent = []

    def __call__(self, score: float) -> float:
        self.recent = (
            [*self.recent[-(self.window - 1) :], float(score)] if self.window > 1 else [float(score)]
        )
        return sum(self.recent) / len(self.recent)
