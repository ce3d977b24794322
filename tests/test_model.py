"""Generators and discriminators: shapes, spectral norm and attention as configured, streaming reuse."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stvad.config import preset
from stvad.errors import StvadError
from stvad.model import DOutput, build_discriminator, build_generator, feature_windows
from stvad.model.convlstm import ConvLSTM, ConvLSTMCell
from stvad.model.layers import SelfAttention, has_spectral_norm

CONVS = (nn.Conv2d, nn.ConvTranspose2d)


@pytest.fixture(autouse=True)
def _one_thread():
    # the machine is shared: one thread avoids OpenMP spin contention on these tiny models
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny(arch: str = "stgan", channels: int = 1, **model):
    cfg = preset("tiny")
    cfg.model.arch = arch
    cfg.data.channels = channels
    for k, v in model.items():
        setattr(cfg.model, k, v)
    return cfg


def window(cfg, batch: int = 2) -> torch.Tensor:
    H, W = cfg.data.size
    return (
        torch.rand(batch, cfg.data.T, cfg.data.channels, H, W, generator=torch.Generator().manual_seed(0)) * 2
        - 1
    )


@pytest.mark.parametrize("arch", ["stgan", "ffp"])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes(arch: str, channels: int) -> None:
    cfg = tiny(arch, channels)
    G, D = build_generator(cfg), build_discriminator(cfg)
    x = window(cfg, batch=3)
    y = G(x)
    assert y.shape == (3, channels, 32, 32)
    assert y.abs().max() <= 1.0  # tanh output
    out = D(y)
    assert isinstance(out, DOutput)
    assert out.logit.shape == (3,)
    assert out.pixel_logits.shape == (3, 1, 32, 32)
    assert out.f2.ndim == 4 and out.f2.shape[0] == 3
    assert out.f2.shape[1] > channels and out.f2.shape[2] < 32  # many channels, coarser than the frame


def cfg_depth(arch: str) -> int:
    return tiny(arch).model.d_depth


def test_f2_is_the_second_convolution_of_d_enc() -> None:
    cfg = tiny()
    D = build_discriminator(cfg).eval()  # eval: spectral norm's power iteration stays put between calls
    y = torch.rand(2, 1, 32, 32) * 2 - 1
    lrelu = nn.functional.leaky_relu
    second = lrelu(D.down[0][0](lrelu(D.stem(y), 0.2)), 0.2)
    assert second.shape == (2, cfg.model.d_width * 2, 16, 16)
    assert torch.allclose(D(y).f2, second)


@pytest.mark.parametrize("arch", ["stgan", "ffp"])
def test_features2_equals_the_f2_of_a_full_pass(arch: str) -> None:
    D = build_discriminator(tiny(arch)).eval()
    y = torch.rand(3, 1, 32, 32) * 2 - 1
    assert torch.equal(D.features2(y).f2, D(y).f2)
    with pytest.raises(ValueError, match="not divisible"):
        D.features2(torch.zeros(1, 1, 30, 32))


def test_a_conditioned_d_judges_the_frame_after_its_past() -> None:
    cfg = tiny(d_context=2)
    D = build_discriminator(cfg).eval()
    assert D.stem.in_channels == 3  # two past frames and the judged frame, grey
    past = window(cfg)
    y = torch.rand(2, 1, 32, 32) * 2 - 1
    out = D(y, past)
    assert out.logit.shape == (2,) and out.pixel_logits.shape == (2, 1, 32, 32)
    assert torch.equal(D.features2(y, past).f2, out.f2)
    # it reads the last d_context past frames, not the earlier ones
    older = past.clone()
    older[:, :-2] = 0
    assert torch.equal(D(y, older).pixel_logits, out.pixel_logits)
    moved = past.clone()
    moved[:, -1] = torch.roll(moved[:, -1], 3, dims=-1)
    assert not torch.allclose(D(y, moved).pixel_logits, out.pixel_logits)
    with pytest.raises(ValueError, match="after 2 past frames, got none"):
        D(y)
    with pytest.raises(ValueError, match="after 2 past frames, got 1"):
        D.features2(y, past[:, -1:])


def test_skips_that_carry_every_past_frame_see_the_older_frames() -> None:
    one, every = tiny(g_skip_frames=1), tiny(g_skip_frames=4)
    assert build_generator(every).merge[0].in_channels == 5 * build_generator(one).merge[0].in_channels // 2

    class NoMemory(nn.Module):  # a ConvLSTM that forgets everything: only the skips can carry the past
        def input_gates(self, e: torch.Tensor) -> torch.Tensor:
            return e

        def forward(self, e: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
            return torch.zeros_like(e[:, -1])

    x = window(every)
    older = x.clone()
    older[:, 0] = torch.roll(older[:, 0], 5, dims=-1)  # change only the oldest past frame
    for cfg, sees_it in ((one, False), (every, True)):
        G = build_generator(cfg).eval()
        G.lstm = NoMemory()
        assert torch.allclose(G(older), G(x)) != sees_it
    with pytest.raises(StvadError, match="g_skip_frames must be between 1 and data.T = 4, got 5"):
        build_generator(tiny(g_skip_frames=5))


@pytest.mark.parametrize(("arch", "context"), [("stgan", 5), ("stgan", -1)])
def test_d_context_out_of_range_is_a_clear_error(arch: str, context: int) -> None:
    with pytest.raises(StvadError, match="d_context"):
        build_discriminator(tiny(arch, d_context=context))


def test_the_baseline_patch_d_ignores_what_only_the_unet_d_has() -> None:
    """So that --set model.arch=ffp works on every preset, the default ones with a past-conditioned D too."""
    plain = build_discriminator(tiny("ffp"))
    other = build_discriminator(tiny("ffp", d_context=2, d_input="frames", d_residual=False))
    assert type(plain) is type(other) and plain.state_dict().keys() == other.state_dict().keys()


@pytest.mark.parametrize("arch", ["stgan", "ffp"])
@pytest.mark.parametrize("d_sn", [True, False])
def test_spectral_norm_on_every_d_conv_but_the_last_1x1(arch: str, d_sn: bool) -> None:
    D = build_discriminator(tiny(arch, d_spectral_norm=d_sn))
    heads = [m for m in D.modules() if isinstance(m, CONVS) and not has_spectral_norm(m)]
    normed = [m for m in D.modules() if isinstance(m, CONVS) and has_spectral_norm(m)]
    if d_sn:
        n_heads = 2 if arch == "stgan" else 1  # U-Net D: global and per-pixel heads; patch D: one head
        assert len(heads) == n_heads
        assert all(m.kernel_size == (1, 1) and m.out_channels == 1 for m in heads)
        # U-Net D: stem, 2 per encoder stage, 2 per decoder stage, 3 in attention; patch D: one per stage
        assert len(normed) == (1 + 6 * cfg_depth(arch) + 3 if arch == "stgan" else cfg_depth(arch))
    else:
        assert not normed


@pytest.mark.parametrize("arch", ["stgan", "ffp"])
@pytest.mark.parametrize("g_sn", [True, False])
def test_spectral_norm_in_g_only_when_configured(arch: str, g_sn: bool) -> None:
    G = build_generator(tiny(arch, g_spectral_norm=g_sn))
    convs = [m for m in G.modules() if isinstance(m, CONVS)]
    assert convs
    assert all(has_spectral_norm(m) == g_sn for m in convs)


@pytest.mark.parametrize("g_att", [True, False])
@pytest.mark.parametrize("d_att", [True, False])
def test_attention_present_exactly_when_configured_with_gate_zero(g_att: bool, d_att: bool) -> None:
    cfg = tiny(g_attention=g_att, d_attention=d_att)
    for net, wanted in ((build_generator(cfg), g_att), (build_discriminator(cfg), d_att)):
        blocks = [m for m in net.modules() if isinstance(m, SelfAttention)]
        assert len(blocks) == (1 if wanted else 0)
        for b in blocks:
            assert b.gamma.item() == 0.0


def test_attention_with_gate_zero_is_identity_and_learns_the_gate() -> None:
    att = SelfAttention(16)
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(att(x), x)
    att(x).pow(2).sum().backward()
    assert att.gamma.grad is not None and att.gamma.grad.abs().item() > 0
    with torch.no_grad():
        att.gamma.fill_(1.0)
    assert not torch.allclose(att(x), x)


@pytest.mark.parametrize("arch", ["stgan", "ffp"])
@pytest.mark.parametrize("skip", [True, False])
def test_encode_then_predict_equals_forward(arch: str, skip: bool) -> None:
    cfg = tiny(arch, g_skip=skip, g_attention=True)
    G = build_generator(cfg).eval()
    with torch.no_grad():  # make the attention gate matter
        for m in G.modules():
            if isinstance(m, SelfAttention):
                m.gamma.fill_(0.5)
    x = window(cfg)
    B, T = x.shape[:2]
    feats = G.encode_frames(x.flatten(0, 1))
    stacked = tuple(f.unflatten(0, (B, T)) for f in feats)
    assert torch.allclose(G.predict_from_features(stacked), G(x), atol=1e-6)


def test_feature_windows_reuses_per_frame_features_over_a_stream() -> None:
    cfg = tiny()
    G = build_generator(cfg).eval()
    T = cfg.data.T
    frames = torch.rand(9, 1, 32, 32) * 2 - 1  # a stream of 9 frames -> windows predicting frames 4..8
    with torch.no_grad():
        per_frame = G.encode_frames(frames)
        streamed = G.predict_from_features(feature_windows(per_frame, T))
        direct = G(torch.stack([frames[i - T : i] for i in range(T, 9)]))
    assert streamed.shape == (9 - T, 1, 32, 32)
    assert torch.allclose(streamed, direct, atol=1e-6)


def test_generator_uses_every_past_frame_through_the_convlstm() -> None:
    cfg = tiny(g_skip=True)
    G = build_generator(cfg).eval()
    x = window(cfg)
    x2 = x.clone()
    x2[:, 0] = -x2[:, 0]  # change only the oldest frame; skips come from the newest
    with torch.no_grad():
        assert not torch.allclose(G(x), G(x2))


def test_residual_generator_starts_as_copy_last_and_still_learns() -> None:
    cfg = tiny(g_residual=True)
    G = build_generator(cfg)
    x = window(cfg) * 0.9  # inside the clamp of atanh
    assert torch.allclose(G(x), x[:, -1], atol=1e-5)
    (G(x) - torch.zeros_like(x[:, -1])).pow(2).mean().backward()
    assert G.out.weight.grad.abs().sum() > 0


def test_convlstm_cell_matches_the_lstm_equations() -> None:
    torch.manual_seed(0)
    cell = ConvLSTMCell(2, 3, kernel=1)
    with torch.no_grad():
        cell.peep_i.fill_(0.3)
        cell.peep_f.fill_(-0.2)
        cell.peep_o.fill_(0.1)
    x, h, c = torch.randn(1, 2, 1, 1), torch.randn(1, 3, 1, 1), torch.randn(1, 3, 1, 1)
    h1, c1 = cell(x, (h, c))
    # the same cell as a fully connected LSTM on a 1x1 map, written out by hand
    z = cell.gates.weight[:, :, 0, 0] @ torch.cat([x, h], 1).flatten() + cell.gates.bias
    zi, zf, zc, zo = z.split(3)
    cf = c.flatten()
    i = torch.sigmoid(zi + 0.3 * cf)
    f = torch.sigmoid(zf - 0.2 * cf)
    c_new = f * cf + i * torch.tanh(zc)
    o = torch.sigmoid(zo + 0.1 * c_new)
    assert torch.allclose(c1.flatten(), c_new, atol=1e-6)
    assert torch.allclose(h1.flatten(), o * torch.tanh(c_new), atol=1e-6)


def test_convlstm_split_gates_equal_one_convolution_on_input_and_state() -> None:
    """The input half batched over all steps plus the hidden half per step (skipped at h_0 = 0) is the
    ConvLSTM of the equations: one 3x3 convolution on [x_t, h_{t-1}] per step, from the zero state."""
    torch.manual_seed(0)
    lstm = ConvLSTM(4, 5, kernel=3, layers=2)
    with torch.no_grad():
        for cell in lstm.cells:
            cell.peep_i.normal_()
            cell.peep_f.normal_()
            cell.peep_o.normal_()
    x = torch.randn(2, 3, 4, 6, 6)

    def step(cell: ConvLSTMCell, inp, h, c):
        zi, zf, zc, zo = cell.gates(torch.cat([inp, h], 1)).chunk(4, 1)
        i = torch.sigmoid(zi + cell.peep_i * c)
        f = torch.sigmoid(zf + cell.peep_f * c)
        c = f * c + i * torch.tanh(zc)
        return torch.sigmoid(zo + cell.peep_o * c) * torch.tanh(c), c

    with torch.no_grad():
        states = [(torch.zeros(2, 5, 6, 6), torch.zeros(2, 5, 6, 6)) for _ in lstm.cells]
        for t in range(3):
            inp = x[:, t]
            for n, cell in enumerate(lstm.cells):
                states[n] = step(cell, inp, *states[n])
                inp = states[n][0]
        got = lstm(x)
        gates = lstm.input_gates(x.flatten(0, 1)).unflatten(0, (2, 3))
        assert torch.allclose(got, states[-1][0], atol=1e-6)
        assert torch.allclose(lstm(x, gates=gates), got, atol=1e-6)


@pytest.mark.parametrize("channels", [16, 64, 128])
def test_self_attention_padded_inference_equals_the_plain_call(channels: int) -> None:
    """At inference on a CPU with C <= 64, q and k are zero-padded for the fused kernel: same output."""
    from stvad.model.layers import SelfAttention, pad_for_fused_kernel

    torch.manual_seed(0)
    m = SelfAttention(channels)
    with torch.no_grad():
        m.gamma.fill_(1.0)
    x = torch.randn(2, channels, 8, 8)
    trained_path = m(x)  # gradients on: never padded
    assert not pad_for_fused_kernel(x)
    with torch.no_grad():
        assert pad_for_fused_kernel(x) == (channels <= 64)
        assert torch.allclose(m(x), trained_path, atol=1e-5)


def test_convlstm_forget_bias_starts_at_one_and_layers_stack() -> None:
    lstm = ConvLSTM(4, 5, kernel=3, layers=2)
    assert len(lstm.cells) == 2
    b = lstm.cells[0].gates.bias
    assert torch.equal(b[5:10], torch.ones(5)) and torch.equal(b[:5], torch.zeros(5))
    out = lstm(torch.randn(2, 3, 4, 6, 6))
    assert out.shape == (2, 5, 6, 6)


def test_size_not_divisible_by_depth_is_refused() -> None:
    G = build_generator(tiny())
    with pytest.raises(ValueError, match="divisible"):
        G(torch.zeros(1, 4, 1, 30, 30))


def test_unknown_arch_is_a_stvad_error() -> None:
    with pytest.raises(StvadError, match="model.arch"):
        build_generator(tiny("nope"))
