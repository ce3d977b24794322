"""The probes behind docs/discriminator.md: why the discriminator learned nothing, one question each.

    python experiments/d_probes.py sensitivity [--set model.d_residual=false]
    python experiments/d_probes.py alone DATA --fake blur|last|skip --lr 4e-4 [--steps 60] [--set ...]
    python experiments/d_probes.py gan DATA [--steps 200] [--set ...]
    python experiments/d_probes.py errors RUN [--which best|last]
    python experiments/d_probes.py frozen RUN [--steps 300] [--fresh [--set ...]] [--lr LR] [--which ...]
    python experiments/d_probes.py motion RUN [--which best|last]

- ``sensitivity``: D at initialisation (the ``cpu`` preset's, seed 0) on random frames and the same frames
  plus noise of rms 0.1: the rms of the difference of each stage's activations, down to the two logits.
- ``alone``: D trained by itself (Adam, beta = (0, 0.9), batch 8 of the training windows of DATA, a
  benchmark folder) to tell real next frames from fakes made of real frames: 3x3-blurred copies
  (``blur``), the previous frame (``last``: what a residual G starts as), or the frame three later
  (``skip``: a speed-up). Every 20 steps: D's loss and the mean gap of its logits, real minus fake.
- ``gan``: ``stvad.train.gan_step`` on DATA with the config's optimisers, D's held-out AUROCs (real vs
  predicted) and G's PSNR against copy-last every 50 steps.
- ``errors``: on a trained run's held-out validation windows, the fraction of pixels where G's prediction
  differs from the real next frame by more than 1, 4, 8 and 16 grey levels: where D's per-pixel terms can
  leave ln 2 at all.
- ``frozen``: a trained run's G held fixed and its D trained on, alone, against G's predictions on the
  run's training windows (the run's D optimiser settings, fresh Adam state; ``--fresh`` starts D from a
  new initialisation instead of the checkpoint's, built with the run's config and ``--set``, e.g.
  ``model.d_input_gain=10``): D's held-out AUROCs every 50 steps. Tells a D that
  cannot separate G's predictions from one that the game keeps at chance.
- ``motion``: where a trained run's D map ``1 - sigmoid(D_dec(xi))`` puts its weight on the held-out
  validation windows: its mean on pixels that move (the real next frame off the last past frame by more
  than 8 grey levels) and on the others, and the share of the prediction error's mass on moving pixels
  before and after the error is weighted by the map. A map that shrinks that share turns the score away
  from motion, which is where the anomalies of a fixed-camera benchmark are.

One thread, deterministic for a given config; the document's numbers come from these commands with the
settings it names beside each.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from stvad.config import preset
from stvad.data.layouts import open_dataset
from stvad.data.windows import WindowDataset, split_train_val
from stvad.losses import d_adversarial_loss
from stvad.model import build_discriminator, build_generator
from stvad.model.layers import act
from stvad.scoring import psnr
from stvad.train import StepBatchSampler, d_aucs, d_logits, gan_step, validation_indices


def sensitivity(cfg) -> None:
    torch.manual_seed(0)
    D = build_discriminator(cfg)
    y = torch.rand(8, 1, *cfg.data.size) * 2 - 1
    past = torch.rand(8, cfg.data.T, 1, *cfg.data.size) * 2 - 1

    def stages(frame: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        out, e = [], act(D.stem(D._input(frame, past)))
        out.append(("stem", e))
        for s, (strided, refine, *short) in enumerate(D.down, start=1):
            h = refine(act(strided(e)))
            e = act(h + short[0](F.avg_pool2d(e, 2)) if short else h)
            if D.attn is not None and s == D.attn_scale:
                e = D.attn(e)
            out.append((f"encoder stage {s}", e))
        result = D(frame, past)
        return [*out, ("global logit", result.logit), ("per-pixel logit", result.pixel_logits)]

    with torch.no_grad():
        a, b = stages(y), stages(y + 0.1 * torch.randn_like(y))
    for (name, u), (_, v) in zip(a, b):
        print(f"{name:16} rms of the difference {(u - v).pow(2).mean().sqrt().item():.2g}")
    print(f"global logit's spread over the batch: {a[-2][1].std().item():.2g}")


def windows(data: str, cfg) -> tuple[WindowDataset, WindowDataset]:
    d = cfg.data
    train, val = split_train_val(open_dataset(data).train, d.val_fraction, d.T)
    return WindowDataset(train, d.T, d.size, d.channels), WindowDataset(val, d.T, d.size, d.channels)


def validation_batch(vd: WindowDataset, cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """The past and next frames of the held-out windows that training validates on."""
    idx = validation_indices(len(vd), cfg.train.val_windows)
    return torch.stack([vd[i][0] for i in idx]), torch.stack([vd[i][1] for i in idx])


def moved(past: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
    """(B, H, W): where the real next frame is off the last past frame by more than 8 grey levels (frames in
    [-1, 1], a grey level is 2/255), averaged over colour channels."""
    return (nxt - past[:, -1]).abs().mean(dim=1) > 2 * 8 / 255


def alone(data: str, cfg, fake_kind: str, lr: float, steps: int) -> None:
    torch.manual_seed(0)
    D = build_discriminator(cfg)
    opt = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.0, 0.9))
    wd, _ = windows(data, cfg)
    g = torch.Generator().manual_seed(0)
    for step in range(1, steps + 1):
        idx = torch.randint(len(wd), (8,), generator=g).tolist()
        x, y = torch.stack([wd[i][0] for i in idx]), torch.stack([wd[i][1] for i in idx])
        if fake_kind == "blur":
            fake = F.avg_pool2d(y, 3, 1, 1)
        elif fake_kind == "last":
            fake = x[:, -1]
        else:  # three frames later in the same clip (the clip's first frame of the window if it ends sooner)
            j = [min(i + 3, len(wd) - 1) for i in idx]
            fake = torch.stack(
                [wd[k][1] if wd._local[k][0] == wd._local[i][0] else wd[i][0][0] for i, k in zip(idx, j)]
            )
        real, fake_out = D(y, x), D(fake, x)
        loss = d_adversarial_loss(real, fake_out)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 20 == 0:
            gap = (real.logit - fake_out.logit).mean().item()
            print(f"step {step:4}  loss_d {loss.item():.4f}  logit gap {gap:.3g}")


def gan(data: str, cfg, steps: int) -> None:
    torch.manual_seed(0)
    G, D = build_generator(cfg), build_discriminator(cfg)
    tc = cfg.train
    opt_g = torch.optim.Adam(G.parameters(), lr=tc.lr_g, betas=tc.betas_g)
    opt_d = torch.optim.Adam(D.parameters(), lr=tc.lr_d, betas=tc.betas_d)
    wd, vd = windows(data, cfg)
    xv, yv = validation_batch(vd, cfg)
    for step, idx in enumerate(StepBatchSampler(len(wd), tc.batch_size, tc.seed, 0, steps), start=1):
        x, y = torch.stack([wd[i][0] for i in idx]), torch.stack([wd[i][1] for i in idx])
        rng = torch.Generator().manual_seed(step)
        logs = gan_step(G, D, opt_g, opt_d, x, y, tc, step, rng, lambda l: l.backward(), lambda *a: None)
        if step % 50 == 0:
            G.eval(), D.eval()
            with torch.no_grad():
                pred = G(xv)
                auc_global, auc_pixel = d_aucs(d_logits(D(yv, xv), D(pred, xv)).numpy())
                gain = (psnr(pred, yv).mean() - psnr(xv[:, -1], yv).mean()).item()
            G.train(), D.train()
            print(
                f"step {step:4}  loss_d {float(logs['loss_d']):.4f}  D AUROC global {auc_global:.3f} "
                f"mean pixel {auc_pixel:.3f}  G over copy-last {gain:+.2f} dB"
            )


def errors(run_dir: str, which: str) -> None:
    from stvad.checkpoint import load_run

    run = load_run(run_dir, which=which)
    cfg = run.config
    _, vd = windows(run.meta["data_root"], cfg)
    xv, yv = validation_batch(vd, cfg)
    with torch.no_grad():
        err = (run.generator.eval()(xv) - yv).abs()
    for levels in (1, 4, 8, 16):
        frac = (err > 2 * levels / 255).float().mean().item()  # frames in [-1, 1]: a grey level is 2/255
        print(f"prediction off by more than {levels:2} grey levels: {frac:.1%} of pixels")
    moving = moved(xv, yv).float().mean().item()
    print(f"real frame off the previous one by more than 8 grey levels: {moving:.1%} of pixels")


def frozen_g(run_dir: str, which: str, steps: int, fresh: bool, lr: float | None, sets) -> None:
    from stvad.checkpoint import load_run

    run = load_run(run_dir, which=which)
    cfg, G, D = run.config, run.generator, run.discriminator
    torch.manual_seed(0)
    if fresh:
        D = build_discriminator(cfg.override(sets))
    tc = cfg.train
    opt = torch.optim.Adam(D.parameters(), lr=lr or tc.lr_d, betas=tc.betas_d)
    wd, vd = windows(run.meta["data_root"], cfg)
    xv, yv = validation_batch(vd, cfg)
    G.eval()
    with torch.no_grad():
        pv = G(xv)

    def report(step: int, loss: float) -> None:
        D.eval()
        with torch.no_grad():
            auc_global, auc_pixel = d_aucs(d_logits(D(yv, xv), D(pv, xv)).numpy())
        D.train()
        print(f"step {step:4}  loss_d {loss:.4f}  D AUROC global {auc_global:.3f} mean pixel {auc_pixel:.3f}")

    report(0, float("nan"))
    for step, idx in enumerate(StepBatchSampler(len(wd), tc.batch_size, tc.seed, 0, steps), start=1):
        x, y = torch.stack([wd[i][0] for i in idx]), torch.stack([wd[i][1] for i in idx])
        with torch.no_grad():
            fake = G(x)
        loss = d_adversarial_loss(D(y, x), D(fake, x))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            report(step, loss.item())


def motion(run_dir: str, which: str) -> None:
    from stvad.checkpoint import load_run
    from stvad.scoring import discriminator_map, prediction_error

    run = load_run(run_dir, which=which)
    cfg = run.config
    _, vd = windows(run.meta["data_root"], cfg)
    xv, yv = validation_batch(vd, cfg)
    G, D = run.generator.eval(), run.discriminator.eval()
    with torch.no_grad():
        err = prediction_error(yv, G(xv))  # (B, H, W)
        dmap = discriminator_map(D(yv, xv))
    moving = moved(xv, yv)
    print(f"moving pixels: {moving.float().mean().item():.1%}")
    print(
        f"D map mean on moving pixels {dmap[moving].mean().item():.3f}, on still pixels "
        f"{dmap[~moving].mean().item():.3f}"
    )
    share = (err * moving).sum() / err.sum()
    weighted = err * dmap
    share_w = (weighted * moving).sum() / weighted.sum()
    print(
        f"share of the error's mass on moving pixels: {share.item():.1%} plain, {share_w.item():.1%} "
        "weighted by the D map"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("probe", choices=("sensitivity", "alone", "gan", "errors", "frozen", "motion"))
    p.add_argument("data", nargs="?", help="a benchmark folder (alone, gan), a run folder (frozen)")
    p.add_argument("--fresh", action="store_true", help="frozen: a new D instead of the checkpoint's")
    p.add_argument("--which", default="best", choices=("best", "last"))
    p.add_argument("--fake", default="blur", choices=("blur", "last", "skip"))
    p.add_argument("--lr", type=float, default=None, help="D's rate (alone: 4e-4; frozen: the run's)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    a = p.parse_args()
    torch.set_num_threads(1)
    np.set_printoptions(precision=4)
    cfg = preset("cpu").override(a.set)
    if a.probe == "sensitivity":
        sensitivity(cfg)
    elif a.data is None:
        p.error(f"{a.probe} needs DATA")
    elif a.probe == "alone":
        alone(a.data, cfg, a.fake, a.lr or 4e-4, a.steps or 60)
    elif a.probe == "errors":
        errors(a.data, a.which)
    elif a.probe == "motion":
        motion(a.data, a.which)
    elif a.probe == "frozen":
        frozen_g(a.data, a.which, a.steps or 300, a.fresh, a.lr, a.set)
    else:
        gan(a.data, cfg, a.steps or 200)


if __name__ == "__main__":
    main()
