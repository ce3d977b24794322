"""Which kernel runs the SAGAN self-attention (stvad.model.layers.SelfAttention) on a CPU, and what it costs.

    python experiments/attention_kernels.py

SAGAN attention has queries and keys of C/8 channels and values of C. PyTorch's fused CPU kernel (flash
attention) needs one head size for all three, so ``F.scaled_dot_product_attention`` on them as they come
(``unpadded``) falls back to the plain kernel, which materialises the (HW)^2 attention map. The script
checks that (forcing the fused kernel fails) and times, at the attention shapes of the stvad presets, that
call against two formulations with the same result: queries and keys zero-padded to C channels and all
three contiguous (``padded``, which the fused kernel accepts) and softmax(q k^T) v written out
(``explicit``), and the module as shipped (``module``: it pads at inference on a CPU where C <= 64, see
``stvad.model.layers.pad_for_fused_kernel``). A second table times a training step's attention (forward
and backward) unpadded against padded at the training shapes. Interleaved medians; writes
experiments/results/attention_kernels.json.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from stvad._io import atomic_write_json
from stvad.model.layers import SelfAttention

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))  # the benchmarks' helpers
from perf_common import interleaved, load_1min, machine, median, set_threads  # noqa: E402

# name -> (batch, channels, side): the attention inputs of G and D when scoring (batch as Scorer runs it)
SHAPES = {
    "cpu64 D, batch 16": (16, 64, 16),
    "cpu256 G, batch 1": (1, 64, 32),
    "cpu256 D, batch 1": (1, 64, 64),
    "cpu256 G, batch 8": (8, 64, 32),
    "paper256 G, batch 8": (8, 256, 16),
    "paper256 D, batch 8": (8, 512, 32),
}
# the attention inputs of G and D in a training step of 8 windows
TRAIN_SHAPES = {
    "cpu64 G": (8, 64, 8),
    "cpu64 D": (8, 64, 16),
    "ped2 G": (8, 64, 16),
    "ped2 D": (8, 64, 32),
}


HERE = Path(__file__).resolve().parent


def unpadded(m: SelfAttention, x: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(*m.qkv(x, pad=False), scale=1.0)


def padded(m: SelfAttention, x: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(*m.qkv(x, pad=True), scale=1.0)


def explicit(m: SelfAttention, x: torch.Tensor) -> torch.Tensor:
    q, k, v = m.qkv(x, pad=False)
    return torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v


def fused_accepts(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    try:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PyTorch warns why it refuses before raising
            F.scaled_dot_product_attention(q, k, v, scale=1.0)
        return True
    except RuntimeError:
        return False


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch threads (see score_throughput.py)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "attention_kernels.json")
    a = p.parse_args()
    set_threads(a.threads)
    load_before = load_1min()
    rows = []
    torch.manual_seed(0)
    for name, (B, C, side) in SHAPES.items():
        m = SelfAttention(C).eval()
        x = torch.randn(B, C, side, side)
        with torch.no_grad():
            q, k, v = m.qkv(x, pad=False)
            want = F.scaled_dot_product_attention(q, k, v, scale=1.0)
            diffs = {f.__name__: float((f(m, x) - want).abs().max()) for f in (padded, explicit)}
            fns = {
                "module": lambda m=m, x=x: m(x),
                "unpadded": lambda m=m, x=x: unpadded(m, x),
                "padded": lambda m=m, x=x: padded(m, x),
                "explicit": lambda m=m, x=x: explicit(m, x),
            }
            t = {k: median(v) for k, v in interleaved(fns, a.repeats, min_seconds=0.2, warmup=1).items()}
            accepts = fused_accepts(q, k, v)
            accepts_padded = fused_accepts(*m.qkv(x, pad=True))
        rows.append(
            {
                "shape": name,
                "batch": B,
                "channels": C,
                "positions": side * side,
                "fused_kernel_accepts_unpadded": accepts,
                "fused_kernel_accepts_padded": accepts_padded,
                "ms": {k: round(1e3 * s, 3) for k, s in t.items()},
                "speedup_padded": round(t["unpadded"] / t["padded"], 2),
                "speedup_explicit": round(t["unpadded"] / t["explicit"], 2),
                "speedup_module": round(t["unpadded"] / t["module"], 2),
                "max_abs_diff": diffs,
            }
        )
    train_rows = []
    for name, (B, C, side) in TRAIN_SHAPES.items():
        m = SelfAttention(C)
        x = torch.randn(B, C, side, side, requires_grad=True)
        fns = {
            "unpadded": lambda m=m, x=x: unpadded(m, x).sum().backward(),
            "padded": lambda m=m, x=x: padded(m, x).sum().backward(),
        }
        t = {k: median(v) for k, v in interleaved(fns, a.repeats, min_seconds=0.2, warmup=1).items()}
        train_rows.append(
            {
                "shape": name,
                "batch": B,
                "channels": C,
                "positions": side * side,
                "ms_forward_backward": {k: round(1e3 * s, 3) for k, s in t.items()},
                "speedup_padded": round(t["unpadded"] / t["padded"], 2),
            }
        )
    load_after = load_1min()
    print(f"load {load_before} -> {load_after}; inference, ms per call")
    print(f"{'shape':22} {'HW':>5} {'fused?':>6} {'unpadded':>9} {'padded':>9} {'explicit':>9} {'module':>9}")
    for r in rows:
        ms = r["ms"]
        print(
            f"{r['shape']:22} {r['positions']:>5} {r['fused_kernel_accepts_unpadded']!s:>6} "
            f"{ms['unpadded']:>9.2f} {ms['padded']:>9.2f} {ms['explicit']:>9.2f} {ms['module']:>9.2f}"
        )
    print("training step (forward + backward), ms per call")
    print(f"{'shape':22} {'HW':>5} {'unpadded':>9} {'padded':>9} {'speed-up':>9}")
    for r in train_rows:
        ms = r["ms_forward_backward"]
        print(
            f"{r['shape']:22} {r['positions']:>5} {ms['unpadded']:>9.2f} {ms['padded']:>9.2f} "
            f"{r['speedup_padded']:>9.2f}"
        )
    atomic_write_json(
        a.out,
        {
            "command": f"python experiments/attention_kernels.py --repeats {a.repeats} --threads {a.threads}",
            **machine(),
            "load_average_1min_before": load_before,
            "load_average_1min_after": load_after,
            "note": (
                "module = SelfAttention.forward as shipped (1x1 convolutions, attention, residual; padded "
                "at inference on a CPU where C <= 64); unpadded, padded and explicit include the 1x1 "
                "convolutions but not the reshape back and the residual (two element-wise passes)"
            ),
            "rows": rows,
            "training_rows": train_rows,
        },
    )
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
