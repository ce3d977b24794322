"""The adversarial game takes place: D learns to tell real next frames from G's predictions, and each of
the two updates of a GAN step touches only its own network (docs/discriminator.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from stvad.config import preset
from stvad.model import build_discriminator, build_generator
from stvad.train import gan_step, optimisers

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def squares(n_videos: int, frames: int, size: int = 32, seed: int = 0) -> list[torch.Tensor]:
    """Videos (frames, 1, H, W) in [-1, 1]: bright squares walking at a steady speed over a textured floor."""
    rng = np.random.default_rng(seed)
    floor = rng.uniform(-0.6, -0.2, (size, size))
    out = []
    for _ in range(n_videos):
        y0, x0 = rng.integers(0, size - 8), rng.integers(0, size)
        vx, vy = rng.choice([-2, 2]), rng.choice([-1, 1])
        video = np.repeat(floor[None], frames, 0).copy()
        for t in range(frames):
            x, y = (x0 + vx * t) % (size - 8), (y0 + vy * t) % (size - 8)
            video[t, y : y + 8, x : x + 8] = 0.9
        out.append(torch.from_numpy(video).float().unsqueeze(1))
    return out


def windows(videos: list[torch.Tensor], T: int, ahead: int = 0) -> tuple[torch.Tensor, ...]:
    """Past frames (N, T, 1, H, W) and next frames (N, 1, H, W) of every window; with ``ahead`` = k also the
    frames k after the next (skip-frame pseudo-anomalies), over the windows that have one."""
    ts = [(v, t) for v in videos for t in range(T, len(v) - ahead)]
    out = [torch.stack([v[t - T : t] for v, t in ts]), torch.stack([v[t] for v, t in ts])]
    return (*out, torch.stack([v[t + ahead] for v, t in ts])) if ahead else tuple(out)


def small(name: str, *overrides: str):
    cfg = preset(name).override(["data.size=32,32", "model.g_width=8", "model.d_width=8", *overrides])
    cfg.train.cutmix_warmup = 20
    return cfg


def train_steps(cfg, steps: int) -> tuple[torch.nn.Module, torch.nn.Module, list[float]]:
    torch.manual_seed(0)
    G, D = build_generator(cfg), build_discriminator(cfg)
    tc = cfg.train
    opt_g, opt_d = optimisers(G, D, tc)
    x, y = windows(squares(6, 24), cfg.data.T)
    order = torch.Generator().manual_seed(0)
    loss_d = []
    for step in range(1, steps + 1):
        i = torch.randint(len(x), (8,), generator=order)
        rng = torch.Generator().manual_seed(step)
        logs = gan_step(G, D, opt_g, opt_d, x[i], y[i], tc, step, rng, lambda l: l.backward(), lambda *a: 0)
        if "aug" not in logs:  # steps without a CutMix batch: the four real/fake terms alone
            loss_d.append(float(logs["loss_d"]))
    return G, D, loss_d


def real_vs_fake_auc(D: torch.nn.Module, T: int, fake_of) -> float:
    """AUROC with which D's mean per-pixel logit ranks held-out real next frames y above ``fake_of(x, y)``."""
    x, y = windows(squares(3, 16, seed=1), T)  # videos not seen in training
    D.eval()
    with torch.no_grad():
        real, fake = D(y, x).pixel_logits.mean((1, 2, 3)), D(fake_of(x, y), x).pixel_logits.mean((1, 2, 3))
    truth = np.r_[np.ones(len(y)), np.zeros(len(y))]
    return float(roc_auc_score(truth, torch.cat([real, fake]).numpy()))


def real_vs_predicted_auc(G: torch.nn.Module, D: torch.nn.Module, T: int) -> float:
    """AUROC with which D's mean per-pixel logit ranks held-out real next frames above G's predictions."""
    G.eval()
    return real_vs_fake_auc(D, T, lambda x, y: G(x))


@pytest.mark.parametrize("name", ["cpu", "cpu-paper"])
def test_the_discriminator_learns_in_a_short_training(name: str) -> None:
    """D's loss leaves chance (4 ln 2, all four real/fake terms at ln 2) and D ranks held-out real frames
    above predictions. With the plain D of earlier versions neither happened: its loss stayed at 4 ln 2."""
    cfg = small(name)
    G, D, loss_d = train_steps(cfg, 80)
    away = np.abs(np.array(loss_d) - 4 * math.log(2)) > 0.05
    assert away.mean() > 0.5, f"D's loss sat at 4 ln 2 on {1 - away.mean():.0%} of the steps"
    assert real_vs_predicted_auc(G, D, cfg.data.T) >= 0.75


def test_d_step_changes_no_g_parameter_and_g_step_no_d_parameter() -> None:
    cfg = small("cpu", "train.cutmix_prob=1", "train.cutmix_warmup=0")
    torch.manual_seed(0)
    G, D = build_generator(cfg), build_discriminator(cfg)
    tc = cfg.train
    opt_g, opt_d = optimisers(G, D, tc)

    def snapshot(m: torch.nn.Module) -> list[torch.Tensor]:
        return [p.detach().clone() for p in m.parameters()]

    def same(m: torch.nn.Module, before: list[torch.Tensor]) -> bool:
        return all(torch.equal(p, q) for p, q in zip(m.parameters(), before))

    seen = {}
    d_step, g_step = opt_d.step, opt_g.step

    def checked_d_step(*a, **k):
        g_before, d_before = snapshot(G), snapshot(D)
        assert all(p.grad is None or not p.grad.any() for p in G.parameters())  # no gradient reached G
        d_step(*a, **k)
        seen["d"] = same(G, g_before), not same(D, d_before)

    def checked_g_step(*a, **k):
        g_before, d_before = snapshot(G), snapshot(D)
        g_step(*a, **k)
        seen["g"] = same(D, d_before), not same(G, g_before)

    opt_d.step, opt_g.step = checked_d_step, checked_g_step
    x, y = windows(squares(2, 12), cfg.data.T)
    for step in (1, 2):
        seen.clear()
        opt_g.zero_grad(set_to_none=True)
        gan_step(G, D, opt_g, opt_d, x[:4], y[:4], tc, step, torch.Generator().manual_seed(step),
                 lambda l: l.backward(), lambda *a: None)  # fmt: skip
        assert seen == {"d": (True, True), "g": (True, True)}


def test_skip_frame_pseudo_anomalies_mark_what_moved_too_far() -> None:
    from stvad.losses import pseudo_anomaly_loss, pseudo_anomaly_targets
    from stvad.model import DOutput

    video = squares(1, 12)[0]
    nxt, skipped = video[5:6], video[8:9]  # the next frame and the frame three later, after the same past
    targets = pseudo_anomaly_targets(skipped, nxt, 0.1)
    moved = (skipped - nxt).abs()[:, :1] > 0.1
    assert targets.shape == (1, 1, 32, 32)
    assert (targets[moved] == 0).all() and 0 < (targets == 0).float().mean() < 0.5  # fake only near motion
    assert (pseudo_anomaly_targets(nxt, nxt, 0.1) == 1).all()  # nothing moved: all real
    # D's loss on it is low when D_dec follows the targets and D_enc says fake, high when it says real
    logits = 20 * (targets - 0.5)
    right = pseudo_anomaly_loss(DOutput(torch.tensor([-20.0]), logits, torch.zeros(1)), targets)
    wrong = pseudo_anomaly_loss(DOutput(torch.tensor([20.0]), torch.full_like(logits, 10.0), None), targets)
    assert right < 0.01 < 1 < wrong


def test_a_dataset_with_lookahead_gives_the_frame_k_later_clamped_to_the_clip() -> None:
    from stvad.data.windows import WindowDataset

    class Counter:  # a frame source whose frame i is filled with i
        path, name = "counter", "counter"

        def __len__(self) -> int:
            return 10

        def frames(self, size, channels, start=0, stop=None):
            for i in range(start, stop):
                yield np.full((*size, channels), 20 * i, np.uint8)

    ds = WindowDataset([(Counter(), 0, 10)], T=4, size=(4, 4), channels=1, ahead=3)
    x, y, z = (((t + 1) * 127.5).round() / 20 for t in ds[0])
    assert x[:, 0, 0, 0].tolist() == [0, 1, 2, 3] and y[0, 0, 0] == 4 and z[0, 0, 0] == 7
    x, y, z = (((t + 1) * 127.5).round() / 20 for t in ds[len(ds) - 1])
    assert y[0, 0, 0] == 9 and z[0, 0, 0] == 9  # the clip ends: its last frame


def test_d_gan_is_the_four_real_fake_terms_on_every_step() -> None:
    """logs["d_gan"] (metrics.csv's d_gan) is D's loss without the CutMix terms, so 4 ln 2 in it means
    chance whether or not the step had a CutMix batch."""
    cfg = small("cpu")
    cfg.train.cutmix_warmup, cfg.train.cutmix_prob = 0, 1.0
    torch.manual_seed(0)
    G, D = build_generator(cfg), build_discriminator(cfg)
    tc = cfg.train
    opt_g, opt_d = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    x, y = windows(squares(2, 12), cfg.data.T)
    logs = gan_step(G, D, opt_g, opt_d, x[:4], y[:4], tc, 1, torch.Generator().manual_seed(1),
                    lambda l: l.backward(), lambda *a: None)  # fmt: skip
    assert "aug" in logs and "cons" in logs
    expected = logs["d_gan"] + logs["aug"] + tc.w_cons * logs["cons"]
    assert float(logs["loss_d"]) == pytest.approx(float(expected), rel=1e-6)
    tc.cutmix = tc.cutmix_aug = False
    logs = gan_step(G, D, opt_g, opt_d, x[:4], y[:4], tc, 2, torch.Generator().manual_seed(2),
                    lambda l: l.backward(), lambda *a: None)  # fmt: skip
    assert float(logs["loss_d"]) == float(logs["d_gan"])


def test_d_input_gain_scales_what_the_stem_sees() -> None:
    """model.d_input_gain multiplies D's whole input (frame and differences); 1 leaves D as it was."""
    torch.manual_seed(0)
    D1 = build_discriminator(small("cpu", "model.d_input_gain=1"))
    D10 = build_discriminator(small("cpu", "model.d_input_gain=10"))
    D10.load_state_dict(D1.state_dict())
    D1.eval(), D10.eval()
    x, y = windows(squares(1, 8), 4)
    with torch.no_grad():
        a, b = D10(y, x), D1(10 * y, 10 * x)
    assert torch.allclose(a.logit, b.logit, atol=1e-5)
    assert torch.allclose(a.pixel_logits, b.pixel_logits, atol=1e-5)


def test_input_gain_lets_a_spectrally_normalised_d_see_small_errors() -> None:
    """D trained alone (the cpu preset's optimiser) to tell real next frames from copies whose edges are
    softened a little (a fifth of a 3x3 blur: errors of a few hundredths, as G's predictions have): with
    its input multiplied by 10 it ranks held-out real frames above the copies; at gain 1 its spectrally
    normalised layers cannot tell them apart in the same 80 steps (docs/discriminator.md, section 5)."""
    import torch.nn.functional as F

    from stvad.losses import d_adversarial_loss

    def softened(frames: torch.Tensor) -> torch.Tensor:
        return 0.8 * frames + 0.2 * F.avg_pool2d(frames, 3, 1, 1, count_include_pad=False)

    def auc_after_training(gain: float) -> float:
        cfg = small("cpu", f"model.d_input_gain={gain}")
        torch.manual_seed(0)
        D = build_discriminator(cfg)
        opt = torch.optim.Adam(D.parameters(), lr=cfg.train.lr_d, betas=cfg.train.betas_d)
        x, y = windows(squares(6, 24), cfg.data.T)
        order = torch.Generator().manual_seed(0)
        for _ in range(80):
            i = torch.randint(len(x), (8,), generator=order)
            loss = d_adversarial_loss(D(y[i], x[i]), D(softened(y[i]), x[i]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        return real_vs_fake_auc(D, cfg.data.T, lambda x, y: softened(y))

    plain, gained = auc_after_training(1.0), auc_after_training(10.0)
    assert gained >= 0.9 and plain < 0.8, (plain, gained)


def test_a_separate_map_head_learns_the_pseudo_anomalies_and_g_does_not_read_it() -> None:
    """model.d_map_head: the pseudo-anomaly loss trains the map head and not the real/fake heads; G's
    adversarial loss reads the real/fake heads and not the map head; the score's D map reads the map head.
    A short training with it ranks held-out skip-frame fakes above real next frames by the map."""
    from stvad.errors import StvadError
    from stvad.losses import g_adversarial_loss, pseudo_anomaly_loss, pseudo_anomaly_targets
    from stvad.scoring import discriminator_map
    from stvad.train import _validate

    with pytest.raises(StvadError, match="d_map_head learns only from pseudo-anomalies"):
        _validate(small("cpu", "model.d_map_head=shared"))  # an untrained head would be a random map
    cfg = small("cpu", "train.pseudo_skip=3", "model.d_map_head=shared")
    torch.manual_seed(0)
    G, D = build_generator(cfg), build_discriminator(cfg)
    video = squares(1, 16)[0]
    x, y, z = video[None, 2:6], video[6:7], video[9:10]

    def touched(loss: torch.Tensor) -> dict[str, bool]:
        D.zero_grad(set_to_none=True)
        loss.backward()
        return {n: D.get_submodule(n).weight.grad is not None for n in ("enc_head", "dec_head", "map_head")}

    assert touched(g_adversarial_loss(D(G(x), x))) == {"enc_head": True, "dec_head": True, "map_head": False}
    pseudo = pseudo_anomaly_loss(D(z, x), pseudo_anomaly_targets(z, y, 0.1), D(y, x))
    assert touched(pseudo) == {"enc_head": False, "dec_head": False, "map_head": True}
    with torch.no_grad():
        D.map_head.bias.fill_(20.0)  # the map head says "real" everywhere: the D map is 0
        assert discriminator_map(D(y, x)).max() < 1e-6
        D.dec_head.bias.fill_(-20.0)  # the real/fake head's verdict does not reach the map
        assert discriminator_map(D(y, x)).max() < 1e-6

    torch.manual_seed(0)
    D = build_discriminator(cfg)
    tc = cfg.train
    opt_g, opt_d = optimisers(G, D, tc)
    xs, ys, zs = windows(squares(6, 24), cfg.data.T, tc.pseudo_skip)
    order = torch.Generator().manual_seed(0)
    for step in range(1, 61):
        i = torch.randint(len(xs), (8,), generator=order)
        gan_step(G, D, opt_g, opt_d, xs[i], ys[i], tc, step, torch.Generator().manual_seed(step),
                 lambda l: l.backward(), lambda *a: None, ahead=zs[i])  # fmt: skip
    hx, hy, hz = windows(squares(3, 16, seed=1), cfg.data.T, tc.pseudo_skip)  # videos not seen in training
    D.eval()
    with torch.no_grad():
        real, fake = discriminator_map(D(hy, hx)).mean((1, 2)), discriminator_map(D(hz, hx)).mean((1, 2))
    truth = np.r_[np.zeros(len(hy)), np.ones(len(hz))]
    assert roc_auc_score(truth, torch.cat([real, fake]).numpy()) >= 0.8  # 0.13 untrained, 0.93 here


def test_a_probe_map_head_reads_d_detached_so_d_and_g_train_as_without_it() -> None:
    """model.d_map_head=probe: the pseudo-anomaly loss reaches the probe and no layer of D (a shared head's
    reaches D's layers); D's and G's steps give the same weights with and without the probe."""
    from stvad.losses import pseudo_anomaly_loss, pseudo_anomaly_targets

    video = squares(1, 16)[0]
    x, y, z = video[None, 2:6], video[6:7], video[9:10]
    for head, trunk_learns in (("shared", True), ("probe", False)):
        cfg = small("cpu", "train.pseudo_skip=3", f"model.d_map_head={head}")
        torch.manual_seed(0)
        D = build_discriminator(cfg)
        pseudo_anomaly_loss(D(z, x), pseudo_anomaly_targets(z, y, 0.1), D(y, x)).backward()
        grads = {n: p.grad is not None and bool(p.grad.any()) for n, p in D.named_parameters()}
        assert any(v for n, v in grads.items() if n.startswith("map_head."))
        assert any(v for n, v in grads.items() if not n.startswith("map_head.")) == trunk_learns, head

    def two_steps(cfg) -> tuple[torch.nn.Module, torch.nn.Module]:
        torch.manual_seed(0)
        G, D = build_generator(cfg), build_discriminator(cfg)
        tc = cfg.train
        opt_g, opt_d = optimisers(G, D, tc)
        xs, ys = windows(squares(2, 16), cfg.data.T)
        zs = ys.roll(-3, 0)
        for step in (1, 2):
            gan_step(G, D, opt_g, opt_d, xs[:4], ys[:4], tc, step, torch.Generator().manual_seed(step),
                     lambda l: l.backward(), lambda *a: None, ahead=zs[:4])  # fmt: skip
        return G, D

    cfg = small("cpu", "train.cutmix_prob=1", "train.cutmix_warmup=0")
    G0, D0 = two_steps(cfg)
    G1, D1 = two_steps(small("cpu", "train.cutmix_prob=1", "train.cutmix_warmup=0", "train.pseudo_skip=3",
                             "model.d_map_head=probe"))  # fmt: skip
    assert all(torch.equal(p, q) for p, q in zip(G0.parameters(), G1.parameters()))
    trunk = {n: p for n, p in D1.named_parameters() if not n.startswith("map_head.")}
    assert all(torch.equal(p, trunk[n]) for n, p in D0.named_parameters())
