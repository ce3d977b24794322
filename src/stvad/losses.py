"""The training objective (METHOD.md, "Training objective"), one function per term.

    L_D = BCE(D_enc(xi), 1) + BCE(D_enc(G(x)), 0) + BCE(D_dec(xi), 1) + BCE(D_dec(G(x)), 0)
          [+ CutMix augmentation: BCE(D_dec(mix), M) + BCE(D_enc(mix), 0)]  [+ w_cons * L_cons]
          [+ w_pseudo * (BCE(D_dec(z), P) + BCE(D_enc(z), 0))]   (z: skip-frame fake, P: 0 where it moved)
          (with model.d_map_head: [+ w_pseudo * (BCE(D_map(z), P) + BCE(D_map(xi), 1))] instead)
    L_G = L_recon(xi, G(x)) + w_adv * (BCE(D_enc(G(x)), 1) + BCE(D_dec(G(x)), 1))     (non-saturating)
    L_recon = w_intensity * ||xi - G(x)||^2 + w_gradient * image-gradient loss         (FFP, Liu et al. 2018)
    L_cons = ||D_dec(mix) - (M o D_dec(xi) + (1 - M) o D_dec(G(x)))||^2                (U-Net GAN)

with mix = M o xi + (1 - M) o G(x), M a random box mask (1 = real). Logits throughout, means over batch
and pixels. ``w_adv`` = 1 / lambda of METHOD.md, i.e. L_G here is METHOD.md's L_G divided by lambda.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stvad.model import DOutput


def bce(logits: torch.Tensor, target: float | torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of logits against a constant label or a per-element target."""
    if not torch.is_tensor(target):
        target = torch.full_like(logits, float(target))
    return F.binary_cross_entropy_with_logits(logits, target.expand_as(logits))


def d_adversarial_loss(real: DOutput, fake: DOutput) -> torch.Tensor:
    """D's loss on both heads: real frames -> 1, predictions -> 0."""
    return (
        bce(real.logit, 1.0)
        + bce(fake.logit, 0.0)
        + bce(real.pixel_logits, 1.0)
        + bce(fake.pixel_logits, 0.0)
    )


def g_adversarial_loss(fake: DOutput) -> torch.Tensor:
    """G's non-saturating loss on both heads: predictions -> 1."""
    return bce(fake.logit, 1.0) + bce(fake.pixel_logits, 1.0)


def intensity_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all pixels and channels (FFP's intensity loss)."""
    return F.mse_loss(pred, target)


def _grads(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return (img[..., :, 1:] - img[..., :, :-1]).abs(), (img[..., 1:, :] - img[..., :-1, :]).abs()


def gradient_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """FFP's gradient loss (alpha = 1): mean | |d pred| - |d target| | over horizontal plus vertical steps."""
    px, py = _grads(pred)
    tx, ty = _grads(target)
    return (px - tx).abs().mean() + (py - ty).abs().mean()


def recon_loss(
    pred: torch.Tensor, target: torch.Tensor, w_intensity: float, w_gradient: float
) -> torch.Tensor:
    """The paper's prediction loss: intensity plus image-gradient terms."""
    loss = pred.new_zeros(())
    if w_intensity:
        loss = loss + w_intensity * intensity_loss(pred, target)
    if w_gradient:
        loss = loss + w_gradient * gradient_loss(pred, target)
    return loss


def cutmix_mask(
    n: int,
    height: int,
    width: int,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
) -> torch.Tensor:
    """(n, 1, H, W) binary masks, 1 = take the real frame: a box of the other kind inside each.

    As U-Net GAN's CutMix: the box covers a uniform random fraction of the frame (side ratio
    sqrt(fraction)), at a uniform position where it fits, and the mask is inverted with probability 1/2.
    """
    frac = torch.rand(n, generator=generator)
    bh = (frac.sqrt() * height).round().long()
    bw = (frac.sqrt() * width).round().long()
    top = (torch.rand(n, generator=generator) * (height - bh + 1)).floor().long()
    left = (torch.rand(n, generator=generator) * (width - bw + 1)).floor().long()
    invert = torch.rand(n, generator=generator) < 0.5
    rows = torch.arange(height).view(1, height, 1)
    cols = torch.arange(width).view(1, 1, width)
    inside = (
        (rows >= top.view(n, 1, 1))
        & (rows < (top + bh).view(n, 1, 1))
        & (cols >= left.view(n, 1, 1))
        & (cols < (left + bw).view(n, 1, 1))
    )
    mask = inside == invert.view(n, 1, 1)  # box = fake unless inverted
    return mask.unsqueeze(1).float().to(device)


def mix(real: torch.Tensor, fake: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """M o real + (1 - M) o fake; also the consistency target when applied to D_dec outputs."""
    return mask * real + (1.0 - mask) * fake


def consistency_loss(
    mixed_logits: torch.Tensor, real_logits: torch.Tensor, fake_logits: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """U-Net GAN's CutMix consistency: D_dec of the mix should be the mix of D_dec's outputs.

    The target is not detached, as in the reference implementation: both sides are trained to agree.
    """
    return F.mse_loss(mixed_logits, mix(real_logits, fake_logits, mask))


def cutmix_augmentation_loss(mixed: DOutput, mask: torch.Tensor) -> torch.Tensor:
    """U-Net GAN's CutMix augmentation: D_dec(mix) should output M, D_enc(mix) should say fake."""
    return bce(mixed.pixel_logits, mask) + bce(mixed.logit, 0.0)


def cutmix_probability(step: int, warmup: int, prob: float) -> float:
    """Chance of a CutMix step, ramped linearly from 0 to ``prob`` over the first ``warmup`` steps."""
    if warmup <= 0:
        return prob
    return prob * min(1.0, step / warmup)


def pseudo_anomaly_targets(skipped: torch.Tensor, nxt: torch.Tensor, threshold: float) -> torch.Tensor:
    """Per-pixel targets (B, 1, H, W) for a skip-frame pseudo-anomaly: 0 (fake) where the skipped-to frame
    differs from the true next frame by more than ``threshold`` in any channel, grown by 2 pixels so that the
    edges of a moved object count too, 1 (real) elsewhere."""
    moved = ((skipped - nxt).abs().amax(1, keepdim=True) > threshold).float()
    return 1.0 - F.max_pool2d(moved, 5, stride=1, padding=2)


def pseudo_anomaly_loss(out: DOutput, targets: torch.Tensor, real: DOutput | None = None) -> torch.Tensor:
    """D on a pseudo-anomalous frame: D_dec -> the per-pixel targets, D_enc -> fake where anything moved.

    A D with a separate map head (``model.d_map_head``) learns them there instead: the map head -> the
    targets on the pseudo-anomalous frame and -> real on the real next frame ``real`` (D's output on it),
    and the real/fake heads see no pseudo-anomaly."""
    if out.map_logits is not None:
        if real is None or real.map_logits is None:
            raise ValueError("a D with a map head needs its output on the real next frame too")
        return bce(out.map_logits, targets) + bce(real.map_logits, 1.0)
    fake_somewhere = (targets.flatten(1).amin(1) < 1).float()
    return bce(out.pixel_logits, targets) + bce(out.logit, 1.0 - fake_somewhere)
