"""The U-Net discriminator: Schönfeld, Schiele, Khoreva, "A U-Net Based Discriminator for GANs", CVPR 2020.

    D_enc: stem (conv 1) -> [stride-2 conv (conv 2 = F2 at s=1), conv; + shortcut] x depth -> sum pool -> 1x1
           -> logit
    D_dec: [transposed conv x2, concat encoder skip, conv; + shortcut] x depth -> 1x1 -> per-pixel logit

Every stage is a residual block, as BigGAN's and U-Net GAN's discriminator blocks are: the two convolutions
plus a shortcut (average pool or nearest upsample, then a 1x1 convolution). A plain stack of spectrally
normalised convolutions halves the part of the signal that differs between two frames at every layer, so at
initialisation the global logit of two frames that differ by 0.1 (rms) differed by 3e-5 and D's first
updates had nothing to follow (docs/discriminator.md); the shortcuts carry that difference to the heads.
The global head sums over positions (BigGAN) instead of averaging, for the same reason.

It judges one frame: the real next frame or the generator's prediction; with ``context`` k > 0 (not in the
paper) it also sees the k most recent past frames, stacked on the channel axis before the stem, and so judges
the frame as the continuation of that sequence; with ``diff`` it sees them as the k successive differences
that end at the judged frame, so that motion enters the first convolution directly rather than as the small
difference of two large inputs. ``input_gain`` multiplies the stem's whole input: spectral normalisation
bounds every layer's gain at 1, so without it D's outputs could barely differ between a real frame and a
prediction a few hundredths away (docs/discriminator.md, section 5). Spectral normalisation is on every
layer except the two final 1x1 convolutions (the logit heads), as in U-Net GAN / BigGAN. One SAGAN
self-attention block sits in D_enc at scale max(depth - 1, 1), the finest scale where its (HW)^2 map is
cheap on a CPU. F2, the output of D_enc's second convolution, is what the anomaly map compares.

With ``map_head`` (not in the paper) D_dec has a second per-pixel head beside the real/fake one, trained
only to mark pseudo-anomalous pixels (``train.pseudo_skip``): the anomaly score's D map reads it, while the
real/fake heads that G's adversarial loss reads stay trained on real frames against predictions alone.
"shared" is a 1x1 head whose loss also trains D's layers; "probe" reads D_dec's last features detached
(a 3x3 and a 1x1 convolution), so D's layers, and through them G, train exactly as without it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from stvad.model.generator import stage_widths
from stvad.model.layers import SelfAttention, act, conv


class DOutput(NamedTuple):
    logit: torch.Tensor  # (B,) D_enc's global real/fake logit
    pixel_logits: torch.Tensor  # (B, 1, H, W) D_dec's per-pixel logits
    f2: torch.Tensor  # (B, C2, h, w) features after D_enc's second convolution
    # (B, 1, H, W) the separate map head's per-pixel logits (``map_head``), None without one
    map_logits: torch.Tensor | None = None


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
        diff: bool = False,
        residual: bool = True,
        input_gain: float = 1.0,
        map_head: str = "none",
    ):
        super().__init__()
        w = stage_widths(width, depth, cap=8)
        self.depth = depth
        self.context = context
        self.diff = diff
        self.residual = residual
        self.input_gain = input_gain
        self.attn_scale = max(depth - 1, 1)
        self.stem = conv(channels * (1 + context), w[0], 3, sn=sn)
        self.down = nn.ModuleList(
            nn.ModuleList(
                [
                    conv(w[s], w[s + 1], 4, stride=2, sn=sn),
                    conv(w[s + 1], w[s + 1], 3, sn=sn),
                    *([conv(w[s], w[s + 1], 1, sn=sn)] if residual else []),  # shortcut, after avg pool
                ]
            )
            for s in range(depth)
        )
        self.attn = SelfAttention(w[self.attn_scale], sn=sn) if attention else None
        self.enc_head = conv(w[depth], 1, 1)
        self.up = nn.ModuleList(
            conv(w[s + 1], w[s], 4, stride=2, padding=1, sn=sn, transpose=True) for s in range(depth)
        )
        self.merge = nn.ModuleList(conv(2 * w[s], w[s], 3, sn=sn) for s in range(depth))
        # shortcuts of the decoder stages, after a nearest-neighbour upsampling
        self.up_short = (
            nn.ModuleList(conv(w[s + 1], w[s], 1, sn=sn) for s in range(depth)) if residual else None
        )
        self.dec_head = conv(w[0], 1, 1)
        # a second per-pixel head on the same decoder features, trained only on pseudo-anomalies; G's
        # adversarial loss does not read it, and the anomaly map does (instead of dec_head's). A "probe"
        # reads the features detached (D's layers do not learn from it) through one more 3x3 convolution
        self.map_detached = map_head == "probe"
        if map_head == "shared":
            self.map_head = conv(w[0], 1, 1)
        elif map_head == "probe":
            self.map_head = nn.Sequential(conv(w[0], w[0], 3), nn.LeakyReLU(0.2), conv(w[0], 1, 1))
        else:
            self.map_head = None

    def _input(self, y: torch.Tensor, past: torch.Tensor | None) -> torch.Tensor:
        """The stem's input: the frame, after the last ``context`` past frames when D is conditioned."""
        H, W = y.shape[-2:]
        if H % 2**self.depth or W % 2**self.depth:
            raise ValueError(f"frame size {H}x{W} is not divisible by 2^d_depth = {2**self.depth}")
        if not self.context:
            stem_in = y
        elif past is None or past.shape[1] < self.context:
            got = "none" if past is None else past.shape[1]
            raise ValueError(f"this discriminator judges a frame after {self.context} past frames, got {got}")
        elif not self.diff:
            stem_in = torch.cat([past[:, -self.context :].flatten(1, 2), y], dim=1)
        else:
            seq = torch.cat([past[:, -self.context :], y.unsqueeze(1)], dim=1)  # (B, k+1, C, H, W)
            stem_in = torch.cat([(seq[:, 1:] - seq[:, :-1]).flatten(1, 2), y], dim=1)  # k differences, then y
        return stem_in if self.input_gain == 1 else stem_in * self.input_gain

    def features2(self, y: torch.Tensor, past: torch.Tensor | None = None) -> F2Output:
        """F2 alone (stem and the first strided convolution): ``forward(y, past).f2`` at a fraction of the
        cost."""
        return F2Output(act(self.down[0][0](act(self.stem(self._input(y, past))))))

    def forward(self, y: torch.Tensor, past: torch.Tensor | None = None) -> DOutput:
        """(B, C, H, W) frame in [-1, 1] (and, for a conditioned D, its past (B, T, C, H, W)) -> DOutput."""
        e = act(self.stem(self._input(y, past)))
        skips = [e]
        f2 = e
        for s, (strided, refine, *short) in enumerate(self.down, start=1):
            h = act(strided(e))
            if s == 1:
                f2 = h  # (B, c_1, H/2, W/2)
            h = refine(h)
            e = act(h + short[0](F.avg_pool2d(e, 2)) if short else h)
            if self.attn is not None and s == self.attn_scale:
                e = self.attn(e)
            skips.append(e)
        pooled = e.sum(dim=(2, 3), keepdim=True) if self.residual else e.mean(dim=(2, 3), keepdim=True)
        logit = self.enc_head(pooled).flatten()  # (B,)
        h = e
        for s in reversed(range(self.depth)):
            u = self.merge[s](torch.cat([act(self.up[s](h)), skips[s]], dim=1))
            if self.up_short is not None:
                u = u + self.up_short[s](F.interpolate(h, scale_factor=2))
            h = act(u)
        map_logits = None
        if self.map_head is not None:
            map_logits = self.map_head(h.detach() if self.map_detached else h)
        return DOutput(logit, self.dec_head(h), f2, map_logits)
