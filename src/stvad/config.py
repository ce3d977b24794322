"""One source of truth for every setting: a config dataclass saved in every run and checkpoint.

Presets fill it; ``--set section.key=value`` overrides single fields with type checking.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from stvad.errors import StvadError


@dataclass
class DataConfig:
    size: tuple[int, int] = (64, 64)  # (H, W) the frames are resized to
    channels: int = 1  # 1 = grey, 3 = colour (BGR order as decoded, converted to RGB)
    T: int = 4  # past frames per window; the model predicts frame T+1
    train_stride: int = 1  # step between training windows (test windows always use stride 1)
    val_fraction: float = 0.15  # share of each normal training video held out (its tail) for validation
    layout: str | None = None  # force a benchmark layout instead of detecting it


@dataclass
class ModelConfig:
    arch: str = "stgan"  # "stgan" (the paper) or "ffp" (U-Net predictor + patch D, the baseline)
    g_width: int = 32  # channels of the first generator stage, doubled at each downsampling
    g_depth: int = 3  # number of stride-2 stages in the generator encoder
    g_skip: bool = True  # encoder-to-decoder skip connections (U-Net style)
    # how many of the most recent past frames' encoder features each skip carries (1..T): 1 gives the decoder
    # the last frame's appearance only, T also the motion at every scale (as a U-Net on stacked frames has)
    g_skip_frames: int = 1
    g_attention: bool = True  # SAGAN self-attention block in the generator
    g_spectral_norm: bool = False  # spectral normalisation in G (optional in the paper)
    g_residual: bool = False  # G predicts the change to the last frame: tanh(atanh(last) + decoder output)
    lstm_kernel: int = 3
    lstm_layers: int = 1
    d_width: int = 32
    d_depth: int = 3  # stride-2 stages of the U-Net discriminator encoder
    d_attention: bool = True  # SAGAN self-attention block in D
    d_spectral_norm: bool = True  # on every D layer but the last 1x1 convolutions
    # past frames (the most recent ones, 0..T) D sees beside the frame it judges, stacked on the channel axis:
    # 0 is the paper's D, which judges one frame alone; k > 0 makes it judge "is this the next frame of these"
    d_context: int = 0
    # how a conditioned D (d_context > 0) is shown the sequence: "frames" stacks the past frames and the
    # judged one; "diff" gives the judged frame and the k successive frame differences up to it, so motion is
    # a first-order input (D learned skip-frame fakes in 100 steps this way, not from stacked frames)
    d_input: str = "diff"
    # residual blocks and a summed global head in D (U-Net GAN's BigGAN blocks); False is the plain stack of
    # earlier versions, kept to reproduce their results: its logit barely depends on its input (docs)
    d_residual: bool = True
    # D's input (the frame, and the past or its differences) multiplied by this before the stem. Spectral
    # normalisation bounds each layer's gain at 1, so D's outputs can differ between two inputs by at most
    # about their distance times this; a prediction differs from the real frame by a few hundredths
    d_input_gain: float = 1.0
    # a separate per-pixel head of D_dec for the anomaly map, trained only on the pseudo-anomalies of
    # train.pseudo_skip (needs it); G's adversarial loss reads the real/fake heads alone. "shared": a 1x1
    # head whose loss also trains D's layers; "probe": a small head on D_dec's features detached, so D and
    # G train exactly as without it; "none": the map is 1 - D_dec's real/fake verdict (the paper)
    d_map_head: str = "none"


@dataclass
class TrainConfig:
    seed: int = 0
    max_steps: int = 2000
    batch_size: int = 8
    lr_g: float = 1e-4  # TTUR: D learns faster than G
    lr_d: float = 4e-4
    betas_g: tuple[float, float] = (0.0, 0.9)
    betas_d: tuple[float, float] = (0.0, 0.9)
    w_intensity: float = 1.0  # L_recon = w_intensity * L2 + w_gradient * gradient loss
    w_gradient: float = 1.0
    w_adv: float = 0.05  # weight of G's adversarial terms relative to L_recon (lambda = 1 / w_adv)
    adversarial: bool = True  # train with D at all (off = plain predictor)
    cutmix: bool = True  # CutMix consistency loss L_cons of U-Net GAN
    cutmix_aug: bool = True  # CutMix augmentation loss: D_dec(mix) -> M and D_enc(mix) -> fake
    w_cons: float = 1.0
    # skip-frame pseudo-anomalies (not in the paper; Astrid et al., BMVC 2021): after a window's past, the
    # real frame this many frames ahead is shown to a past-conditioned D as a fake where it differs from the
    # true next frame (per pixel; real elsewhere), so D's map learns to flag motion too fast. 0 = off
    pseudo_skip: int = 0
    w_pseudo: float = 1.0
    pseudo_threshold: float = 0.1  # |skip frame - next frame| (frames in [-1, 1]) above which a pixel is fake
    # an exponential moving average of G's weights with this decay (0 = off; not in the paper): validation,
    # the checkpoints' choice and every score use the average, training the raw G. The first steps average
    # over fewer steps, decay min(g_ema, (1 + step) / (10 + step))
    g_ema: float = 0.0
    cutmix_warmup: int = 500  # steps over which the CutMix probability ramps from 0 to cutmix_prob
    cutmix_prob: float = 0.5
    val_every: int = 200  # steps between validations / checkpoints
    val_windows: int = 64  # held-out windows per validation
    log_every: int = 10  # steps between rows of metrics.csv
    num_workers: int = 0
    precision: str = "32-true"


@dataclass
class ScoreConfig:
    variant: str = "full"  # full | only-stn | psnr | dmap | f2 | flow | f2+flow (stvad.scoring)
    flow_weight: float = 1.0  # f2+flow: the weight of the standardised flow score beside the standardised f2
    fusion: str = "sum"  # f2+flow: the two standardised scores added (sum) or the larger taken (max)
    # the motion model's still-foreground term (stvad.motion): its threshold in grey levels, 0 off; fitted
    # into RUN/motion.json by fit_motion, which then scores with it
    still: float = 0.0
    f2_reduce: str = "mean"  # channel reduction of |F2(xi) - F2(G(x))|: mean | max | l2
    upsample: str = "bilinear"  # F2 difference to frame size: bilinear | nearest
    aggregate: str = "sum"  # pixel terms -> frame score: sum (eq. 4) | patch-max (worst window)
    patch: float = 0.125  # patch-max window side, as a fraction of the frame's shorter side
    normalisation: str = "per-video-minmax"  # global-max (eq. 6) | per-video-minmax | none
    smoothing_sigma: float = 0.0  # temporal Gaussian smoothing of the score, in frames; 0 = off
    causal_window: int = 1  # alarms: mean of the last N frame scores (causal, usable live); 1 = off
    threshold_quantile: float = 0.99  # of normal held-out scores, for predict()/watch


@dataclass
class Config:
    preset: str = "cpu"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> Config:
        """Build a config from a (possibly partial) dict; unknown keys and wrong types are errors."""
        cfg = cls()
        flat = _flatten(d)
        # a config saved before these keys existed: the D it trained had neither
        if "model.d_context" in flat:
            flat.setdefault("model.d_residual", False)
            flat.setdefault("model.d_input", "frames")
        for key, value in flat.items():
            cfg.set(key, value, source=source)
        return cfg

    def set(self, key: str, value: Any, source: str = "--set") -> None:
        """Set ``section.field`` (or ``preset``) from a Python value or a string, type-checked."""
        parts = key.split(".")
        if parts == ["preset"]:
            self.preset = str(value)
            return
        if len(parts) != 2 or parts[0] not in SECTIONS:
            raise StvadError(f"unknown config key '{key}' (sections: {', '.join(SECTIONS)})", source)
        section = getattr(self, parts[0])
        fields = {f.name: f for f in dataclasses.fields(section)}
        if parts[1] not in fields:
            raise StvadError(f"unknown config key '{key}' (known in {parts[0]}: {', '.join(fields)})", source)
        hint = typing.get_type_hints(type(section))[parts[1]]
        setattr(section, parts[1], _coerce(value, hint, key, source))

    def override(self, assignments: list[str]) -> Config:
        """Apply ``key=value`` strings (the CLI's --set) to a copy."""
        out = copy.deepcopy(self)
        for a in assignments:
            if "=" not in a:
                raise StvadError(f"expects key=value, got '{a}'", "--set")
            k, v = a.split("=", 1)
            out.set(k.strip(), v.strip())
        return out

    def with_score(self, assignments: Sequence[str]) -> Config:
        """``override`` limited to ``score.*`` keys: how a trained run is scored may change, what it
        learned may not."""
        bad = [a for a in assignments if not a.strip().startswith("score.")]
        if bad:
            raise StvadError(f"only score.* settings can change after training, got '{bad[0]}'", "--set")
        return self.override(list(assignments))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


SECTIONS = ("data", "model", "train", "score")


def flat_config(cfg: Config) -> dict[str, Any]:
    """``{"section.key": value}`` for every config field."""
    out: dict[str, Any] = {}
    for section, fields in cfg.to_dict().items():
        if isinstance(fields, dict):
            out.update({f"{section}.{k}": v for k, v in fields.items()})
    return out


def config_changes(saved: Config, given: Config, ignore: Iterable[str] = ()) -> list[tuple[str, Any, Any]]:
    """``(key, saved value, given value)`` for every field that differs, sorted, except ``ignore``."""
    a, b, skip = flat_config(saved), flat_config(given), set(ignore)
    return [(k, a[k], b[k]) for k in sorted(a) if a[k] != b[k] and k not in skip]


def _flatten(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if k in SECTIONS and isinstance(v, dict):
            for k2, v2 in v.items():
                out[f"{k}.{k2}"] = v2
        else:
            out[k] = v
    return out


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    """Turn ``value`` (a str from the CLI, or a JSON value) into the field's declared type."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    bad = StvadError(f"config key '{key}' expects {_type_name(hint)}, got {value!r}", source)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null", ""))
        if is_none and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key, source)
    if origin is tuple:
        if isinstance(value, str):
            value = [p for p in value.replace("x", ",").strip("()[] ").split(",") if p.strip()]
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise bad
        return tuple(_coerce(v, a, key, source) for v, a in zip(value, args))
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise bad
    if hint is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value))
        except ValueError:
            raise bad from None
    if hint is float:
        if isinstance(value, bool):
            raise bad
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad from None
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise bad
        return str(value)
    raise bad


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _preset_tiny() -> Config:
    c = Config(preset="tiny")
    c.data.size = (32, 32)
    c.model.g_width = c.model.d_width = 8
    c.model.g_depth = c.model.d_depth = 2
    c.train.max_steps = 4
    c.train.batch_size = 2
    c.train.val_every = 2
    c.train.val_windows = 4
    c.train.cutmix_warmup = 2
    return c


# Learning rates for the short CPU budgets, TTUR ratio kept (D 4x G). Chosen on held-out normal clips of the
# synthetic set, cpu preset, 600 steps: validation PSNR of G over the copy-last PSNR rose by 0.23 dB at
# (1e-4, 4e-4), the long-run GAN values the paper preset keeps, 0.67 dB at (3e-4, 4e-4), 1.31 dB at
# (1e-3, 4e-3) and 1.09 dB at (2e-3, 8e-3). Test labels were not looked at.
_SHORT_BUDGET_LR = (1e-3, 4e-3)


def _preset_cpu_paper() -> Config:
    # The paper's method at the cpu budget: a generator that predicts the frame (not its change) and a D that
    # judges one frame alone. 64x64 grey, width 16: a step of 8 windows with CutMix takes 0.17-0.49 s on 2
    # cores depending on the machine's day (bench/train_throughput.py), so 1200 steps take 3-10 minutes
    c = Config(preset="cpu-paper")
    c.model.g_width = c.model.d_width = 16
    c.train.max_steps = 1200
    c.train.batch_size = 8
    c.train.val_every = 200
    c.train.cutmix_warmup = 300
    c.train.lr_g, c.train.lr_d = _SHORT_BUDGET_LR
    return c


def _beyond_the_paper(c: Config, name: str) -> Config:
    """The default detector: the paper's, with a generator that predicts the change to the last frame and a
    D that judges the frame after its past, given as frame differences (docs/discriminator.md)."""
    c.preset = name
    c.model.g_residual = True
    c.model.d_context = c.data.T
    c.model.d_input = "diff"
    # D's Adam with FFP's and DCGAN's momentum: 200 steps of this preset on the synthetic set (seed 0,
    # held-out normal clips) ended with D's AUROCs at 0.72 / 0.86 (global / mean pixel) and G 0.50 dB over
    # copy-last, against 0.52 / 0.69 and -0.07 dB with beta = (0, 0.9), whose D swung between validations
    c.train.betas_d = (0.5, 0.999)
    # D's input times 10, so that its spectrally normalised layers can tell G's errors of a few hundredths
    # (against a fixed G, D's held-out mean-pixel AUROC reached 0.80 in 200 steps at gain 1, 1.00 at 10),
    # and G's adversarial weight lowered to 0.01 so that the sharper D does not pull G below copy-last.
    # Chosen on held-out normal clips of data seeds 0-2 (experiments/choose_d.py, docs/discriminator.md
    # section 5): mean pseudo-anomaly proxy 64.7 against 63.6 (gain alone) and 62.0 (neither)
    c.model.d_input_gain = 10.0
    c.train.w_adv = 0.01
    # The score: f2 (the error weighted by D's F2 difference) plus the flow model of stvad.motion, each
    # standardised on held-out normal clips. Chosen by a rule fixed before its numbers (docs/discriminator.md,
    # "A cheaper base for the flow"): above full on the held-out glide criterion on 4 of 5 sets (the three
    # synthetic seeds and partial Avenue; not Ped2), the highest mean of the two that were (87.46 against
    # 86.58 at weight 0.5), at 1.24-1.28x only-stn where full takes 1.44-1.49x
    c.score.variant = "f2+flow"
    c.score.flow_weight = 1.0
    # ... and the larger of the two instead of their sum, with the motion model's still-foreground term at
    # 12 grey levels: chosen by a rule fixed before its numbers (docs/discriminator.md, "The larger of f2 and
    # the motion score"): the mean of five held-out glides at least 0.5 above the sum's, none of them more
    # than 2 below, on 4 of 5 sets (all but synthetic seed 2)
    c.score.fusion = "max"
    c.score.still = 12.0
    return c


def _preset_cpu() -> Config:
    return _beyond_the_paper(_preset_cpu_paper(), "cpu")


def _preset_ped2_paper() -> Config:
    # the cpu budget's model and learning rates at 128x128 grey, trained longer: a step of 8 windows takes
    # 0.8-2.1 s on 2 cores with CutMix (bench/train_throughput.py), so 3000 steps (~11 passes over Ped2's
    # training windows) take 40-100 minutes
    c = _preset_cpu_paper()
    c.preset = "ped2-paper"
    c.data.size = (128, 128)
    c.train.max_steps = 3000
    c.train.val_every = 500
    c.train.cutmix_warmup = 750
    # each skip carries the encoder features of all T past frames, not only the last one: validation PSNR
    # on held-out normal clips 43.8 against 41.3 dB at step 3000, every seed ahead from step 500
    # (docs/results_ped2.md)
    c.model.g_skip_frames = c.data.T
    return c


def _preset_ped2() -> Config:
    return _beyond_the_paper(_preset_ped2_paper(), "ped2")


def _preset_paper() -> Config:
    c = Config(preset="paper")
    c.data.size = (256, 256)
    c.data.channels = 3
    c.model.g_width = c.model.d_width = 64
    c.model.g_depth = c.model.d_depth = 4
    c.train.max_steps = 60000
    c.train.batch_size = 8
    c.train.val_every = 1000
    c.train.cutmix_warmup = 5000
    c.train.num_workers = 4
    return c


PRESETS = {
    "tiny": _preset_tiny,
    "cpu": _preset_cpu,
    "cpu-paper": _preset_cpu_paper,
    "ped2": _preset_ped2,
    "ped2-paper": _preset_ped2_paper,
    "paper": _preset_paper,
}
# the paper-faithful configuration of each default preset, shown beside it in every results table
PAPER_TWIN = {"cpu": "cpu-paper", "ped2": "ped2-paper"}


def preset(name: str) -> Config:
    if name not in PRESETS:
        raise StvadError(f"unknown preset '{name}' (choose from: {', '.join(PRESETS)})")
    return PRESETS[name]()


# keys that may change when a run is resumed (train longer, load data with other workers)
RESUMABLE_KEYS = ("train.max_steps", "train.num_workers")

# config fields an architecture does not have: the FFP-style U-Net fuses all past frames at its input
# (build_generator ignores g_skip_frames and g_residual) and its patch D judges one frame (build_discriminator
# ignores the U-Net D's d_context, d_input, d_residual, d_input_gain and d_map_head).
# Overrides of these fields do not reach the baseline, and a finished run is reused whatever they hold.
UNUSED_BY_ARCH = {
    "ffp": {
        "model.g_skip_frames", "model.g_residual", "model.d_context", "model.d_input", "model.d_residual",
        "model.d_input_gain", "model.d_map_head",
    }
}


def overrides_for_arch(arch: str, overrides: list[str]) -> list[str]:
    """The ``--set KEY=VALUE`` overrides that apply to ``arch``."""
    unused = UNUSED_BY_ARCH.get(arch, set())
    return [o for o in overrides if o.split("=", 1)[0].strip() not in unused]
