"""GAN training on PyTorch Lightning (manual optimisation, two Adam optimisers for TTUR).

One step (``gan_step``), in the order of U-Net GAN / BigGAN:
  1. D step: G(x) without gradients; L_D on (xi, G(x)); with probability p(step) (CutMix warm-up) a CutMix
     batch adds the augmentation loss and/or w_cons * L_cons; Adam(lr_d, betas_d).
  2. G step: L_G = L_recon + w_adv * adversarial terms, D frozen; Adam(lr_g, betas_g).
Unlike U-Net GAN's "full batch mixup", a CutMix step keeps the normal real/fake terms too: the predictor's
D sees the real/fake pairs of every batch.

The run is a pure function of the config: batch k is drawn from a permutation seeded by (seed, pass over
the data) and CutMix draws come from a generator seeded by (seed, step, rank), so an interrupted run
resumed from its last checkpoint reaches the same weights as an uninterrupted one. A Lightning "epoch" is
``val_every`` steps; validation and checkpointing happen at its end.

Checkpoint selection (no test labels, ever): ``best.ckpt`` is the checkpoint with the highest mean PSNR of
G's predictions of held-out normal frames (the tail of each training video); ties keep the earlier one.
With ``train.g_ema`` the predictions are those of a moving average of G's weights (``update_ema`` after
each G step), which validation, the choice and every later score use; training steps the raw G.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import importlib.util
import io
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.loggers import Logger, TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only
from sklearn.metrics import roc_auc_score
from torch import nn
from tqdm.auto import tqdm

from stvad import __version__
from stvad._io import atomic_torch_save, atomic_write_json, atomic_write_text, check_writable
from stvad.checkpoint import read_checkpoint
from stvad.config import RESUMABLE_KEYS, Config, TrainConfig, config_changes, flat_config, preset
from stvad.errors import StvadError
from stvad.losses import (
    consistency_loss,
    cutmix_augmentation_loss,
    cutmix_mask,
    cutmix_probability,
    d_adversarial_loss,
    g_adversarial_loss,
    mix,
    pseudo_anomaly_loss,
    pseudo_anomaly_targets,
    recon_loss,
)
from stvad.model import build_discriminator, build_generator
from stvad.scoring import psnr


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """No parameter gradients for ``module`` inside the block (gradients still flow through it)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def gan_step(
    G: nn.Module,
    D: nn.Module,
    opt_g: Any,
    opt_d: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    tc: TrainConfig,
    step: int,
    rng: torch.Generator,
    backward: Callable[[torch.Tensor], None],
    check: Callable[[str, torch.Tensor], None],
    ahead: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """One D step then one G step on a batch (x (B,T,C,H,W) past frames, y (B,C,H,W) next frames; ``ahead``
    (B,C,H,W) the frames ``train.pseudo_skip`` frames later, for the skip-frame pseudo-anomalies)."""
    logs: dict[str, torch.Tensor] = {}
    # One generator pass serves both updates: D's step sees it detached, and G's weights do not change
    # before G's own step, so this equals a second forward (a third of G's cost saved).
    pred = G(x)
    if tc.adversarial:
        fake = pred.detach()
        with frozen(G):
            real_out, fake_out = D(y, x), D(fake, x)
            loss_d = d_adversarial_loss(real_out, fake_out)
            # the four real/fake terms alone, every step: 4 ln 2 is chance whatever CutMix adds
            logs["d_gan"] = loss_d
            p_mix = cutmix_probability(step, tc.cutmix_warmup, tc.cutmix_prob)
            if (tc.cutmix or tc.cutmix_aug) and torch.rand((), generator=rng).item() < p_mix:
                mask = cutmix_mask(y.shape[0], y.shape[-2], y.shape[-1], generator=rng, device=y.device)
                mixed = D(mix(y, fake, mask), x)
                if tc.cutmix_aug:
                    logs["aug"] = cutmix_augmentation_loss(mixed, mask)
                    loss_d = loss_d + logs["aug"]
                if tc.cutmix:
                    logs["cons"] = consistency_loss(
                        mixed.pixel_logits, real_out.pixel_logits, fake_out.pixel_logits, mask
                    )
                    loss_d = loss_d + tc.w_cons * logs["cons"]
            if tc.pseudo_skip and ahead is not None:
                targets = pseudo_anomaly_targets(ahead, y, tc.pseudo_threshold)
                if getattr(D, "map_detached", False):
                    # a probe must leave D as it would be without it: its pass runs in eval mode, so that
                    # it does not advance spectral normalisation's power iteration (gradients still flow)
                    was_training = D.training
                    D.eval()
                    pseudo_out = D(ahead, x)
                    D.train(was_training)
                else:
                    pseudo_out = D(ahead, x)
                logs["pseudo"] = pseudo_anomaly_loss(pseudo_out, targets, real_out)
                loss_d = loss_d + tc.w_pseudo * logs["pseudo"]
            check("D", loss_d)
            opt_d.zero_grad()
            backward(loss_d)
            opt_d.step()
        logs["loss_d"] = loss_d
    with frozen(D):
        logs["recon"] = recon_loss(pred, y, tc.w_intensity, tc.w_gradient)
        loss_g = logs["recon"]
        if tc.adversarial:
            logs["g_adv"] = g_adversarial_loss(D(pred, x))
            loss_g = loss_g + tc.w_adv * logs["g_adv"]
        check("G", loss_g)
        opt_g.zero_grad()
        backward(loss_g)
        opt_g.step()
    logs["loss_g"] = loss_g
    return {k: v.detach() for k, v in logs.items()}


def optimisers(G: nn.Module, D: nn.Module, tc: TrainConfig) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """TTUR: G's and D's Adam optimisers, each with its own learning rate and betas."""
    return (
        torch.optim.Adam(G.parameters(), lr=tc.lr_g, betas=tc.betas_g),
        torch.optim.Adam(D.parameters(), lr=tc.lr_d, betas=tc.betas_d),
    )


@torch.no_grad()
def update_ema(avg: nn.Module, net: nn.Module, decay: float) -> None:
    """``avg``'s parameters move to ``decay`` x theirs + (1 - decay) x ``net``'s; buffers (spectral norm's
    vectors) are copied."""
    for a, p in zip(avg.parameters(), net.parameters()):
        a.lerp_(p.detach(), 1.0 - decay)
    for a, b in zip(avg.buffers(), net.buffers()):
        a.copy_(b)


def _step_seed(seed: int, *parts: int) -> int:
    """A 63-bit seed from the run seed and counters, distinct for distinct counters."""
    s = seed & 0xFFFFFFFF
    for p in parts:
        s = (s * 1_000_003 + p + 1) % (2**63 - 1)
    return s


def validation_indices(n: int, val_windows: int) -> np.ndarray:
    """The held-out windows validation scores: ``val_windows`` of the ``n``, evenly spaced, fixed."""
    return np.unique(np.linspace(0, n - 1, min(val_windows, n)).round().astype(int))


def d_logits(real: Any, fake: Any) -> torch.Tensor:
    """D's outputs on real frames and on predictions -> per window (B, 4): the global logit on the real
    frame and on the prediction, then the mean per-pixel logit on each."""
    mean_pixel = (real.pixel_logits.mean((1, 2, 3)), fake.pixel_logits.mean((1, 2, 3)))
    return torch.stack([real.logit, fake.logit, *mean_pixel], 1).double()


def d_aucs(logits: np.ndarray) -> tuple[float, float]:
    """How well D ranks real frames above predictions, from ``d_logits`` rows (N, 4).

    The AUROC of its global logit and of its mean per-pixel logit: 0.5 is chance, 1 every real frame
    above every prediction. Unlike the accuracy at logit 0, an offset of all logits does not hide it.
    """
    truth = np.r_[np.ones(len(logits)), np.zeros(len(logits))]
    return tuple(float(roc_auc_score(truth, np.r_[logits[:, i], logits[:, i + 1]])) for i in (0, 2))


class StepBatchSampler(torch.utils.data.Sampler):
    """Index batches for global steps ``start..stop-1``; batch k depends only on (seed, k).

    Each pass over the data uses a fresh permutation seeded by (seed, pass); the global batch of
    ``batch_size * world`` windows is split into one slice per rank. Windows left over at the end of a pass
    are skipped, as with ``drop_last``.
    """

    def __init__(
        self, n: int, batch_size: int, seed: int, start: int, stop: int, rank: int = 0, world: int = 1
    ):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start, self.stop, self.rank, self.world = start, stop, rank, world
        self.steps_per_pass = n // (batch_size * world)
        if self.steps_per_pass < 1:
            raise StvadError(
                f"{n} training windows are fewer than one batch of {batch_size} x {world} device(s); "
                "lower train.batch_size or add training video"
            )

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)

    def __iter__(self) -> Iterator[list[int]]:
        gb = self.batch_size * self.world
        perm_pass, perm = -1, torch.empty(0, dtype=torch.long)
        for step in range(self.start, self.stop):
            k_pass, k = divmod(step, self.steps_per_pass)
            if k_pass != perm_pass:
                rng = torch.Generator().manual_seed(_step_seed(self.seed, k_pass))
                perm_pass, perm = k_pass, torch.randperm(self.n, generator=rng)
            batch = perm[k * gb : (k + 1) * gb]
            yield batch[self.rank * self.batch_size : (self.rank + 1) * self.batch_size].tolist()


class GANModule(pl.LightningModule):
    """G and D with the training step, validation metrics and what the checkpoints carry."""

    def __init__(self, cfg: Config, meta: dict[str, Any] | None = None):
        super().__init__()
        self.cfg = cfg
        self.G = build_generator(cfg)
        self.D = build_discriminator(cfg)
        # train.g_ema: the average of G's weights, a submodule so that checkpoints carry it (G_ema.*)
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False) if cfg.train.g_ema > 0 else None
        self.automatic_optimization = False
        self.meta = dict(meta or {})
        self.steps_done = 0
        self.best = {"val_psnr": -math.inf, "step": 0}
        self.last_val: dict[str, float] = {}
        self.train_set: torch.utils.data.Dataset | None = None
        self.val_set: torch.utils.data.Dataset | None = None
        self.stop_message = ""  # where the last good checkpoint is, for the divergence error
        self._val_sums = torch.zeros(5)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return list(optimisers(self.G, self.D, self.cfg.train))

    # --- data -----------------------------------------------------------------------------------------
    def train_dataloader(self) -> torch.utils.data.DataLoader:
        tc = self.cfg.train
        stop = min((self.steps_done // tc.val_every + 1) * tc.val_every, tc.max_steps)
        sampler = StepBatchSampler(
            len(self.train_set), tc.batch_size, tc.seed, self.steps_done, stop,
            self.trainer.global_rank, self.trainer.world_size,
        )  # fmt: skip
        return torch.utils.data.DataLoader(
            self.train_set, batch_sampler=sampler, num_workers=tc.num_workers, pin_memory=self.on_gpu
        )

    def val_dataloader(self) -> torch.utils.data.DataLoader:
        """A fixed, evenly spaced subset of the held-out windows, split across ranks without padding."""
        n = len(self.val_set)
        idx = validation_indices(n, self.cfg.train.val_windows)
        shard = idx[self.trainer.global_rank :: self.trainer.world_size].tolist()
        if not shard:
            raise StvadError(
                f"{len(idx)} validation windows cannot be shared by {self.trainer.world_size} devices; "
                "raise train.val_windows or data.val_fraction"
            )
        subset = torch.utils.data.Subset(self.val_set, shard)
        return torch.utils.data.DataLoader(subset, batch_size=self.cfg.train.batch_size, shuffle=False)

    # --- training -------------------------------------------------------------------------------------
    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        x, y, *ahead = batch
        step = self.steps_done + 1
        opt_g, opt_d = self.optimizers()
        rng = torch.Generator().manual_seed(_step_seed(self.cfg.train.seed, step, self.global_rank))
        logs = gan_step(
            self.G, self.D, opt_g, opt_d, x, y, self.cfg.train, step, rng,
            backward=self.manual_backward, check=lambda name, loss: self._check_finite(name, loss, step),
            ahead=ahead[0] if ahead else None,
        )  # fmt: skip
        self.steps_done = step
        if self.G_ema is not None:
            update_ema(self.G_ema, self.G, min(self.cfg.train.g_ema, (1 + step) / (10 + step)))
        shown = ("loss_d", "loss_g", "recon")
        for k, v in logs.items():
            self.log(k, v, prog_bar=k in shown, on_step=True, on_epoch=False, batch_size=x.shape[0])
        if step >= self.cfg.train.max_steps:
            self.trainer.should_stop = True

    def _check_finite(self, name: str, loss: torch.Tensor, step: int) -> None:
        bad = (~torch.isfinite(loss.detach())).float()
        if self.trainer.world_size > 1:  # every rank must stop together or the others wait forever
            bad = self.trainer.strategy.reduce(bad, reduce_op="sum")
        if bad.item() > 0:
            raise StvadError(
                f"training diverged: the {name} loss is {loss.item()} at step {step} of "
                f"{self.cfg.train.max_steps}; stopped, {self.stop_message}"
            )

    # --- validation -----------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val_sums = torch.zeros(5, dtype=torch.float64, device=self.device)
        self._val_logits: list[torch.Tensor] = []

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        pred = (self.G if self.G_ema is None else self.G_ema)(x)  # the generator that is scored
        real, fake = self.D(y, x), self.D(pred, x)
        correct = (real.logit > 0).sum() + (fake.logit < 0).sum()
        pix = (real.pixel_logits > 0).float().flatten(1).mean(1).sum() + (
            fake.pixel_logits < 0
        ).float().flatten(1).mean(1).sum()
        self._val_sums += torch.stack(
            [psnr(pred, y).sum(), psnr(x[:, -1], y).sum(), correct, pix, torch.tensor(float(len(y)))]
        ).double()
        self._val_logits.append(d_logits(real, fake))

    def _gathered_d_logits(self) -> np.ndarray:
        """Every rank's ``d_logits`` rows of this validation, each window once."""
        local = torch.cat(self._val_logits) if self._val_logits else torch.zeros(0, 4, dtype=torch.float64)
        m = len(local)
        if self.trainer.world_size > 1:  # shards differ by at most one window: pad, gather, drop the padding
            size = torch.tensor([m], device=self.device)
            m = int(self.trainer.strategy.reduce(size, reduce_op="max").item())
        padded = torch.full((m, 4), float("nan"), dtype=torch.float64, device=self.device)
        padded[: len(local)] = local.to(self.device)
        got = self.trainer.strategy.all_gather(padded).reshape(-1, 4).cpu()
        return got[~torch.isnan(got[:, 0])].numpy()

    def on_validation_epoch_end(self) -> None:
        # per-sample sums and the true count, summed over ranks: no padded sample is counted
        sums = self.trainer.strategy.reduce(self._val_sums, reduce_op="sum")
        psnr_sum, copy_sum, correct, pix, n = sums.tolist()
        self.last_val = {
            "val_psnr": psnr_sum / n,
            "val_psnr_copy_last": copy_sum / n,  # the floor: predicting a frame as the previous one
            "val_d_acc": correct / (2 * n),
            "val_d_pixel_acc": pix / (2 * n),
            **dict(zip(("val_d_auc", "val_d_pixel_auc"), d_aucs(self._gathered_d_logits()))),
            "val_windows": int(n),
        }
        for k, v in self.last_val.items():
            self.log(k, float(v), prog_bar=k == "val_psnr", sync_dist=False)

    # --- checkpoints ----------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["stvad"] = {
            "config": self.cfg.to_dict(),
            "step": self.steps_done,
            "best": dict(self.best),
            "val": dict(self.last_val),
            "meta": self.meta,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["stvad"]
        self.steps_done = int(state["step"])
        self.best = dict(state["best"])
        self.last_val = dict(state["val"])


class RunCheckpoints(pl.Callback):
    """After each validation: best.ckpt when val PSNR improved, then last.ckpt (always)."""

    def __init__(self, folder: Path):
        self.folder = folder

    def on_validation_end(self, trainer: pl.Trainer, module: GANModule) -> None:
        if trainer.sanity_checking:
            return
        val = module.last_val.get("val_psnr", math.nan)
        if val > module.best["val_psnr"]:
            module.best = {"val_psnr": val, "step": module.steps_done}
            trainer.save_checkpoint(self.folder / "best.ckpt", weights_only=False)
        trainer.save_checkpoint(self.folder / "last.ckpt", weights_only=False)
        module.stop_message = (
            f"the last good checkpoint (step {module.steps_done}) is {self.folder / 'last.ckpt'}"
        )


class StepProgress(pl.Callback):
    """One progress bar over all training steps (of the whole run, a resumed one included), with the time
    left, the latest losses and the last validation; Lightning's own bar counts validation intervals."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    @rank_zero_only
    def on_train_start(self, trainer: pl.Trainer, module: GANModule) -> None:
        tc = module.cfg.train
        self.bar = tqdm(total=tc.max_steps, initial=module.steps_done, unit="step", desc="training")

    @rank_zero_only
    def on_train_batch_end(self, trainer: pl.Trainer, module: GANModule, *args: Any) -> None:
        if self.bar is None:
            return
        self.bar.update(module.steps_done - self.bar.n)
        logged = trainer.callback_metrics
        shown = {k: f"{float(logged[k]):.3g}" for k in ("loss_d", "loss_g") if k in logged}
        val = module.last_val
        if val:
            shown["val_psnr"] = f"{val['val_psnr']:.2f}"
            shown["copy_last"] = f"{val['val_psnr_copy_last']:.2f}"
            shown["d_auc"] = f"{val['val_d_pixel_auc']:.2f}"
        self.bar.set_postfix(shown, refresh=False)

    @rank_zero_only
    def on_train_end(self, trainer: pl.Trainer, module: GANModule) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_exception(self, trainer: pl.Trainer, module: GANModule, exception: BaseException) -> None:
        self.on_train_end(trainer, module)  # end the bar's line, so an error prints on a line of its own


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, but through a temporary file and a rename (stvad._io)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        atomic_torch_save(path, checkpoint)


def _strategy(strategy: str) -> str:
    # G's parameters get no gradient in the D step and D's none in the G step: DDP must be told
    return {
        "ddp": "ddp_find_unused_parameters_true",
        "ddp_spawn": "ddp_spawn_find_unused_parameters_true",
    }.get(strategy, strategy)


def _devices(devices: str | int) -> str | int:
    s = str(devices)
    return int(s) if s.isdigit() else s


def _validate(cfg: Config) -> None:
    d, m, t = cfg.data, cfg.model, cfg.train
    depth = max(m.g_depth, m.d_depth)
    if min(d.size) < 1 or d.size[0] % 2**depth or d.size[1] % 2**depth:
        raise StvadError(f"data.size {d.size} must be divisible by 2^depth = {2**depth}", "config")
    if d.channels not in (1, 3):
        raise StvadError(f"data.channels must be 1 or 3, got {d.channels}", "config")
    if not 0.0 < d.val_fraction < 1.0:
        raise StvadError(
            "data.val_fraction must be in (0, 1): checkpoints are chosen on held-out normal video", "config"
        )
    for key in ("T", "train_stride"):
        if getattr(d, key) < 1:
            raise StvadError(f"data.{key} must be at least 1", "config")
    for key in ("max_steps", "batch_size", "val_every", "val_windows", "log_every"):
        if getattr(t, key) < 1:
            raise StvadError(f"train.{key} must be at least 1", "config")
    if min(m.g_width, m.d_width, m.g_depth, m.d_depth, m.lstm_layers, m.lstm_kernel) < 1:
        raise StvadError("model widths, depths, lstm_layers and lstm_kernel must be at least 1", "config")
    if m.lstm_kernel % 2 == 0:
        raise StvadError(f"model.lstm_kernel must be odd, got {m.lstm_kernel}", "config")
    if t.pseudo_skip < 0 or (t.pseudo_skip and (not m.d_context or m.arch != "stgan")):
        raise StvadError(
            "train.pseudo_skip needs the stgan D seeing the past (model.d_context > 0), and must be >= 0",
            "config",
        )
    if m.d_map_head != "none" and not t.pseudo_skip:
        raise StvadError(
            "model.d_map_head learns only from pseudo-anomalies: set train.pseudo_skip (e.g. 3) or drop it",
            "config",
        )


def _resume_config(saved: Config, given: Config | None, run: Path) -> Config:
    if given is None:
        return saved
    changed = config_changes(saved, given, RESUMABLE_KEYS)
    if changed:
        detail = ", ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in changed)
        raise StvadError(
            f"cannot resume with a different config ({detail}); only {', '.join(RESUMABLE_KEYS)} may change",
            run / "config.json",
        )
    out, wanted = Config.from_dict(saved.to_dict()), flat_config(given)
    for k in RESUMABLE_KEYS:
        out.set(k, wanted[k])
    return out


class CSVLog(Logger):
    """metrics.csv in the run folder, rewritten atomically (at most every few seconds and at the end).

    ``step`` is the number of training steps completed when the row was logged. A resumed run keeps the
    rows up to the step of its checkpoint and logs the steps it trains again anew. Lightning's CSVLogger
    does neither: it appends in place (a kill mid-write leaves a torn file) and, resumed, keeps the rows
    logged after the checkpoint, so the steps trained again would appear twice (tests/test_train.py's
    resume test checks that they are replaced).
    """

    def __init__(self, path: Path, keep_until: int | None = None, every_s: float = 5.0):
        super().__init__()
        self.path, self.every_s = path, every_s
        self.rows: list[dict[str, Any]] = []
        if keep_until is not None and path.exists():
            with open(path, newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if r.get("step") and int(r["step"]) <= keep_until]
        self._last_write = -math.inf
        self._dirty = False

    @property
    def name(self) -> str:
        return "csv"

    @property
    def version(self) -> str:
        return ""

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """The config is in config.json and in every checkpoint."""

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        values = {k: float(v.item() if torch.is_tensor(v) else v) for k, v in metrics.items()}
        self.rows.append({"step": (step or 0) + 1, **values})
        self._dirty = True

    @rank_zero_only
    def save(self) -> None:
        if self._dirty and time.monotonic() - self._last_write >= self.every_s:
            self._write()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._dirty:
            self._write()

    def _write(self) -> None:
        keys = sorted({k for r in self.rows for k in r} - {"step"})
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["step", *keys])
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue())
        self._last_write, self._dirty = time.monotonic(), False


def _clip_names(clips: list) -> list[list]:
    return [[getattr(src, "name", str(src)), int(a), int(b)] for src, a, b in clips]


def train(
    data_root: str | os.PathLike,
    out: str | os.PathLike,
    cfg: Config | None = None,
    resume: bool = False,
    devices: str | int = "1",
    strategy: str = "auto",
    accelerator: str = "auto",
    progress: bool = True,
) -> Path:
    """Train on the normal training videos under ``data_root``; returns the run folder ``out``.

    The run folder holds config.json, checkpoints/{best,last}.ckpt and metrics.csv. ``resume`` continues
    from checkpoints/last.ckpt with the saved config (``train.max_steps`` may be raised to train longer).
    """
    from stvad.data.layouts import open_dataset
    from stvad.data.windows import WindowDataset, split_train_val

    run = Path(out)
    ckpt_dir = run / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    rank_zero = rank_zero_only.rank == 0
    if rank_zero:
        check_writable(run, folder=True)
    if resume:
        if not last.exists():
            raise StvadError("nothing to resume: no checkpoints/last.ckpt in this run folder", run)
        state = read_checkpoint(last)["stvad"]
        saved = Config.from_dict(state["config"], source=str(last))
        cfg = _resume_config(saved, cfg, run)
        start_step = int(state["step"])
    else:
        if rank_zero and ((run / "config.json").exists() or ckpt_dir.exists()):
            raise StvadError(
                "this folder already holds a run: pass --resume to continue it or choose another --out", run
            )
        cfg = cfg if cfg is not None else preset("cpu")
        start_step = 0
    _validate(cfg)

    pl.seed_everything(cfg.train.seed, workers=True, verbose=False)
    ds = open_dataset(data_root, layout=cfg.data.layout)
    if not ds.train:
        raise StvadError("no training videos found", data_root)
    d = cfg.data
    train_clips, val_clips = split_train_val(ds.train, d.val_fraction, d.T)
    module = GANModule(
        cfg,
        meta={
            "data_root": str(Path(data_root).resolve()),
            "layout": ds.layout,
            "train_clips": _clip_names(train_clips),
            "val_clips": _clip_names(val_clips),
            "stvad_version": __version__,
            "torch_version": str(torch.__version__),
        },
    )
    module.train_set = WindowDataset(
        train_clips, d.T, d.size, d.channels, d.train_stride, ahead=cfg.train.pseudo_skip
    )
    module.val_set = WindowDataset(val_clips, d.T, d.size, d.channels, 1)
    module.meta.update(train_windows=len(module.train_set), val_windows=len(module.val_set))
    if rank_zero:
        run.mkdir(parents=True, exist_ok=True)
        # a run killed mid-write (SIGKILL, power cut) leaves that write's temporary file (stvad._io) behind
        for leftover in [*run.glob(".*.tmp"), *ckpt_dir.glob(".*.tmp")]:
            leftover.unlink(missing_ok=True)
        atomic_write_json(run / "config.json", cfg.to_dict())
    if start_step >= cfg.train.max_steps:
        return _fit_motion(run) if rank_zero else run

    loggers: list[Any] = [CSVLog(run / "metrics.csv", keep_until=start_step if resume else None)]
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        loggers.append(TensorBoardLogger(run, name="", version="tensorboard"))
    cuda = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if cuda:  # TF32 tensor cores for matmuls (attention, ConvLSTM gates); convolutions use them already
        torch.set_float32_matmul_precision("high")
    # Lightning's start-up lines (devices, a logging-service tip, the model summary) say nothing a user of
    # this loop acts on; our own bar and the end-of-training summary say what matters
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with warnings.catch_warnings():
        # validation metrics are all-reduced by hand (on_validation_epoch_end), hence no sync_dist; an
        # "epoch" is a validation interval here, so Lightning's per-epoch logging advice does not apply; the
        # LeafSpec deprecation is inside Lightning itself
        quiet = (
            ".*does not have many workers.*",
            ".*`max_epochs` was not set.*",
            ".*sync_dist=True.*",
            ".*LeafSpec.*",
            ".*smaller than the logging interval.*",
        )
        for pattern in quiet:
            warnings.filterwarnings("ignore", message=pattern)
        trainer = pl.Trainer(
            default_root_dir=run,
            accelerator=accelerator,
            devices=_devices(devices),
            strategy=_strategy(strategy),
            max_epochs=-1,
            num_sanity_val_steps=0,
            reload_dataloaders_every_n_epochs=1,
            use_distributed_sampler=False,
            logger=loggers,
            callbacks=[RunCheckpoints(ckpt_dir), *([StepProgress()] if progress else [])],
            enable_checkpointing=False,
            plugins=[AtomicCheckpointIO()],
            deterministic=not cuda,
            log_every_n_steps=cfg.train.log_every,
            enable_progress_bar=False,
            enable_model_summary=False,
            precision=cfg.train.precision,
        )
        module.meta["world_size"] = trainer.world_size
        module.stop_message = (
            f"the last good checkpoint (step {start_step}) is {last}"
            if resume
            else "no checkpoint was written yet"
        )
        try:
            trainer.fit(module, ckpt_path=last if resume else None, weights_only=True)
        except SystemExit:
            # Lightning turns Ctrl-C into sys.exit(1) after its graceful shutdown; the CLI reports it
            if trainer.interrupted:
                hint = "; continue with --resume" if last.exists() else ""
                raise KeyboardInterrupt(module.stop_message + hint) from None
            raise
    return _fit_motion(run) if rank_zero else run


def _fit_motion(run: Path) -> Path:
    """The run's motion model (stvad.motion), fitted where it is missing: the flow prior of the training
    clips and the standardisers of the best checkpoint's scoring on the held-out ones."""
    from stvad.calibration import fit_motion

    fit_motion(run)
    return run
