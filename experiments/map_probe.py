"""Probe: fit a detached map head (``model.d_map_head=probe``) on a finished run's frozen D, write a new run.

    python experiments/map_probe.py RUN NEW_RUN [--steps 400] [--skip 3] [--lr 1e-3] [--batch 8]

The run's best checkpoint is loaded; its G and D stay exactly as trained. A small head on D_dec's last
features (detached) learns the skip-frame pseudo-anomalies of ``train.pseudo_skip`` on the run's own
training windows (never a test video): the frame ``skip`` ahead after the same past, fake per pixel where it
differs from the true next frame, and the true next frame real. NEW_RUN is the run with that head: the
same G, D, F2 and checkpoint choice, only the score's D map reads the head. So ``stvad eval NEW_RUN`` and
``experiments/choose_d.py`` compare the map alone, with no change to G. Both of NEW_RUN's checkpoints get
the head fitted on the best checkpoint's D.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
from pathlib import Path

import torch

from stvad._io import atomic_torch_save, atomic_write_json
from stvad.checkpoint import load_run, read_checkpoint
from stvad.config import Config
from stvad.data.layouts import open_dataset
from stvad.data.windows import WindowDataset, split_train_val
from stvad.losses import pseudo_anomaly_loss, pseudo_anomaly_targets
from stvad.model import build_discriminator


def fit(run_dir: Path, steps: int, skip: int, lr: float, batch: int, seed: int = 0):
    run = load_run(run_dir, which="best")
    cfg = Config.from_dict(run.config.to_dict())
    cfg.model.d_map_head, cfg.train.pseudo_skip = "probe", skip
    D = build_discriminator(cfg)
    missing, unexpected = D.load_state_dict(run.discriminator.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("map_head.") for k in missing), (missing, unexpected)
    for name, p in D.named_parameters():
        p.requires_grad_(name.startswith("map_head."))
    D.eval()  # D's layers as at scoring; only the head learns
    d = cfg.data
    ds = open_dataset(run.meta["data_root"], layout=d.layout)
    train_clips, _ = split_train_val(ds.train, d.val_fraction, d.T)
    windows = WindowDataset(train_clips, d.T, d.size, d.channels, d.train_stride, ahead=skip)
    gen = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        windows, batch_size=batch, shuffle=True, generator=gen, drop_last=True
    )
    opt = torch.optim.Adam(D.map_head.parameters(), lr=lr)
    losses, step = [], 0
    while step < steps:
        for x, y, z in loader:
            targets = pseudo_anomaly_targets(z, y, cfg.train.pseudo_threshold)
            loss = pseudo_anomaly_loss(D(z, x), targets, D(y, x))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.detach().item())
            step += 1
            if step % 50 == 0:
                print(f"step {step}: loss {statistics.fmean(losses[-50:]):.4f}", flush=True)
            if step >= steps:
                break
    return cfg, D, losses


def write(run_dir: Path, new: Path, cfg: Config, D: torch.nn.Module, info: dict) -> None:
    if new.exists():
        raise SystemExit(f"{new} exists: choose another NEW_RUN")
    shutil.copytree(run_dir, new, ignore=shutil.ignore_patterns("report", "*.lock", ".*.tmp"))
    head = {f"D.{k}": v for k, v in D.state_dict().items() if k.startswith("map_head.")}
    for ckpt in sorted((new / "checkpoints").glob("*.ckpt")):
        state = read_checkpoint(ckpt)
        state["state_dict"].update(head)
        state["stvad"]["config"] = cfg.to_dict()
        state["stvad"]["map_probe"] = info
        atomic_torch_save(ckpt, state)
    atomic_write_json(new / "config.json", cfg.to_dict())
    atomic_write_json(new / "map_probe.json", info)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("new", type=Path)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--skip", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=8)
    a = p.parse_args()
    torch.manual_seed(0)
    cfg, D, losses = fit(a.run, a.steps, a.skip, a.lr, a.batch)
    info = {
        "source_run": str(a.run), "steps": a.steps, "skip": a.skip, "lr": a.lr, "batch": a.batch,
        "loss_first_50": statistics.fmean(losses[:50]), "loss_last_50": statistics.fmean(losses[-50:]),
    }  # fmt: skip
    write(a.run, a.new, cfg, D, info)
    print(f"wrote {a.new} (pseudo-anomaly loss {info['loss_first_50']:.4f} -> {info['loss_last_50']:.4f})")


if __name__ == "__main__":
    main()
