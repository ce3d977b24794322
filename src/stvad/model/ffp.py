"""The FFP-style baseline: Liu, Luo, Lian, Gao, "Future Frame Prediction for Anomaly Detection", CVPR 2018.

The generator is FFP's U-Net with the T past frames stacked on the channel axis (no recurrence); the
discriminator is a patch discriminator (pix2pix-style stride-2 convolutions, one logit per patch). FFP's
optical-flow loss is left out, as in the method under test. It exposes the same interface as the
spatio-temporal model so the same training loop and scorer run it:

- ``encode_frames`` is the identity: a stacked-channel U-Net has no per-frame features to reuse.
- ``DOutput.pixel_logits`` is the patch map upsampled (nearest) to frame size, ``logit`` its mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stvad.model.discriminator import DOutput, F2Output
from stvad.model.generator import Features, stage_widths
from stvad.model.layers import act, conv


def _double_conv(cin: int, cout: int, sn: bool) -> nn.Sequential:
    return nn.Sequential(conv(cin, cout, 3, sn=sn), nn.ReLU(), conv(cout, cout, 3, sn=sn), nn.ReLU())


class FFPGenerator(nn.Module):
    def __init__(self, channels: int = 1, T: int = 4, width: int = 32, depth: int = 3, sn: bool = False):
        super().__init__()
        w = stage_widths(width, depth, cap=8)
        self.T, self.depth = T, depth
        self.inc = _double_conv(T * channels, w[0], sn)
        self.down = nn.ModuleList(_double_conv(w[s], w[s + 1], sn) for s in range(depth))
        self.up = nn.ModuleList(
            conv(w[s + 1], w[s], 2, stride=2, padding=0, sn=sn, transpose=True) for s in range(depth)
        )
        self.merge = nn.ModuleList(_double_conv(2 * w[s], w[s], sn) for s in range(depth))
        self.out = conv(w[0], channels, 3, sn=sn)

    def encode_frames(self, frames: torch.Tensor) -> Features:
        """(N, C, H, W) -> (frames,): the baseline works on raw stacked frames."""
        return (frames,)

    def predict_from_features(self, feats: Features) -> torch.Tensor:
        return self(feats[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) past frames -> (B, C, H, W) predicted next frame."""
        H, W = x.shape[-2:]
        if x.shape[1] != self.T:
            raise ValueError(f"the FFP generator was built for T={self.T} frames, got {x.shape[1]}")
        if H % 2**self.depth or W % 2**self.depth:
            raise ValueError(f"frame size {H}x{W} is not divisible by 2^g_depth = {2**self.depth}")
        e = self.inc(x.flatten(1, 2))  # (B, c_0, H, W)
        skips = [e]
        for down in self.down:
            e = down(F.max_pool2d(e, 2))
            skips.append(e)
        h = e
        for s in reversed(range(self.depth)):
            h = self.merge[s](torch.cat([self.up[s](h), skips[s]], dim=1))
        return torch.tanh(self.out(h))


class PatchDiscriminator(nn.Module):
    """``depth`` stride-2 4x4 convolutions then a 1x1 head: one logit per (2^depth)-pixel patch."""

    def __init__(self, channels: int = 1, width: int = 32, depth: int = 3, sn: bool = True):
        super().__init__()
        if depth < 2:
            raise ValueError(f"the patch discriminator needs d_depth >= 2 for its F2 features, got {depth}")
        w = stage_widths(width, depth - 1, cap=8)
        self.depth = depth
        self.convs = nn.ModuleList(
            conv(channels if s == 0 else w[s - 1], w[s], 4, stride=2, sn=sn) for s in range(depth)
        )
        self.head = conv(w[-1], 1, 1)

    def _check(self, y: torch.Tensor) -> None:
        H, W = y.shape[-2:]
        if H % 2**self.depth or W % 2**self.depth:
            raise ValueError(f"frame size {H}x{W} is not divisible by 2^d_depth = {2**self.depth}")

    def features2(self, y: torch.Tensor, past: torch.Tensor | None = None) -> F2Output:
        """F2 alone (the first two convolutions): ``forward(y).f2`` at a fraction of the cost.

        ``past`` is accepted for the common interface and not used: this D judges one frame."""
        self._check(y)
        return F2Output(act(self.convs[1](act(self.convs[0](y)))))

    def forward(self, y: torch.Tensor, past: torch.Tensor | None = None) -> DOutput:
        H, W = y.shape[-2:]
        self._check(y)
        e = y
        f2 = y
        for s, layer in enumerate(self.convs):
            e = act(layer(e))
            if s == 1:
                f2 = e  # (B, 2w, H/4, W/4)
        patches = self.head(e)  # (B, 1, H/2^depth, W/2^depth)
        pixel_logits = F.interpolate(patches, size=(H, W), mode="nearest")
        return DOutput(patches.mean(dim=(1, 2, 3)), pixel_logits, f2)
