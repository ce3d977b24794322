"""Convolutional LSTM: Shi et al., "Convolutional LSTM Network", NeurIPS 2015.

Written from the paper's equations (3) rather than the popular public ConvLSTM code:
    i_t = s(W_xi * x_t + W_hi * h_{t-1} + w_ci o c_{t-1} + b_i)
    f_t = s(W_xf * x_t + W_hf * h_{t-1} + w_cf o c_{t-1} + b_f)
    c_t = f_t o c_{t-1} + i_t o tanh(W_xc * x_t + W_hc * h_{t-1} + b_c)
    o_t = s(W_xo * x_t + W_ho * h_{t-1} + w_co o c_t + b_o)
    h_t = o_t o tanh(c_t)
The peephole weights w_c* are per channel (shape C x 1 x 1) instead of per pixel, so one model runs at
any resolution; they start at 0, i.e. as a plain LSTM. One convolution's weight [W_x*, W_h*] holds all four
gates' convolution terms. It is applied in two halves: the input half W_x* x_t (+ biases) depends on the
frame alone, so it runs once for all T steps in one batched call (and a streaming scorer computes it once
per frame, not once per window that holds the frame), and the hidden half W_h* h_{t-1} runs per step,
skipped at the first step where h_0 = 0. The sum equals the single convolution on [x_t, h_{t-1}].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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

    def input_gates(self, x: torch.Tensor) -> torch.Tensor:
        """W_x* x + b for every gate: (N, cin, H, W) -> (N, 4*hidden, H, W), independent of the state."""
        w = self.gates.weight
        return F.conv2d(x, w[:, : w.shape[1] - self.hidden], self.gates.bias, padding=self.gates.padding)

    def step(
        self, gx: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step from the input half ``gx``; ``state`` None is the zero state (h = c = 0)."""
        if state is None:
            zi, zf, zc, zo = gx.chunk(4, dim=1)
            i, f = torch.sigmoid(zi), torch.sigmoid(zf)
            c = i * torch.tanh(zc)
        else:
            h, c = state
            w = self.gates.weight
            z = gx + F.conv2d(h, w[:, w.shape[1] - self.hidden :], padding=self.gates.padding)
            zi, zf, zc, zo = z.chunk(4, dim=1)
            i = torch.sigmoid(zi + self.peep_i * c)
            f = torch.sigmoid(zf + self.peep_f * c)
            c = f * c + i * torch.tanh(zc)
        o = torch.sigmoid(zo + self.peep_o * c)
        h = o * torch.tanh(c)
        return h, c

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.step(self.input_gates(x), state)


class ConvLSTM(nn.Module):
    """Stacked ConvLSTM cells run over a sequence; returns the top layer's last hidden state."""

    def __init__(self, cin: int, hidden: int, kernel: int = 3, layers: int = 1, sn: bool = False):
        super().__init__()
        if layers < 1:
            raise ValueError(f"ConvLSTM needs at least one layer, got {layers}")
        self.cells = nn.ModuleList(
            ConvLSTMCell(cin if n == 0 else hidden, hidden, kernel, sn) for n in range(layers)
        )

    def input_gates(self, x: torch.Tensor) -> torch.Tensor:
        """The first cell's input half for N frames' features, (N, cin, H, W) -> (N, 4*hidden, H, W)."""
        return self.cells[0].input_gates(x)

    def forward(self, x: torch.Tensor, gates: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, C, H, W) -> the top layer's last hidden state (B, hidden, H, W).

        ``gates``: the first cell's input half of the same sequence, (B, T, 4*hidden, H, W), when already
        computed (``input_gates`` per frame); otherwise it is computed here, all T steps in one call.
        """
        B, T = x.shape[:2]
        if gates is None:
            gates = self.input_gates(x.flatten(0, 1)).unflatten(0, (B, T))
        states: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(self.cells)
        for t in range(T):
            states[0] = self.cells[0].step(gates[:, t], states[0])
            for n in range(1, len(self.cells)):
                states[n] = self.cells[n](states[n - 1][0], states[n])
        return states[-1][0]
