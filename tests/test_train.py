"""Training runs end to end on a tiny fake benchmark: run folder, reproducibility, resume, DDP, divergence,
and checkpoint loading that refuses code."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import stvad.train as train_mod
from stvad.checkpoint import load_run, read_checkpoint
from stvad.config import preset
from stvad.errors import StvadError
from stvad.scoring import psnr
from stvad.train import StepBatchSampler, train

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FFP layout, two normal training videos of a bright square walking right over a textured floor."""
    root = tmp_path_factory.mktemp("bench")
    rng = np.random.default_rng(0)
    floor = rng.integers(30, 90, (40, 40), dtype=np.uint8)
    for v in range(2):
        folder = root / "training" / "frames" / f"{v + 1:02d}"
        folder.mkdir(parents=True)
        for t in range(20):
            img = floor.copy()
            x = (2 * t + 9 * v) % 30
            img[12 + 8 * v : 20 + 8 * v, x : x + 8] = 230
            assert cv2.imwrite(str(folder / f"{t:03d}.png"), img)
    return root


def tiny(**train_fields) -> object:
    cfg = preset("tiny")
    cfg.train.log_every = 1
    cfg.data.val_fraction = 0.35  # 7 held-out frames per video: 3 validation windows each
    for k, v in train_fields.items():
        setattr(cfg.train, k, v)
    return cfg


def run_tiny(data: Path, out: Path, cfg=None, **kw) -> Path:
    return train(data, out, cfg if cfg is not None else tiny(), accelerator="cpu", progress=False, **kw)


def losses(run: Path) -> list[tuple]:
    with open(run / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("loss_g")]
    return [(int(r["step"]), float(r["loss_g"]), float(r["loss_d"])) for r in rows]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["state_dict"]


def validation_windows(data: Path, loaded) -> tuple[torch.Tensor, torch.Tensor]:
    """The windows (past, next frame) a run's validation scores."""
    from stvad.data.layouts import open_dataset
    from stvad.data.windows import WindowDataset, split_train_val

    d = loaded.config.data
    val = WindowDataset(
        split_train_val(open_dataset(data).train, d.val_fraction, d.T)[1], d.T, d.size, d.channels
    )
    idx = train_mod.validation_indices(len(val), loaded.config.train.val_windows)
    return torch.stack([val[i][0] for i in idx]), torch.stack([val[i][1] for i in idx])


def held_out_d_aucs(data: Path, run: Path) -> tuple[float, float]:
    """D's real-vs-prediction AUROCs (global logit, mean pixel logit) on the run's validation windows,
    recomputed here from the last checkpoint, which is saved right after the last validation."""
    from sklearn.metrics import roc_auc_score

    loaded = load_run(run, "last")
    x, y = validation_windows(data, loaded)
    with torch.no_grad():
        real, fake = loaded.discriminator(y, x), loaded.discriminator(loaded.generator(x), x)
    truth = np.r_[np.ones(len(x)), np.zeros(len(x))]
    return (
        roc_auc_score(truth, torch.cat([real.logit, fake.logit]).numpy()),
        roc_auc_score(truth, torch.cat([real.pixel_logits, fake.pixel_logits]).mean((1, 2, 3)).numpy()),
    )


def test_run_folder_checkpoints_and_load_run(bench: Path, tmp_path: Path) -> None:
    run = run_tiny(bench, tmp_path / "run")
    assert (run / "config.json").is_file()
    assert (run / "metrics.csv").is_file()
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"best.ckpt", "last.ckpt"}
    cfg = tiny()
    loaded = load_run(run, which="last")
    assert loaded.config.to_dict() == cfg.to_dict()
    assert loaded.meta["step"] == cfg.train.max_steps
    assert loaded.meta["layout"] == "ffp"
    assert loaded.meta["val"]["val_windows"] == cfg.train.val_windows
    got = loaded.meta["val"]["val_d_auc"], loaded.meta["val"]["val_d_pixel_auc"]
    assert got == pytest.approx(held_out_d_aucs(bench, run), abs=1e-6)
    assert not loaded.generator.training and not loaded.discriminator.training
    best = load_run(run)  # best = highest validation PSNR, from validations at steps 2 and 4
    assert best.meta["best"]["step"] in (2, 4)
    assert best.meta["best"]["val_psnr"] == pytest.approx(best.meta["val"]["val_psnr"])
    x = torch.zeros(1, 4, 1, 32, 32)
    with torch.no_grad():
        assert loaded.generator(x).shape == (1, 1, 32, 32)
        assert loaded.discriminator(loaded.generator(x)).pixel_logits.shape == (1, 1, 32, 32)
    # training moved the weights away from their initial values
    fresh = train_mod.GANModule(cfg)
    assert any(
        not torch.equal(a, b)
        for a, b in zip(fresh.G.state_dict().values(), loaded.generator.state_dict().values())
    )
    rows = losses(run)
    assert [r[0] for r in rows] == [1, 2, 3, 4]
    assert all(np.isfinite(r[1]) and np.isfinite(r[2]) for r in rows)


@pytest.mark.parametrize("g_ema", [0.0, 0.9])
def test_same_seed_same_losses_and_interrupted_resume_same_weights(
    bench: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, g_ema: float
) -> None:
    a = run_tiny(bench, tmp_path / "a", tiny(g_ema=g_ema))
    b = run_tiny(bench, tmp_path / "b", tiny(g_ema=g_ema))
    assert losses(a) == losses(b)

    # interrupt run c during its third step (after the checkpoint of step 2), then resume it
    original = train_mod.GANModule.training_step

    def crash_at_step_3(self, batch, batch_idx):
        if self.steps_done == 2:
            raise RuntimeError("power cut")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(train_mod.GANModule, "training_step", crash_at_step_3)
    with pytest.raises(RuntimeError, match="power cut"):
        run_tiny(bench, tmp_path / "c", tiny(g_ema=g_ema))
    assert read_checkpoint(tmp_path / "c" / "checkpoints" / "last.ckpt")["stvad"]["step"] == 2
    monkeypatch.setattr(train_mod.GANModule, "training_step", original)
    run_tiny(bench, tmp_path / "c", tiny(g_ema=g_ema), resume=True)

    wa, wc = weights(a / "checkpoints" / "last.ckpt"), weights(tmp_path / "c" / "checkpoints" / "last.ckpt")
    assert wa.keys() == wc.keys()
    assert any(k.startswith("G_ema.") for k in wa) == (g_ema > 0)  # the average is resumed too
    assert all(torch.equal(wa[k], wc[k]) for k in wa)
    assert losses(tmp_path / "c") == losses(
        a
    )  # rows logged after the checkpoint were replaced, not duplicated


@pytest.mark.parametrize(
    "overrides",
    [
        ["train.adversarial=false"],
        ["train.cutmix=false", "train.cutmix_aug=false"],
        ["train.cutmix=false", "train.cutmix_aug=true", "train.cutmix_prob=1", "train.cutmix_warmup=0"],
        ["train.cutmix=true", "train.cutmix_aug=false", "train.cutmix_prob=1", "train.cutmix_warmup=0"],
        ["model.arch=ffp"],
        ["model.g_spectral_norm=true", "model.g_attention=false", "model.d_attention=false"],
        ["model.g_residual=true", "model.g_skip=false", "model.d_spectral_norm=false"],
        ["model.d_context=2", "train.cutmix_prob=1", "train.cutmix_warmup=0"],
        ["model.d_context=2", "model.d_input=frames", "train.pseudo_skip=3"],
    ],
)
def test_every_term_and_stabiliser_can_be_switched_off(
    bench: Path, tmp_path: Path, overrides: list[str]
) -> None:
    cfg = tiny(max_steps=2).override(overrides)
    run = run_tiny(bench, tmp_path / "run", cfg=cfg)
    with open(run / "metrics.csv", newline="") as f:
        logged = {k for row in csv.DictReader(f) for k, v in row.items() if v}
    t = cfg.train
    assert ("loss_d" in logged) == t.adversarial
    assert ("pseudo" in logged) == bool(t.pseudo_skip)
    always_mix = t.cutmix_prob == 1 and t.cutmix_warmup == 0
    for term, on in (("cons", t.cutmix), ("aug", t.cutmix_aug)):
        if not (t.adversarial and on):
            assert term not in logged
        elif always_mix:
            assert term in logged
    loaded = load_run(run, "last")
    if not t.adversarial:  # D is never stepped: it keeps its initial weights
        torch.manual_seed(cfg.train.seed)
        init = train_mod.GANModule(cfg).D.state_dict()
        assert all(torch.equal(init[k], v) for k, v in loaded.discriminator.state_dict().items())


def test_resume_can_extend_but_not_change_the_config(bench: Path, tmp_path: Path) -> None:
    run = run_tiny(bench, tmp_path / "run", cfg=tiny(max_steps=2))
    with pytest.raises(StvadError, match="already holds a run"):
        run_tiny(bench, run)
    with pytest.raises(StvadError, match="train.lr_g"):
        run_tiny(bench, run, cfg=tiny(max_steps=4, lr_g=1.0), resume=True)
    run_tiny(bench, run, cfg=tiny(max_steps=4), resume=True)
    assert load_run(run, "last").meta["step"] == 4
    with pytest.raises(StvadError, match="nothing to resume"):
        run_tiny(bench, tmp_path / "empty", resume=True)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint(
    bench: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = train_mod.recon_loss
    calls = {"n": 0}

    def nan_on_third_step(*args, **kwargs):
        calls["n"] += 1
        loss = original(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(train_mod, "recon_loss", nan_on_third_step)
    run = tmp_path / "run"
    with pytest.raises(StvadError, match=r"G loss is nan at step 3 of 4.*step 2"):
        run_tiny(bench, run)
    loaded = load_run(run, which="last")
    assert loaded.meta["step"] == 2
    assert all(torch.isfinite(p).all() for p in loaded.generator.parameters())


def test_load_run_refuses_a_checkpoint_that_would_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "run" / "checkpoints" / "best.ckpt"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": {}, "stvad": Evil()}, path)
    with pytest.raises(StvadError, match="refusing to load") as e:
        load_run(tmp_path / "run")
    assert e.value.path == str(path)
    assert not marker.exists()


def test_load_run_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(StvadError, match="run folder not found"):
        load_run(tmp_path / "missing")
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    with pytest.raises(StvadError, match="no best checkpoint"):
        load_run(tmp_path / "run")
    bad = tmp_path / "run" / "checkpoints" / "last.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(StvadError, match="not a readable checkpoint"):
        load_run(tmp_path / "run", "last")


def test_step_batches_depend_only_on_seed_and_step() -> None:
    whole = list(StepBatchSampler(10, 2, seed=3, start=0, stop=12))
    assert len(whole) == 12
    assert list(StepBatchSampler(10, 2, seed=3, start=5, stop=12)) == whole[5:]
    assert sorted(i for b in whole[:5] for i in b) == list(range(10))  # one pass = a permutation
    assert whole[:5] != whole[5:10]  # a fresh permutation per pass
    # two ranks split each global batch of 2 x 2 without overlap
    r0 = list(StepBatchSampler(10, 2, seed=3, start=0, stop=4, rank=0, world=2))
    r1 = list(StepBatchSampler(10, 2, seed=3, start=0, stop=4, rank=1, world=2))
    for b0, b1 in zip(r0, r1):
        assert len(b0) == len(b1) == 2 and not set(b0) & set(b1)
    with pytest.raises(StvadError, match="fewer than one batch"):
        StepBatchSampler(3, 2, seed=0, start=0, stop=1, world=2)


def test_two_steps_under_ddp_with_two_cpu_processes(bench: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    cmd = [
        sys.executable, "-m", "stvad.cli", "train", str(bench), "--out", str(run), "--preset", "tiny",
        "--set", "train.max_steps=2", "--set", "train.val_windows=3", "--set", "data.val_fraction=0.35",
        "--devices", "2", "--strategy", "ddp", "--accelerator", "cpu",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = load_run(run, "last")
    assert loaded.meta["world_size"] == 2
    assert loaded.meta["step"] == 2
    # 3 validation windows over 2 ranks: 2 + 1, counted once each (a padding sampler would count 4)
    assert loaded.meta["val"]["val_windows"] == 3
    # D's AUROCs are over the windows of both ranks, each once
    got = loaded.meta["val"]["val_d_auc"], loaded.meta["val"]["val_d_pixel_auc"]
    assert got == pytest.approx(held_out_d_aucs(bench, run), abs=1e-6)


def test_ttur_two_adam_optimisers_with_their_own_rates_and_betas() -> None:
    cfg = tiny().override(
        ["train.lr_g=1e-4", "train.lr_d=4e-4", "train.betas_g=0.5,0.99", "train.betas_d=0,0.9"]
    )
    module = train_mod.GANModule(cfg)
    opt_g, opt_d = module.configure_optimizers()
    assert isinstance(opt_g, torch.optim.Adam) and isinstance(opt_d, torch.optim.Adam)
    assert opt_g.param_groups[0]["lr"] == 1e-4 and opt_g.param_groups[0]["betas"] == (0.5, 0.99)
    assert opt_d.param_groups[0]["lr"] == 4e-4 and opt_d.param_groups[0]["betas"] == (0.0, 0.9)
    assert {id(p) for p in opt_g.param_groups[0]["params"]} == {id(p) for p in module.G.parameters()}
    assert {id(p) for p in opt_d.param_groups[0]["params"]} == {id(p) for p in module.D.parameters()}


def test_update_ema_moves_the_average_toward_the_weights_and_copies_buffers() -> None:
    net, avg = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        net.weight.fill_(2.0)
        avg.weight.fill_(0.0)
        net.running_mean.fill_(5.0)
    train_mod.update_ema(avg, net, 0.75)
    assert torch.allclose(avg.weight, torch.full((3,), 0.5))  # 0.75 * 0 + 0.25 * 2
    assert torch.equal(avg.running_mean, net.running_mean)


def test_a_run_with_g_ema_is_validated_and_scored_with_the_average_of_g(bench: Path, tmp_path: Path) -> None:
    run = run_tiny(bench, tmp_path / "ema", tiny(g_ema=0.9))
    state = weights(run / "checkpoints" / "last.ckpt")
    raw = {k[2:]: v for k, v in state.items() if k.startswith("G.")}
    avg = {k[6:]: v for k, v in state.items() if k.startswith("G_ema.")}
    assert raw.keys() == avg.keys()
    assert any(not torch.equal(raw[k], avg[k]) for k in raw)  # the average lags the trained weights
    loaded = load_run(run, "last")
    got = loaded.generator.state_dict()
    assert all(torch.equal(got[k], avg[k]) for k in avg)  # load_run gives the average
    # the validation that the checkpoint records scored the average: recomputed from it, the PSNR agrees,
    # and not from the trained weights
    x, y = validation_windows(bench, loaded)
    with torch.no_grad():
        assert loaded.meta["val"]["val_psnr"] == pytest.approx(psnr(loaded.generator(x), y).mean().item())
        loaded.generator.load_state_dict(raw)
        assert loaded.meta["val"]["val_psnr"] != pytest.approx(psnr(loaded.generator(x), y).mean().item())
    # without it the checkpoint holds G alone, as before
    plain = weights(run_tiny(bench, tmp_path / "plain") / "checkpoints" / "last.ckpt")
    assert not any(k.startswith("G_ema.") for k in plain)


@pytest.mark.parametrize(
    ("aucs", "said"), [((0.0, 0.02), "above real frames"), ((0.5, 0.52), "near chance"), ((0.6, 0.97), None)]
)
def test_training_summary_tells_an_inverted_discriminator_from_one_at_chance(
    bench: Path, tmp_path: Path, aucs: tuple[float, float], said: str | None
) -> None:
    from stvad.checkpoint import training_summary

    run = run_tiny(bench, tmp_path / "run")
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    last = max(i for i, r in enumerate(rows) if r.get("val_psnr"))
    rows[last]["val_d_auc"], rows[last]["val_d_pixel_auc"] = map(str, aucs)
    with open(run / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    warns = [w for w in training_summary(run)[1] if "discriminator" in w]
    assert (said is None and not warns) or (len(warns) == 1 and said in warns[0])
