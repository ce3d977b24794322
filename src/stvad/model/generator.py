"""The spatio-temporal generator: predicts frame t+1 from frames t-T+1..t.

After Lee et al., "STAN: Spatio-Temporal Adversarial Networks for Abnormal Event Detection", ICASSP 2018,
turned into a next-frame predictor as in the paper:

    frame_k --encoder--> e_k^0 .. e_k^D        (per frame, shared weights; e^s at 1/2^s of the frame size)
    (e_1^D .. e_T^D) --ConvLSTM--> h            (motion: only the coarsest features go through time; the
                                                 input half of its gate convolution is per frame too)
    h --self-attention--> --decoder--> xi_hat   (transposed convolutions back to frame size, tanh)

Skip connections (``g_skip``) feed the decoder at scale s with e_T^s, the encoder features of the most
recent frame: appearance comes from the last frame, its change from the ConvLSTM. With ``g_residual`` the
decoder's output is added to the most recent frame before the tanh, xi_hat = tanh(atanh(frame_T) + out),
so an untrained G starts as "copy the last frame" and learns the change (a choice, measured). Because
every part except the ConvLSTM's recurrence works on single frames, a streaming scorer can run
``encode_frames`` once per frame and ``predict_from_features`` once per window;
``G(x) == predict_from_features(encode_frames(x))``.
"""

from __future__ import annotations

import torch
from torch import nn

from stvad.model.convlstm import ConvLSTM
from stvad.model.layers import SelfAttention, act, conv

# the frame itself, one tensor per scale s = 0..depth, then the ConvLSTM's input half of the coarsest scale
Features = tuple[torch.Tensor, ...]


def stage_widths(width: int, depth: int, cap: int) -> list[int]:
    """Channels per scale: doubled at each stride-2 stage, at most ``cap`` times the first."""
    return [width * min(2**s, cap) for s in range(depth + 1)]


def feature_windows(feats: Features, T: int) -> Features:
    """Per-frame features of N consecutive frames -> features of its N-T windows (views, no copies).

    Window j holds frames j..j+T-1 and predicts frame j+T, the numbering of ``iter_windows``.
    """
    return tuple(f.unfold(0, T, 1)[:-1].movedim(-1, 1) for f in feats)


class STGenerator(nn.Module):
    def __init__(
        self,
        channels: int = 1,
        width: int = 32,
        depth: int = 3,
        skip: bool = True,
        attention: bool = True,
        sn: bool = False,
        lstm_kernel: int = 3,
        lstm_layers: int = 1,
        residual: bool = False,
        skip_frames: int = 1,
    ):
        super().__init__()
        w = stage_widths(width, depth, cap=4)
        self.depth, self.residual = depth, residual
        self.skip_frames = skip_frames if skip else 0
        self.stem = conv(channels, w[0], 3, sn=sn)
        self.down = nn.ModuleList(
            nn.ModuleList([conv(w[s], w[s + 1], 4, stride=2, sn=sn), conv(w[s + 1], w[s + 1], 3, sn=sn)])
            for s in range(depth)
        )
        self.lstm = ConvLSTM(w[depth], w[depth], lstm_kernel, lstm_layers, sn=sn)
        self.attn = SelfAttention(w[depth], sn=sn) if attention else None
        self.up = nn.ModuleList(
            conv(w[s + 1], w[s], 4, stride=2, padding=1, sn=sn, transpose=True) for s in range(depth)
        )
        self.merge = nn.ModuleList(conv(w[s] * (1 + self.skip_frames), w[s], 3, sn=sn) for s in range(depth))
        self.out = conv(w[0], channels, 3, sn=sn)
        if residual and not sn:  # start exactly at "copy the last frame"
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def encode_frames(self, frames: torch.Tensor) -> Features:
        """(N, C, H, W) frames -> (frames, e^0, ..., e^D, g), e^s of shape (N, c_s, H/2^s, W/2^s) and g the
        ConvLSTM's input half W_x* e^D + b, (N, 4 c_D, H/2^D, W/2^D)."""
        H, W = frames.shape[-2:]
        if H % 2**self.depth or W % 2**self.depth:
            raise ValueError(f"frame size {H}x{W} is not divisible by 2^g_depth = {2**self.depth}")
        e = act(self.stem(frames))
        feats = [frames, e]
        for strided, refine in self.down:
            e = act(refine(act(strided(e))))
            feats.append(e)
        feats.append(self.lstm.input_gates(e))
        return tuple(feats)

    def predict_from_features(self, feats: Features) -> torch.Tensor:
        """``encode_frames`` output stacked over a window, each (B, T, ...) -> (B, C, H, W) next frame."""
        h = self.lstm(feats[-2], gates=feats[-1])  # (B, c_D, H/2^D, W/2^D)
        if self.attn is not None:
            h = self.attn(h)
        for s in reversed(range(self.depth)):
            h = act(self.up[s](h))  # (B, c_s, H/2^s, W/2^s)
            if self.skip_frames:  # the most recent frames' features at this scale, oldest first
                h = torch.cat([h, feats[s + 1][:, -self.skip_frames :].flatten(1, 2)], dim=1)
            h = act(self.merge[s](h))
        out = self.out(h)
        if self.residual:
            out = out + torch.atanh(feats[0][:, -1].clamp(-0.999, 0.999))
        return torch.tanh(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) past frames in [-1, 1] -> (B, C, H, W) predicted next frame."""
        B, T = x.shape[:2]
        feats = self.encode_frames(x.flatten(0, 1))
        return self.predict_from_features(tuple(f.unflatten(0, (B, T)) for f in feats))
