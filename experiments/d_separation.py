"""Can the discriminator tell a fake frame from a real one at all, and how soon? D trained alone.

    python experiments/d_separation.py                     # the default synthetic set (generated), cpu preset
    python experiments/d_separation.py --data ../shared/data/ped2 --preset ped2
    python experiments/d_separation.py --context 4         # D also sees the 4 past frames (model.d_context)

In every Ped2 and demo run D's validation accuracy stayed at 0.50. This script separates two explanations:
a D that cannot learn (a bug, or an architecture too weak to start) and fakes that a single-frame D cannot
tell from real frames. It trains the preset's U-Net discriminator alone, with the training loop's loss on
both heads (``d_adversarial_loss``), Adam at the preset's D learning rate and betas, batches of real
training frames, against two kinds of fake:

- ``blur``: the same frame through a 3x3 box filter, an obvious artefact, like an untrained generator's;
- ``previous``: the frame before it, which is what a residual generator predicts at the start (copy the
  last frame) and close to what it predicts later. It is itself a real frame, so a D that sees one frame
  at a time has nothing to tell it by; only its pairing with the sequence makes it a wrong prediction.

With ``--context k`` the discriminator is the conditioned one (``model.d_context = k``): it sees the k
frames before the judged frame, so "previous" is a wrong continuation it can tell by.

Every ``--every`` steps it reports D's accuracy on held-out frames (the global head, and the per-pixel
head) and writes experiments/results/d_separation.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stvad._io import atomic_write_json
from stvad.config import preset
from stvad.data.layouts import open_dataset
from stvad.data.sources import to_model
from stvad.data.synth import generate
from stvad.losses import d_adversarial_loss
from stvad.model import build_discriminator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))  # the benchmarks' helpers
from perf_common import machine  # noqa: E402

HERE = Path(__file__).resolve().parent


def windows(
    data: Path, size: tuple[int, int], channels: int, per_video: int, T: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(frames (N, C, H, W), the T frames before each (N, T, C, H, W)) from the first ``per_video`` frames
    of every training video."""
    cur, past = [], []
    for video in open_dataset(data).train:
        frames = []
        for f in video.source.frames(size=size, channels=channels):
            frames.append(f)
            if len(frames) > per_video:
                break
        cur += frames[T:]
        past += [np.stack(frames[j - T : j]) for j in range(T, len(frames))]
    return to_model(np.stack(cur)), to_model(np.stack(past))


def accuracy(
    D: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor, past: torch.Tensor
) -> tuple[float, float]:
    D.eval()
    with torch.no_grad():
        r, f = D(real, past), D(fake, past)
    D.train()
    glob = ((r.logit > 0).float().mean() + (f.logit < 0).float().mean()) / 2
    pix = ((r.pixel_logits > 0).float().mean() + (f.pixel_logits < 0).float().mean()) / 2
    return round(float(glob), 3), round(float(pix), 3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--data", type=Path, default=None, help="FFP-layout set (default: generate the synthetic set)"
    )
    p.add_argument("--preset", default="cpu")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--every", type=int, default=50)
    p.add_argument("--per-video", type=int, default=120, help="training frames read per video")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--context", type=int, default=0, help="past frames D sees (model.d_context)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "d_separation.json")
    a = p.parse_args()
    cfg = preset(a.preset)
    cfg.model.d_context = a.context
    with tempfile.TemporaryDirectory() as tmp:
        data = a.data or generate(Path(tmp) / "synth", seed=0)
        cur, past = windows(data, cfg.data.size, cfg.data.channels, a.per_video, cfg.data.T)
    g = torch.Generator().manual_seed(a.seed)
    held = torch.randperm(len(cur), generator=g)
    val, train = held[:64], held[64:]
    fakes = {"blur": lambda y, i: F.avg_pool2d(y, 3, 1, 1), "previous": lambda y, i: past[i, -1]}
    curves = {}
    start = time.perf_counter()
    for name, fake in fakes.items():
        torch.manual_seed(a.seed)
        D = build_discriminator(cfg)
        opt = torch.optim.Adam(D.parameters(), lr=cfg.train.lr_d, betas=tuple(cfg.train.betas_d))
        curve = []
        for step in range(a.steps + 1):
            if step % a.every == 0:
                acc, pix = accuracy(D, cur[val], fake(cur[val], val), past[val])
                curve.append({"step": step, "acc": acc, "pixel_acc": pix})
                print(f"{name:9} step {step:5}  accuracy {acc:.3f}  per-pixel {pix:.3f}", flush=True)
            if step == a.steps:
                break
            i = train[torch.randint(len(train), (cfg.train.batch_size,), generator=g)]
            y = cur[i]
            loss = d_adversarial_loss(D(y, past[i]), D(fake(y, i), past[i]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        curves[name] = curve
    first = {
        name: next((c["step"] for c in curve if c["acc"] >= 0.9), None) for name, curve in curves.items()
    }
    print("first step with accuracy >= 0.9:", first)
    atomic_write_json(
        a.out,
        {
            "command": " ".join(["python experiments/d_separation.py", *sys.argv[1:]]),
            **machine(),
            "torch_threads": torch.get_num_threads(),
            "data": str(a.data or "synthetic set, seed 0, default size"),
            "preset": a.preset,
            "d_context": a.context,
            "lr_d": cfg.train.lr_d,
            "betas_d": list(cfg.train.betas_d),
            "batch_size": cfg.train.batch_size,
            "held_out_frames": len(val),
            "seconds": round(time.perf_counter() - start, 1),
            "first_step_accuracy_at_least_0.9": first,
            "curves": curves,
        },
    )
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
