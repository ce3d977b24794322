"""Scoring throughput and latency of full, f2+flow, only-stn and the FFP-style baseline, with FLOPs and peak.

    python bench/score_throughput.py            # cpu preset at 64x64, its model at 256x256; batch 1 and B
    python bench/score_throughput.py --configs paper256 --paths current --repeats 3 \\
        --out bench/results/score_throughput_paper.json      # the paper preset, 256x256 colour, batch 8

Every row goes through ``Scorer.score_windows`` (uint8 windows in, scores and maps out), the path that
``stvad score``, evaluation and the API share, with random weights (speed does not depend on them):
``full`` is ``Scorer(variants=("full",))`` (G, then D on the real frame and D's first two layers on the
prediction), ``f2+flow`` is G, D's first two layers on both frames and the optical flow of
:mod:`stvad.motion` (DIS medium at 2x, fitted on the frames timed), ``only-stn`` is
``Scorer(variants=("only-stn",))`` (G alone), and the FFP-style baseline is
``Scorer(variants=("psnr",))`` on a ``model.arch=ffp`` run of the same preset (its U-Net alone).

Each variant runs through the current Scorer (spectral norm folded, channels-last weights on a CPU) and
through the previous one (the modules as ``load_run`` returns them: spectral norm recomputed on every
call, NCHW); ``full`` also with folded NCHW weights, to tell the two changes apart. All are timed
interleaved, A B C A B C ..., and reduced to medians, so a change in the load of the shared machine hits
every row alike. FLOPs per frame are counted by torch.utils.flop_counter over one scored batch
(convolutions and matrix products; element-wise work is not counted) and divided by the batch; achieved
GFLOP/s is that times frames/s, stated as a fraction of the matrix-multiply peak measured in the same run
with the same threads.

The ``stream`` rows time what ``stvad score`` and ``stvad watch`` run, ``Scorer.score_frames`` over a clip of
4 B + T frames of the same texture (B the config's largest batch, the chunk G and D run on), each frame
read once: ``only-stn``, ``full`` and ``f2+flow`` with the preset's motion model (one DIS flow a frame,
the sway over the last 8, the still term with a stream's running background, ``score.still``, and the
preset's ``score.fusion``), so the optical flow and every other extra input are counted in its time.
Writes bench/results/score_throughput.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from perf_common import (
    RESULTS,
    flops_per_call,
    interleaved,
    load_1min,
    machine,
    matmul_peak,
    median,
    random_run,
    set_threads,
    texture_windows,
    with_motion,
)
from stvad._io import atomic_write_json
from stvad.config import Config, preset
from stvad.engine import Scorer
from stvad.scoring import NEEDS_FLOW

CONFIGS = {  # name -> (preset, overrides, batch sizes)
    "cpu64": ("cpu", [], (1, 16)),
    "cpu256": ("cpu", ["data.size=256,256"], (1, 8)),
    "paper256": ("paper", [], (8,)),
}
VARIANTS = {  # row -> (model.arch, Scorer variant)
    "full": ("stgan", "full"),
    "f2+flow": ("stgan", "f2+flow"),
    "only-stn": ("stgan", "only-stn"),
    "ffp-baseline": ("ffp", "psnr"),
}
PATHS = ("current", "previous", "folded-nchw")


def scorer(cfg: Config, variant: str, batch: int, path: str, frames: np.ndarray) -> Scorer:
    run = random_run(cfg)
    run = with_motion(run, frames) if variant in NEEDS_FLOW else run
    s = Scorer(run, batch_size=batch, variants=(variant,))
    if path == "previous":  # Scorer before it prepared its modules: load_run's modules as they are
        run = random_run(cfg)
        s.G, s.D = run.generator, run.discriminator
    elif path == "folded-nchw":
        s.G.to(memory_format=torch.contiguous_format)
        s.D.to(memory_format=torch.contiguous_format)
    return s


def measure(name: str, paths: tuple[str, ...], repeats: int, min_seconds: float, peak: float) -> list[dict]:
    base, overrides, batches = CONFIGS[name]
    cfgs = {arch: preset(base).override([*overrides, f"model.arch={arch}"]) for arch in ("stgan", "ffp")}
    cfg = cfgs["stgan"]
    (H, W), C, T = cfg.data.size, cfg.data.channels, cfg.data.T
    rows = []
    for B in batches:
        frames, past, target = texture_windows(cfg, B)
        scorers = {
            (v, path): scorer(cfgs[arch], sv, B, path, frames)
            for v, (arch, sv) in VARIANTS.items()
            for path in paths
            if path != "folded-nchw" or v == "full"
        }

        def call(s: Scorer, past: np.ndarray = past, target: np.ndarray = target) -> object:
            return s.score_windows(past, target)

        flops = {v: flops_per_call(lambda s=scorers[v, paths[0]]: call(s)) / B for v in VARIANTS}
        fns = {key: (lambda s=s: call(s)) for key, s in scorers.items()}
        samples = interleaved(fns, repeats, min_seconds=min_seconds, warmup=1 if B * H * W > 2**19 else 2)
        call_s = {key: median(t) for key, t in samples.items()}
        for (v, path), s in call_s.items():
            fps = B / s
            gflops = flops[v] * fps / 1e9
            stn = call_s.get(("only-stn", path))
            prev = call_s.get((v, "previous"))
            rows.append(
                {
                    "config": name,
                    "preset": base,
                    "size": [H, W],
                    "channels": C,
                    "T": T,
                    "widths": [cfg.model.g_width, cfg.model.d_width],
                    "batch": B,
                    "variant": v,
                    "path": path,
                    "frames_per_s": round(fps, 2),
                    "ms_per_frame": round(1e3 * s / B, 3),
                    "ms_per_call": round(1e3 * s, 3),
                    "ratio_to_only_stn": None if stn is None else round(s / stn, 3),
                    "speedup_vs_previous": None if prev is None else round(prev / s, 3),
                    "mflop_per_frame": round(flops[v] / 1e6, 1),
                    "achieved_gflops": round(gflops, 1),
                    "fraction_of_peak": round(gflops / peak, 3),
                    "samples": len(samples[v, path]),
                }
            )
    return rows


STREAM_VARIANTS = ("full", "f2+flow", "only-stn")


def measure_stream(name: str, repeats: int, min_seconds: float) -> list[dict]:
    """Per frame, ``Scorer.score_frames`` over one clip for each of :data:`STREAM_VARIANTS`, interleaved."""
    base, overrides, batches = CONFIGS[name]
    cfg = preset(base).override(overrides)
    B, T = max(batches), cfg.data.T
    frames = texture_windows(cfg, 4 * B)[0]
    scorers = {}
    for v in STREAM_VARIANTS:
        run = random_run(cfg)
        scorers[v] = Scorer(with_motion(run, frames) if v in NEEDS_FLOW else run, batch_size=B, variants=(v,))
    fns = {v: (lambda s=s: s.score_frames(iter(frames))) for v, s in scorers.items()}
    samples = interleaved(fns, repeats, min_seconds=min_seconds, warmup=1)
    n = len(frames) - T  # the frames that get a score
    per_frame = {v: median(t) / n for v, t in samples.items()}
    motion = scorers["f2+flow"].engine.motion
    return [
        {
            "config": name,
            "preset": base,
            "size": list(cfg.data.size),
            "T": T,
            "chunk": B,
            "frames_scored": n,
            "variant": v,
            "motion": {"sway": motion.sway, "still": motion.still, "fusion": cfg.score.fusion}
            if v in NEEDS_FLOW
            else None,
            "ms_per_frame": round(1e3 * s, 3),
            "ratio_to_only_stn": round(s / per_frame["only-stn"], 3),
            "samples": len(samples[v]),
        }
        for v, s in per_frame.items()
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["cpu64", "cpu256"], choices=list(CONFIGS))
    p.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    p.add_argument("--repeats", type=int, default=5, help="interleaved samples per row")
    p.add_argument("--min-seconds", type=float, default=0.3, help="calls fill at least this long a sample")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: on a shared machine OpenMP threads waiting for a busy core stall)",
    )
    p.add_argument(
        "--stream", nargs="*", default=["cpu64"], choices=list(CONFIGS), help="configs of the stream rows"
    )
    p.add_argument("--out", type=Path, default=RESULTS / "score_throughput.json")
    a = p.parse_args()
    threads = set_threads(a.threads)
    load_before = load_1min()
    peak = matmul_peak()
    paths = tuple(a.paths)
    rows = [
        r for name in a.configs for r in measure(name, paths, a.repeats, a.min_seconds, peak["peak_gflops"])
    ]
    stream = [r for name in a.stream for r in measure_stream(name, a.repeats, a.min_seconds)]
    peak_after = matmul_peak()
    load_after = load_1min()

    print(
        f"matmul peak ({threads} thread(s)): torch.mm {peak['torch_mm_gflops']} GFLOP/s, "
        f"oneDNN {peak['onednn_gflops']} GFLOP/s; load {load_before} -> {load_after}"
    )
    print(
        f"{'config':9} {'batch':>5} {'variant':13} {'path':11} {'frames/s':>9} {'ms/frame':>9} "
        f"{'/only-stn':>9} {'MFLOP/fr':>9} {'GFLOP/s':>8} {'of peak':>7} {'vs prev':>7}"
    )
    for r in rows:
        ratio = "" if r["ratio_to_only_stn"] is None else f"{r['ratio_to_only_stn']:.2f}"
        vs = "" if r["speedup_vs_previous"] is None else f"{r['speedup_vs_previous']:.2f}x"
        print(
            f"{r['config']:9} {r['batch']:>5} {r['variant']:13} {r['path']:11} {r['frames_per_s']:>9.1f} "
            f"{r['ms_per_frame']:>9.2f} {ratio:>9} {r['mflop_per_frame']:>9.0f} "
            f"{r['achieved_gflops']:>8.1f} {100 * r['fraction_of_peak']:>6.1f}% {vs:>7}"
        )
    print(f"\n{'stream':9} {'chunk':>5} {'variant':13} {'ms/frame':>9} {'/only-stn':>9}")
    for r in stream:
        print(
            f"{r['config']:9} {r['chunk']:>5} {r['variant']:13} {r['ms_per_frame']:>9.2f} "
            f"{r['ratio_to_only_stn']:>9.2f}"
        )
    checks = [
        {
            "config": r["config"],
            "batch": r["batch"],
            "path": r["path"],
            "variant": r["variant"],
            "over_only_stn": r["ratio_to_only_stn"],
            "flop_ratio": round(
                r["mflop_per_frame"]
                / next(
                    o["mflop_per_frame"]
                    for o in rows
                    if (o["config"], o["batch"], o["variant"]) == (r["config"], r["batch"], "only-stn")
                ),
                3,
            ),
            "at_most_1_5": r["ratio_to_only_stn"] <= 1.5,
        }
        for r in rows
        if r["variant"] in ("full", "f2+flow") and r["ratio_to_only_stn"] is not None
    ]
    atomic_write_json(
        a.out,
        {
            "command": "python bench/score_throughput.py "
            + " ".join(
                [f"--configs {' '.join(a.configs)}", f"--paths {' '.join(a.paths)}"]
                + [f"--stream {' '.join(a.stream)}"]
                + [f"--repeats {a.repeats}", f"--min-seconds {a.min_seconds}", f"--threads {a.threads}"]
            ),
            **machine(),
            "load_average_1min_before": load_before,
            "load_average_1min_after": load_after,
            "matmul_peak_before": peak,
            "matmul_peak_after": peak_after,
            "peak_gflops_used": peak["peak_gflops"],
            "note": (
                "random weights; uint8 windows of a smooth texture shifted a pixel a frame in, scores "
                "and maps out, through Scorer.score_windows; "
                "medians of interleaved samples; FLOPs count convolutions and matrix products only; "
                "fraction_of_peak is against the larger of the torch.mm and oneDNN matmul rates measured "
                "at the start of the run with the same threads"
            ),
            "with_d_over_only_stn": checks,
            "rows": rows,
            "stream_rows": stream,
        },
    )
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
