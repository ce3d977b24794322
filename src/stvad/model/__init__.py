"""Generators and discriminators, built from the config (``cfg.model.arch``: "stgan" or "ffp")."""

from __future__ import annotations

from torch import nn

from stvad.config import Config
from stvad.errors import StvadError
from stvad.model.discriminator import DOutput, UNetDiscriminator
from stvad.model.ffp import FFPGenerator, PatchDiscriminator
from stvad.model.generator import Features, STGenerator, feature_windows

ARCHS = ("stgan", "ffp")
D_INPUTS = ("frames", "diff")
D_MAP_HEADS = ("none", "shared", "probe")

__all__ = [
    "ARCHS",
    "DOutput",
    "Features",
    "build_discriminator",
    "build_generator",
    "feature_windows",
]


def _check_arch(cfg: Config) -> None:
    if cfg.model.arch not in ARCHS:
        raise StvadError(f"unknown model.arch '{cfg.model.arch}' (choose from: {', '.join(ARCHS)})")


def build_generator(cfg: Config) -> nn.Module:
    _check_arch(cfg)
    m = cfg.model
    if not 1 <= m.g_skip_frames <= cfg.data.T:
        raise StvadError(
            f"model.g_skip_frames must be between 1 and data.T = {cfg.data.T}, got {m.g_skip_frames}"
        )
    if m.arch == "ffp":
        return FFPGenerator(cfg.data.channels, cfg.data.T, m.g_width, m.g_depth, m.g_spectral_norm)
    return STGenerator(
        cfg.data.channels,
        m.g_width,
        m.g_depth,
        skip=m.g_skip,
        attention=m.g_attention,
        sn=m.g_spectral_norm,
        lstm_kernel=m.lstm_kernel,
        lstm_layers=m.lstm_layers,
        residual=m.g_residual,
        skip_frames=m.g_skip_frames,
    )


def build_discriminator(cfg: Config) -> nn.Module:
    _check_arch(cfg)
    m = cfg.model
    if not 0 <= m.d_context <= cfg.data.T:
        raise StvadError(f"model.d_context must be between 0 and data.T = {cfg.data.T}, got {m.d_context}")
    if m.d_input not in D_INPUTS:
        raise StvadError(f"unknown model.d_input '{m.d_input}' (choose from: {', '.join(D_INPUTS)})")
    if m.d_map_head not in D_MAP_HEADS:
        raise StvadError(
            f"unknown model.d_map_head '{m.d_map_head}' (choose from: {', '.join(D_MAP_HEADS)})"
        )
    if m.arch == "ffp":  # its patch D judges one frame: d_context, d_input and d_residual do not apply
        return PatchDiscriminator(cfg.data.channels, m.d_width, m.d_depth, m.d_spectral_norm)
    return UNetDiscriminator(
        cfg.data.channels,
        m.d_width,
        m.d_depth,
        m.d_attention,
        m.d_spectral_norm,
        context=m.d_context,
        diff=m.d_input == "diff",
        residual=m.d_residual,
        input_gain=m.d_input_gain,
        map_head=m.d_map_head,
    )
