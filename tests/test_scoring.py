import math
from typing import NamedTuple

import numpy as np
import pytest
import torch

from stvad import StvadError
from stvad.config import ScoreConfig
from stvad.scoring import (
    VARIANTS,
    aggregate,
    discriminator_map,
    feature_map,
    model_variants,
    normalise,
    patch_side,
    postprocess,
    prediction_error,
    psnr,
    score_batch,
    smooth,
)

B, C, H, W = 2, 3, 8, 8


class DOut(NamedTuple):  # the shape of stvad.model's DOutput
    logit: torch.Tensor
    pixel_logits: torch.Tensor
    f2: torch.Tensor


def d_out(pixel_logit: float, f2: torch.Tensor) -> DOut:
    return DOut(torch.zeros(f2.shape[0]), torch.full((f2.shape[0], 1, H, W), pixel_logit), f2)


def constant_case():
    """Error 0.5 everywhere, 1 - sigmoid(0) = 0.5, F2 difference 0.25 in every channel and cell."""
    target, pred = torch.full((B, C, H, W), 0.5), torch.zeros(B, C, H, W)
    f2_real, f2_fake = torch.ones(B, 4, 2, 2), torch.full((B, 4, 2, 2), 0.75)
    return target, pred, d_out(0.0, f2_real), d_out(3.0, f2_fake)


def test_constant_error_and_map_give_known_scores():
    sb = score_batch(*constant_case())
    assert set(sb.scores) == set(model_variants(VARIANTS))  # every score of G and D (not the flow's)
    expected = {
        "full": H * W * 0.5 * 0.5 * 0.25,
        "only-stn": H * W * 0.5,
        "dmap": H * W * 0.5 * 0.5,
        "f2": H * W * 0.5 * 0.25,
        # [-1, 1] -> [0, 1] halves the difference: MSE = 0.25**2, PSNR = 10 log10(16)
        "psnr": -10 * math.log10(16),
    }
    for name, value in expected.items():
        assert sb.scores[name].shape == (B,)
        torch.testing.assert_close(sb.scores[name], torch.full((B,), value), msg=name)
    assert sb.anomaly_map.shape == (B, H, W)


def test_discriminator_sure_the_frame_is_real_zeroes_the_map():
    target, pred, d_real, d_fake = constant_case()
    sb = score_batch(target, pred, d_out(100.0, d_real.f2), d_fake)
    assert torch.all(sb.anomaly_map == 0)
    assert torch.all(sb.scores["full"] == 0) and torch.all(sb.scores["dmap"] == 0)
    assert torch.all(sb.scores["only-stn"] > 0)


def test_identical_f2_zeroes_the_map():
    target, pred, d_real, _ = constant_case()
    sb = score_batch(target, pred, d_real, d_out(0.0, d_real.f2.clone()))
    assert torch.all(sb.scores["full"] == 0) and torch.all(sb.scores["f2"] == 0)
    assert torch.all(sb.scores["dmap"] > 0)


def test_perfect_prediction_scores_zero_and_finite_psnr():
    target = torch.rand(B, C, H, W) * 2 - 1
    f2 = torch.rand(B, 4, 2, 2)
    sb = score_batch(target, target.clone(), d_out(0.0, f2), d_out(0.0, f2 + 1))
    for name in ("full", "only-stn", "dmap", "f2"):
        assert torch.all(sb.scores[name] == 0), name
    assert torch.all(torch.isfinite(sb.scores["psnr"])) and torch.all(sb.scores["psnr"] <= -99)


def test_anomaly_map_is_the_product_of_its_parts_and_sums_to_the_full_score():
    g = torch.Generator().manual_seed(0)
    target, pred = torch.rand(B, C, H, W, generator=g) * 2 - 1, torch.rand(B, C, H, W, generator=g) * 2 - 1
    d_real = DOut(torch.zeros(B), torch.randn(B, 1, H, W, generator=g), torch.randn(B, 6, 4, 4, generator=g))
    d_fake = DOut(torch.zeros(B), torch.randn(B, 1, H, W, generator=g), torch.randn(B, 6, 4, 4, generator=g))
    sb = score_batch(target, pred, d_real, d_fake)
    parts = prediction_error(target, pred) * discriminator_map(d_real) * feature_map(d_real, d_fake, (H, W))
    torch.testing.assert_close(sb.anomaly_map, parts)
    torch.testing.assert_close(sb.anomaly_map.sum(dim=(1, 2)), sb.scores["full"])
    # every sample is scored on its own: the batch gives what one-sample calls give
    one = score_batch(target[1:], pred[1:], DOut(*(t[1:] for t in d_real)), DOut(*(t[1:] for t in d_fake)))
    for name in model_variants(VARIANTS):
        torch.testing.assert_close(one.scores[name], sb.scores[name][1:])


def test_f2_channel_reductions():
    real = torch.zeros(1, 3, 1, 1)
    fake = torch.tensor([1.0, -2.0, 2.0]).view(1, 3, 1, 1)  # |difference| per channel: 1, 2, 2
    d_real, d_fake = d_out(0.0, real), d_out(0.0, fake)
    for reduce, value in (("mean", 5 / 3), ("max", 2.0), ("l2", 3.0)):
        m = feature_map(d_real, d_fake, (2, 2), reduce=reduce)
        torch.testing.assert_close(m, torch.full((1, 2, 2), value), msg=reduce)


def test_upsampling_modes():
    f2 = torch.tensor([[0.0, 1.0], [0.0, 1.0]]).view(1, 1, 2, 2)
    d_real, d_fake = d_out(0.0, torch.zeros_like(f2)), d_out(0.0, f2)
    nearest = feature_map(d_real, d_fake, (4, 4), upsample="nearest")[0]
    torch.testing.assert_close(nearest[0], torch.tensor([0.0, 0.0, 1.0, 1.0]))
    bilinear = feature_map(d_real, d_fake, (4, 4), upsample="bilinear")[0]
    torch.testing.assert_close(bilinear[0], torch.tensor([0.0, 0.25, 0.75, 1.0]))
    torch.testing.assert_close(bilinear[3], bilinear[0])


def test_unknown_choices_raise_stvad_error():
    case = constant_case()
    with pytest.raises(StvadError, match="score.f2_reduce"):
        score_batch(*case, ScoreConfig(f2_reduce="median"))
    with pytest.raises(StvadError, match="score.upsample"):
        score_batch(*case, ScoreConfig(upsample="bicubic"))
    with pytest.raises(StvadError, match="score.normalisation"):
        normalise([np.ones(3)], "z-score")
    with pytest.raises(StvadError, match="smoothing_sigma"):
        smooth([np.ones(3)], -1.0)


def test_psnr_helper():
    a = torch.zeros(1, 1, 4, 4)
    torch.testing.assert_close(psnr(a, a + 0.2), torch.tensor([20.0]))  # [0, 1] difference 0.1 -> 20 dB


def test_normalisations():
    videos = [np.array([2.0, 4.0, 3.0]), np.array([10.0, 6.0]), np.array([5.0, 5.0])]
    g = normalise(videos, "global-max")
    assert max(s.max() for s in g) == pytest.approx(1.0)
    np.testing.assert_allclose(g[0], [0.2, 0.4, 0.3])
    m = normalise(videos, "per-video-minmax")
    np.testing.assert_allclose(m[0], [0.0, 1.0, 0.5])
    np.testing.assert_allclose(m[1], [1.0, 0.0])
    np.testing.assert_allclose(m[2], [0.0, 0.0])  # a constant video has no range to stretch
    n = normalise(videos, "none")
    assert all(np.array_equal(a, b) and a is not b for a, b in zip(n, videos))
    # signed scores (-PSNR): divided by the largest magnitude, order kept
    np.testing.assert_allclose(normalise([np.array([-20.0, -40.0])], "global-max")[0], [-0.5, -1.0])


def test_smoothing_is_per_video_and_off_by_default():
    spike = np.zeros(21)
    spike[10] = 1.0
    flat = np.full(5, 3.0)
    assert np.array_equal(smooth([spike], 0.0)[0], spike)
    out = smooth([spike, flat], 2.0)
    assert out[0].max() < 1.0 and out[0].argmax() == 10 and out[0].sum() == pytest.approx(1.0)
    np.testing.assert_allclose(out[1], flat)  # edges repeated: a constant video stays constant
    # smoothing comes before normalisation, so per-video min-max still spans [0, 1]
    pp = postprocess([spike, np.arange(6.0)], "per-video-minmax", sigma=2.0)
    assert all(p.min() == 0.0 and p.max() == pytest.approx(1.0) for p in pp)
    assert ScoreConfig().smoothing_sigma == 0.0


def _brute_patch_max(terms: torch.Tensor, k: int) -> torch.Tensor:
    s = k // 2
    h, w = terms.shape[1:]
    sums = [
        terms[:, r : r + k, c : c + k].sum(dim=(1, 2))
        for r in range(0, h - k + 1, s)
        for c in range(0, w - k + 1, s)
    ]
    return torch.stack(sums, dim=1).amax(dim=1)


def test_patch_max_is_the_largest_window_sum_and_sum_is_equation_4():
    terms = torch.rand(3, 16, 16)
    torch.testing.assert_close(aggregate(terms, ScoreConfig()), terms.sum(dim=(1, 2)))
    cfg = ScoreConfig(aggregate="patch-max", patch=0.25)  # 4 px windows, stride 2
    assert patch_side(terms.shape, cfg.patch) == 4
    torch.testing.assert_close(aggregate(terms, cfg), _brute_patch_max(terms, 4))


def test_patch_max_ranks_a_concentrated_error_above_the_same_error_spread_thin():
    spread = torch.full((1, 16, 16), 1.0 / 256)
    blob = torch.zeros(1, 16, 16)
    blob[0, 5:9, 9:13] = 1.0 / 16  # the same total error on one small object
    cfg = ScoreConfig(aggregate="patch-max", patch=0.25)
    torch.testing.assert_close(aggregate(spread, ScoreConfig()), aggregate(blob, ScoreConfig()))
    assert aggregate(blob, cfg).item() > 8 * aggregate(spread, cfg).item()  # 9/16 against 1/16


def test_psnr_of_the_worst_window_and_every_variant_aggregated_alike():
    target, pred, d_real, d_fake = constant_case()
    pred = pred.clone()
    pred[:, :, :2, :2] = 0.5  # a perfect corner: the worst window is elsewhere, at the frame's MSE
    cfg = ScoreConfig(aggregate="patch-max", patch=0.25)  # 2 px windows on 8x8
    sb, whole = score_batch(target, pred, d_real, d_fake, cfg), score_batch(target, pred, d_real, d_fake)
    torch.testing.assert_close(sb.scores["psnr"], torch.full((B,), -10 * math.log10(16)))
    assert (whole.scores["psnr"] < sb.scores["psnr"]).all()  # the whole frame includes the perfect corner
    torch.testing.assert_close(sb.scores["only-stn"], torch.full((B,), 4 * 0.5))
    torch.testing.assert_close(sb.scores["full"], torch.full((B,), 4 * 0.5 * 0.5 * 0.25))
    torch.testing.assert_close(sb.anomaly_map, whole.anomaly_map)  # the map does not depend on it
    with pytest.raises(StvadError, match="score.aggregate"):
        score_batch(target, pred, d_real, d_fake, ScoreConfig(aggregate="median"))
    with pytest.raises(StvadError, match="score.patch"):
        score_batch(target, pred, d_real, d_fake, ScoreConfig(aggregate="patch-max", patch=0.0))


def test_causal_mean_sees_no_future_frame_and_streams_alike() -> None:
    from stvad.scoring import CausalMean, causal_mean

    x = np.array([1.0, 5.0, 3.0, 0.0, 8.0])
    np.testing.assert_allclose(causal_mean(x, 3), [1.0, 3.0, 3.0, 8 / 3, 11 / 3])
    np.testing.assert_allclose(causal_mean(x, 1), x)
    stream = CausalMean(3)
    np.testing.assert_allclose([stream(v) for v in x], causal_mean(x, 3))
    y = x.copy()
    y[4] = 100.0  # a change in the last frame changes no earlier smoothed score
    np.testing.assert_allclose(causal_mean(y, 3)[:4], causal_mean(x, 3)[:4])
    with pytest.raises(StvadError, match="causal_window"):
        causal_mean(x, 0)
