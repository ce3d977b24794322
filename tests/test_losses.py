"""Each loss term on tiny hand-checkable inputs; the CutMix mask and the consistency target."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from stvad.losses import (
    bce,
    consistency_loss,
    cutmix_augmentation_loss,
    cutmix_mask,
    cutmix_probability,
    d_adversarial_loss,
    g_adversarial_loss,
    gradient_loss,
    intensity_loss,
    mix,
    recon_loss,
)
from stvad.model import DOutput

LN2 = math.log(2.0)


def out(logit: float, pixel: float, b: int = 2, size: int = 4) -> DOutput:
    return DOutput(
        torch.full((b,), float(logit)), torch.full((b, 1, size, size), float(pixel)), torch.zeros(b, 3, 2, 2)
    )


def test_bce_of_known_logits() -> None:
    assert bce(torch.zeros(3), 1.0).item() == pytest.approx(LN2)
    assert bce(torch.zeros(3), 0.0).item() == pytest.approx(LN2)
    # log(1 + e^-2) for a confident right answer, log(1 + e^2) for a confident wrong one
    assert bce(torch.tensor([2.0]), 1.0).item() == pytest.approx(math.log1p(math.exp(-2)))
    assert bce(torch.tensor([2.0]), 0.0).item() == pytest.approx(math.log1p(math.exp(2)))
    target = torch.tensor([1.0, 0.0])
    assert bce(torch.tensor([2.0, 2.0]), target).item() == pytest.approx(
        (math.log1p(math.exp(-2)) + math.log1p(math.exp(2))) / 2
    )


def test_d_loss_sums_both_heads_on_real_and_fake() -> None:
    assert d_adversarial_loss(out(0, 0), out(0, 0)).item() == pytest.approx(4 * LN2)
    # real judged real by both heads with logit 3, fake judged fake with logit -3: four small terms
    small = math.log1p(math.exp(-3))
    assert d_adversarial_loss(out(3, 3), out(-3, -3)).item() == pytest.approx(4 * small)
    # swapping the roles makes all four terms large
    assert d_adversarial_loss(out(-3, -3), out(3, 3)).item() == pytest.approx(4 * math.log1p(math.exp(3)))


def test_g_loss_is_non_saturating_on_both_heads() -> None:
    assert g_adversarial_loss(out(0, 0)).item() == pytest.approx(2 * LN2)
    # D sure the prediction is fake (logit -5): -log(sigmoid(-5)) per head, large, not saturating to 0
    assert g_adversarial_loss(out(-5, -5)).item() == pytest.approx(2 * math.log1p(math.exp(5)))
    assert g_adversarial_loss(out(-5, 5)).item() == pytest.approx(
        math.log1p(math.exp(5)) + math.log1p(math.exp(-5))
    )


def test_intensity_loss_is_mean_squared_error() -> None:
    pred = torch.zeros(1, 1, 2, 2)
    target = torch.tensor([[[[1.0, -1.0], [0.5, 0.0]]]])
    assert intensity_loss(pred, target).item() == pytest.approx((1 + 1 + 0.25 + 0) / 4)


def test_gradient_loss_of_known_images() -> None:
    ramp = torch.arange(5.0).mul(0.1).expand(1, 1, 4, 5)  # horizontal steps of 0.1, no vertical change
    flat = torch.zeros(1, 1, 4, 5)
    assert gradient_loss(flat, ramp).item() == pytest.approx(0.1)
    assert gradient_loss(ramp, ramp).item() == 0.0
    # the loss compares gradient magnitudes: a ramp and its mirror image (same |gradient|) cost nothing
    assert gradient_loss(ramp.flip(-1), ramp).item() == pytest.approx(0.0, abs=1e-7)
    # a constant offset changes intensity but not gradients
    assert gradient_loss(ramp + 0.3, ramp).item() == pytest.approx(0.0, abs=1e-7)
    vertical = ramp.transpose(-1, -2)  # (1, 1, 5, 4): vertical steps of 0.1
    assert gradient_loss(torch.zeros_like(vertical), vertical).item() == pytest.approx(0.1)


def test_recon_loss_weights_its_terms() -> None:
    ramp = torch.arange(5.0).mul(0.1).expand(1, 1, 4, 5)
    flat = torch.zeros(1, 1, 4, 5)
    l2 = intensity_loss(flat, ramp).item()
    assert recon_loss(flat, ramp, 1.0, 0.0).item() == pytest.approx(l2)
    assert recon_loss(flat, ramp, 0.0, 1.0).item() == pytest.approx(0.1)
    assert recon_loss(flat, ramp, 2.0, 3.0).item() == pytest.approx(2 * l2 + 0.3)


def test_cutmix_mask_is_binary_and_one_box() -> None:
    g = torch.Generator().manual_seed(0)
    masks = cutmix_mask(200, 12, 16, generator=g)
    assert masks.shape == (200, 1, 12, 16)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    fracs = []
    for m in masks[:, 0]:
        # the box is the minority-or-inverted region: whichever value is inside a rectangle
        for value in (0.0, 1.0):
            box = m == value
            if not box.any():
                continue
            rows = box.any(1).nonzero().flatten()
            cols = box.any(0).nonzero().flatten()
            r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
            if box[r0:r1, c0:c1].all() and box.sum() == (r1 - r0) * (c1 - c0):
                break
        else:
            pytest.fail("neither value of the mask forms one axis-aligned rectangle")
        fracs.append(m.mean().item())
    fracs = torch.tensor(fracs)
    assert fracs.min() >= 0.0 and fracs.max() <= 1.0
    # box area ~ U(0, 1) and inverted half the time: the real fraction is uniform on [0, 1], mean 1/2
    assert 0.4 < fracs.mean().item() < 0.6
    assert (fracs < 0.25).any() and (fracs > 0.75).any()


def test_cutmix_mask_is_reproducible_from_its_generator() -> None:
    a = cutmix_mask(4, 8, 8, generator=torch.Generator().manual_seed(5))
    b = cutmix_mask(4, 8, 8, generator=torch.Generator().manual_seed(5))
    c = cutmix_mask(4, 8, 8, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_mix_takes_real_where_mask_is_one() -> None:
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    real, fake = torch.full((1, 1, 2, 2), 5.0), torch.full((1, 1, 2, 2), -7.0)
    assert torch.equal(mix(real, fake, mask), torch.tensor([[[[5.0, -7.0], [-7.0, 5.0]]]]))


def test_consistency_loss_is_zero_for_a_pixelwise_linear_decoder() -> None:
    torch.manual_seed(0)
    real, fake = torch.randn(3, 2, 8, 8), torch.randn(3, 2, 8, 8)
    mask = cutmix_mask(3, 8, 8, generator=torch.Generator().manual_seed(1))
    pointwise = nn.Conv2d(2, 1, 1)  # D_dec(mix) = mix of D_dec outputs exactly
    loss = consistency_loss(pointwise(mix(real, fake, mask)), pointwise(real), pointwise(fake), mask)
    assert loss.item() == pytest.approx(0.0, abs=1e-10)
    # a 3x3 decoder sees across the box edge, so it is not consistent by construction
    spatial = nn.Conv2d(2, 1, 3, padding=1)
    loss = consistency_loss(spatial(mix(real, fake, mask)), spatial(real), spatial(fake), mask)
    assert loss.item() > 1e-4


def test_consistency_loss_value_and_target() -> None:
    mask = torch.tensor([[[[1.0, 0.0]]]])
    real_logits, fake_logits = torch.tensor([[[[2.0, 2.0]]]]), torch.tensor([[[[-1.0, -1.0]]]])
    mixed_logits = torch.tensor([[[[0.0, 0.0]]]])
    # target = (2, -1); squared errors 4 and 1, mean 2.5
    assert consistency_loss(mixed_logits, real_logits, fake_logits, mask).item() == pytest.approx(2.5)


def test_cutmix_augmentation_loss_targets_the_mask_and_fake() -> None:
    mask = torch.tensor([[[[1.0, 0.0]]]])
    perfect = DOutput(torch.tensor([-20.0]), torch.tensor([[[[20.0, -20.0]]]]), torch.zeros(1, 1, 1, 1))
    assert cutmix_augmentation_loss(perfect, mask).item() == pytest.approx(0.0, abs=1e-6)
    unsure = DOutput(torch.tensor([0.0]), torch.zeros(1, 1, 1, 2), torch.zeros(1, 1, 1, 1))
    assert cutmix_augmentation_loss(unsure, mask).item() == pytest.approx(2 * LN2)


def test_cutmix_probability_warms_up_linearly() -> None:
    assert cutmix_probability(0, 100, 0.5) == 0.0
    assert cutmix_probability(50, 100, 0.5) == pytest.approx(0.25)
    assert cutmix_probability(100, 100, 0.5) == 0.5
    assert cutmix_probability(10_000, 100, 0.5) == 0.5
    assert cutmix_probability(0, 0, 0.3) == 0.3
