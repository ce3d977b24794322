"""Building blocks shared by the generators and discriminators.

- Spectral normalisation: Miyato et al., "Spectral Normalization for GANs", ICLR 2018.
- Self-attention: Zhang et al., "Self-Attention GANs" (SAGAN), ICML 2019, with the output gate
  gamma initialised to 0 so a fresh block is the identity and attention is phased in by training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def conv(
    cin: int,
    cout: int,
    kernel: int,
    stride: int = 1,
    padding: int | None = None,
    sn: bool = False,
    transpose: bool = False,
) -> nn.Module:
    """A 2-D convolution (or transposed convolution), spectrally normalised when ``sn``."""
    if padding is None:
        padding = (kernel - 1) // 2
    cls = nn.ConvTranspose2d if transpose else nn.Conv2d
    layer = cls(cin, cout, kernel, stride=stride, padding=padding)
    return spectral_norm(layer) if sn else layer


def act(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


def has_spectral_norm(module: nn.Module) -> bool:
    """True when ``module.weight`` is produced by a spectral-norm parametrization."""
    parametrizations = getattr(module, "parametrizations", None)
    if parametrizations is None or "weight" not in parametrizations:
        return False
    return any(type(p).__name__ == "_SpectralNorm" for p in parametrizations["weight"])


class SelfAttention(nn.Module):
    """SAGAN self-attention over all positions of a feature map: ``x + gamma * attention(x)``."""

    def __init__(self, channels: int, sn: bool = False):
        super().__init__()
        inner = max(channels // 8, 1)
        self.query = conv(channels, inner, 1, sn=sn)
        self.key = conv(channels, inner, 1, sn=sn)
        self.value = conv(channels, channels, 1, sn=sn)
        self.gamma = nn.Parameter(torch.zeros(1))

    def qkv(self, x: torch.Tensor, pad: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries and keys (B, 1, HW, C/8) and values (B, 1, HW, C) of x (B, C, H, W).

        ``pad``: q and k zero-padded to C channels (zeros add nothing to q k^T) and v made contiguous, the
        one head size and layout PyTorch's fused CPU kernel accepts (it refuses the transposed, strided v).
        """
        q, k, v = (f(x).flatten(2).transpose(1, 2).unsqueeze(1) for f in (self.query, self.key, self.value))
        if pad:
            C = v.shape[-1]
            q, k, v = F.pad(q, (0, C - q.shape[-1])), F.pad(k, (0, C - k.shape[-1])), v.contiguous()
        return q, k, v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(x, pad=pad_for_fused_kernel(x))
        # softmax(q k^T) v with SAGAN's unscaled logits (scale=1)
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0)  # (B, 1, HW, C)
        out = out.squeeze(1).transpose(1, 2).reshape(B, C, H, W)
        return x + self.gamma * out


PAD_MAX_CHANNELS = 64


def pad_for_fused_kernel(x: torch.Tensor) -> bool:
    """Whether SelfAttention pads queries and keys (C/8 channels) to C so that PyTorch's fused CPU kernel
    (flash attention) takes the call instead of the kernel that materialises the (HW)^2 map.

    Only for inference on a CPU at C <= 64, where ``python experiments/attention_kernels.py`` measured the
    padded call 1.9-2.5x faster; at C = 256 and 512 the 8x larger q k^T makes it slower, and for a training
    step (forward and backward) it was slower at three of the four training shapes. Never while a graph
    is traced or exported, where no fused kernel exists.
    """
    return (
        x.device.type == "cpu"
        and x.shape[1] <= PAD_MAX_CHANNELS
        and not torch.is_grad_enabled()
        and not torch.jit.is_tracing()
        and not torch.onnx.is_in_onnx_export()
    )
