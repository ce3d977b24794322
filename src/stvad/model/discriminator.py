"""The U-Net discriminator: Schönfeld, Schiele, Khoreva, "A U-Net Based Discriminator for GANs", CVPR 2020.

    D_enc: stem (conv 1) -> [stride-2 conv (conv 2 = F2 at s=1), conv] x depth -> mean pool -> 1x1 -> logit
    D_dec: [transposed conv x2, concat encoder skip, conv] x depth -> 1x1 -> per-pixel logit at frame size

It judges one frame: the real next frame or the generator's prediction; with ``context`` k > 0 (not in the
paper) it also sees the k most recent past frames, stacked on the channel axis before the stem, and so judges
the frame as the continuation of that sequence. Spectral normalisation is on every
layer except the two final 1x1 convolutions (the logit heads), as in U-Net GAN / BigGAN. One SAGAN
self-attention block sits in D_enc at scale max(depth - 1, 1), the finest scale where its (HW)^2 map is
cheap on a CPU. F2, the output of D_enc's second convolution, is what the anomaly map compares.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from stvad.model.generator import stage_widths
from stvad.model.layers import SelfAttention, act, conv


class DOutput(NamedTuple):
    logit: torch.Tensor  # (B,) D_enc's global real/fake logit
    pixel_logits: torch.Tensor  # (B, 1, H, W) D_dec's per-pixel logits
    f2: torch.Tensor  # (B, C2, h, w) features after D_enc's second convolution


class F2Output(NamedTuple):
    """Only D_enc's F2 features: all the anomaly score needs of D on the predicted frame."""

    f2: torch.Tensor  # (B, C2, h, w)


class UNetDiscriminator(nn.Module):
    def __init__(
        self,
        channels: int = 1,
        width: int = 32,
        depth: int = 3,
        attention: bool = True,
        sn: bool = True,
        context: int = 0,
    ):
        super().__init__()
        w = stage_widths(width, depth, cap=8)
        self.depth = depth
        self.context = context
        self.attn_scale = max(depth - 1, 1)
        self.stem = conv(channels * (1 + context), w[0], 3, sn=sn)
        self.down = nn.ModuleList(
            nn.ModuleList([conv(w[s], w[s + 1], 4, stride=2, sn=sn), conv(w[s + 1], w[s + 1], 3, sn=sn)])
            for s in range(depth)
        )
        self.attn = SelfAttention(w[self.attn_scale], sn=sn) if attention else None
        self.enc_head = conv(w[depth], 1, 1)
        self.up = nn.ModuleList(
            conv(w[s + 1], w[s], 4, stride=2, padding=1, sn=sn, transpose=True) for s in range(depth)
        )
        self.merge = nn.ModuleList(conv(2 * w[s], w[s], 3, sn=sn) for s in range(depth))
        self.dec_head = conv(w[0], 1, 1)

    def _input(self, y: torch.Tensor, past: torch.Tensor | None) -> torch.Tensor:
        """The stem's input: the frame, after the last ``context`` past frames when D is conditioned."""
        H, W = y.shape[-2:]
        if H % 2**self.depth or W % 2**self.depth:
            raise ValueError(f"frame size {H}x{W} is not divisible by 2^d_depth = {2**self.depth}")
        if not self.context:
            return y
        if past is None or past.shape[1] < self.context:
            got = "none" if past is None else past.shape[1]
            raise ValueError(f"this discriminator judges a frame after {self.context} past frames, got {got}")
        return torch.cat([past[:, -self.context :].flatten(1, 2), y], dim=1)

    def features2(self, y: torch.Tensor, past: torch.Tensor | None = None) -> F2Output:
        """F2 alone (stem and the first strided convolution): ``forward(y, past).f2`` at a fraction of the
        cost."""
        return F2Output(act(self.down[0][0](act(self.stem(self._input(y, past))))))

    def forward(self, y: torch.Tensor, past: torch.Tensor | None = None) -> DOutput:
        """(B, C, H, W) frame in [-1, 1] (and, for a conditioned D, its past (B, T, C, H, W)) -> DOutput."""
        e = act(self.stem(self._input(y, past)))
        skips = [e]
        f2 = e
        for s, (strided, refine) in enumerate(self.down, start=1):
            e = act(strided(e))
            if s == 1:
                f2 = e  # (B, c_1, H/2, W/2)
            e = act(refine(e))
            if self.attn is not None and s == self.attn_scale:
                e = self.attn(e)
            skips.append(e)
        logit = self.enc_head(e.mean(dim=(2, 3), keepdim=True)).flatten()  # (B,)
        h = e
        for s in reversed(range(self.depth)):
            h = act(self.up[s](h))
            h = act(self.merge[s](torch.cat([h, skips[s]], dim=1)))
        return DOutput(logit, self.dec_head(h), f2)
