"""Convolutional LSTM: Shi et al., "Convolutional LSTM Network", NeurIPS 2015.

Written from the paper's equations (3) rather than the popular public ConvLSTM code:
    i_t = s(W_xi * x_t + W_hi * h_{t-1} + w_ci o c_{t-1} + b_i)
    f_t = s(W_xf * x_t + W_hf * h_{t-1} + w_cf o c_{t-1} + b_f)
    c_t = f_t o c_{t-1} + i_t o tanh(W_xc * x_t + W_hc * h_{t-1} + b_c)
    o_t = s(W_xo * x_t + W_ho * h_{t-1} + w_co o c_t + b_o)
    h_t = o_t o tanh(c_t)
The peephole weights w_c* are per channel (shape C x 1 x 1) instead of per pixel, so one model runs at
any resolution; they start at 0, i.e. as a plain LSTM. One convolution on [x_t, h_{t-1}] computes all four
gates' convolution terms at once.
"""

from __future__ import annotations

import torch
from torch import nn

from stvad.model.layers import conv


class ConvLSTMCell(nn.Module):
    def __init__(self, cin: int, hidden: int, kernel: int = 3, sn: bool = False):
        super().__init__()
        self.hidden = hidden
        self.gates = conv(cin + hidden, 4 * hidden, kernel, sn=sn)
        self.peep_i = nn.Parameter(torch.zeros(hidden, 1, 1))
        self.peep_f = nn.Parameter(torch.zeros(hidden, 1, 1))
        self.peep_o = nn.Parameter(torch.zeros(hidden, 1, 1))
        with torch.no_grad():
            # forget-gate bias 1 so the cell remembers by default early in training (Jozefowicz et al. 2015)
            self.gates.bias.zero_()
            self.gates.bias[hidden : 2 * hidden].fill_(1.0)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        zi, zf, zc, zo = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        i = torch.sigmoid(zi + self.peep_i * c)
        f = torch.sigmoid(zf + self.peep_f * c)
        c = f * c + i * torch.tanh(zc)
        o = torch.sigmoid(zo + self.peep_o * c)
        h = o * torch.tanh(c)
        return h, c


class ConvLSTM(nn.Module):
    """Stacked ConvLSTM cells run over a sequence; returns the top layer's last hidden state."""

    def __init__(self, cin: int, hidden: int, kernel: int = 3, layers: int = 1, sn: bool = False):
        super().__init__()
        if layers < 1:
            raise ValueError(f"ConvLSTM needs at least one layer, got {layers}")
        self.cells = nn.ModuleList(
            ConvLSTMCell(cin if n == 0 else hidden, hidden, kernel, sn) for n in range(layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _, H, W = x.shape  # (B, T, C, H, W)
        states = [
            (x.new_zeros(B, cell.hidden, H, W), x.new_zeros(B, cell.hidden, H, W)) for cell in self.cells
        ]
        for t in range(T):
            inp = x[:, t]
            for n, cell in enumerate(self.cells):
                states[n] = cell(inp, states[n])
                inp = states[n][0]
        return states[-1][0]  # (B, hidden, H, W)
