"""Shared pieces of the performance benchmarks (bench/score_throughput.py, stream_cache.py, backends.py,
score_memory.py): random-weight runs, interleaved timing, FLOP counting, the machine's matmul peak.

Speed does not depend on the weights, so the benchmarks build the models of a config with random weights
(``random_run``) and time them through the code users run (Scorer, the streaming engine, the export).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from stvad.checkpoint import LoadedRun
from stvad.config import Config
from stvad.model import build_discriminator, build_generator, layers
from stvad.motion import MotionModel, scale_key

RESULTS = Path(__file__).resolve().parent / "results"


def random_run(cfg: Config, seed: int = 0) -> LoadedRun:
    """The models of ``cfg`` with random weights, in eval mode, as ``load_run`` returns a trained run."""
    torch.manual_seed(seed)
    return LoadedRun(cfg, build_generator(cfg).eval(), build_discriminator(cfg).eval(), {"weights": "random"})


def texture_windows(cfg: Config, batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames of a smooth random texture shifted a pixel a frame (so that optical flow has structure to
    match), uint8 (batch + T + 1, H, W, C), and ``batch`` windows of them: past (B, T, H, W, C), target."""
    (H, W), C, T = cfg.data.size, cfg.data.channels, cfg.data.T
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (H, W + batch + T + 1), dtype=np.uint8), (5, 5), 1.5)
    frames = np.stack([texture[:, i : i + W] for i in range(batch + T + 1)])[..., None].repeat(C, -1)
    return frames, np.stack([frames[i : i + T] for i in range(batch)]), frames[T : T + batch]


def with_motion(run: LoadedRun, frames: np.ndarray) -> LoadedRun:
    """``run`` with a motion model fitted on ``frames`` (with the config's still term, ``score.still``) and
    unit standardisers for its own scoring, so that the flow scores can be timed (their cost does not
    depend on what the model learned)."""
    motion = MotionModel(run.config.data.size, still=run.config.score.still).fit([frames])
    key = scale_key(run.config.score, run.meta.get("step"))
    motion.scales = {"flow": [0.0, 1.0], "f2": {key: [0.0, 1.0]}}
    return run._replace(motion=motion)


def load_1min() -> float:
    """The 1-minute load average: the machine is shared, so every result records how busy it was."""
    return round(os.getloadavg()[0], 2)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "torch": str(torch.__version__),
        "torch_threads": torch.get_num_threads(),
    }


def flops_per_call(fn: Callable[[], object]) -> int:
    """FLOPs of one call as ``torch.utils.flop_counter`` counts them (convolutions and matrix products;
    element-wise work is not counted).

    The counter has no formula for PyTorch's fused CPU attention kernel, which SelfAttention uses at
    inference where its q and k are zero-padded (``stvad.model.layers.pad_for_fused_kernel``); the count
    runs with the padding off, so attention is counted as the useful work of SAGAN's formulation
    (q k^T over C/8 channels, then the product with v), not the padded or the missing one.
    """
    saved = layers.PAD_MAX_CHANNELS
    layers.PAD_MAX_CHANNELS = 0
    try:
        with FlopCounterMode(display=False) as counter:
            fn()
    finally:
        layers.PAD_MAX_CHANNELS = saved
    return int(counter.get_total_flops())


def interleaved(
    fns: dict[str, Callable[[], object]], repeats: int, min_seconds: float = 0.3, warmup: int = 2
) -> dict[str, list[float]]:
    """Seconds per call of each function, measured A B C A B C ...: ``repeats`` samples each.

    A sample is the mean of as many back-to-back calls as fill ``min_seconds`` (at least one). Taking the
    median over samples taken in turn makes a change in the machine's load hit every function alike.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            calls, start = 0, time.perf_counter()
            while True:
                fn()
                calls += 1
                elapsed = time.perf_counter() - start
                if elapsed >= min_seconds:
                    break
            samples[name].append(elapsed / calls)
    return samples


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def matmul_peak(n: int = 2048, repeats: int = 7) -> dict:
    """Measured float32 matrix-multiply rate of this process's threads, in GFLOP/s (median of ``repeats``).

    Two libraries: ``torch.mm`` runs MKL's sgemm, and a linear layer on oneDNN tensors runs oneDNN's, the
    library behind PyTorch's CPU convolutions. MKL picks its kernels by CPU vendor and on AMD processors
    may not use AVX-512 where oneDNN does, so the larger of the two is the machine's peak.
    """
    a, b = torch.randn(n, n), torch.randn(n, n)
    flops = 2 * n**3
    a_dnn, b_dnn = a.to_mkldnn(), b.t().contiguous().to_mkldnn()
    times = interleaved(
        {"torch_mm": lambda: torch.mm(a, b), "onednn": lambda: F.linear(a_dnn, b_dnn)},
        repeats,
        min_seconds=0.2,
        warmup=1,
    )
    rates = {k: round(flops / median(v) / 1e9, 1) for k, v in times.items()}
    return {
        "n": n,
        "threads": torch.get_num_threads(),
        "torch_mm_gflops": rates["torch_mm"],
        "onednn_gflops": rates["onednn"],
        "peak_gflops": max(rates.values()),
    }


def set_threads(n: int) -> int:
    torch.set_num_threads(n)
    return torch.get_num_threads()
