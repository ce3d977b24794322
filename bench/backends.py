"""The full scoring graph, batch 1, in PyTorch eager, TorchScript, ONNX Runtime and torch.compile.

    python bench/backends.py                  # cpu preset (64x64 grey), all backends, one run
    python bench/backends.py --no-compile     # without torch.compile (its compilation takes a minute or more)

The graph is the one ``stvad export`` writes (``export.WindowScore``: G, D on the real frame, D's F2 on the
prediction, equations 4-5), with random weights (speed does not depend on them). The ONNX and TorchScript
files are written by ``export.write_graph``, which also checks them against PyTorch, and the ONNX file is
run by ``export.OnnxEngine`` (``stvad score --backend onnxruntime``), with ONNX Runtime's default threads
and with the thread count given to PyTorch. The exported graph has batch 1, so every backend runs batch 1.
Rows:

- ``eager-scorer``: ``Scorer.score_windows`` at batch 1 (uint8 in, the path ``stvad score`` runs);
- ``eager-graph``: the same modules as WindowScore on float input (what the exporters trace);
- ``torchscript``: the exported .pt file; ``torchscript-frozen``: it after ``torch.jit.freeze`` and
  ``torch.jit.optimize_for_inference`` (a runtime option, not something stvad ships);
- ``onnxruntime`` / ``onnxruntime-threads``: OnnxEngine.run on the exported .onnx file;
- ``compile`` / ``compile-frozen``: ``torch.compile`` (inductor) of the eager graph, without and with
  inductor's ``freezing`` (weights as constants: convolutions prepacked for oneDNN and fused with their
  activations), when it compiles here (it needs a C++ compiler); compile times and failures are recorded.

Timed interleaved, medians of the repeats. FLOPs per frame (torch.utils.flop_counter: convolutions and
matrix products) of the eager graph give each backend's share of the matmul peak measured in the same run.
Writes bench/results/backends.json.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import tempfile
import time
import warnings
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
)
from stvad._io import atomic_write_json
from stvad.config import preset
from stvad.data.sources import to_model
from stvad.engine import Scorer, fold_spectral_norm
from stvad.export import OnnxEngine, WindowScore, example_window, write_graph


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Frames in [-1, 1], (..., C, H, W) -> uint8 (..., H, W, C), as a decoder would deliver them."""
    return ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).movedim(-3, -1).numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="cpu")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--min-seconds", type=float, default=0.3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (see score_throughput.py)")
    p.add_argument("--no-compile", action="store_true", help="leave torch.compile out")
    p.add_argument("--out", type=Path, default=RESULTS / "backends.json")
    a = p.parse_args()
    threads = set_threads(a.threads)
    load_before = load_1min()
    peak = matmul_peak()
    cfg = preset(a.preset)
    past_u8, target_u8 = (to_uint8(x) for x in example_window(cfg))
    # every backend sees the same window: the float graphs get the uint8 frames as Scorer converts them
    past, target = to_model(past_u8), to_model(target_u8)

    scorer = Scorer(random_run(cfg), batch_size=1, variants=("full",))
    graph = WindowScore(scorer.G, scorer.D, cfg).eval()  # Scorer's modules: folded, channels-last
    exported = fold_spectral_norm(WindowScore(*random_run(cfg)[1:3], cfg).eval())  # as export.window_score
    tmp = Path(tempfile.mkdtemp(prefix="stvad-backends-"))
    # a fresh inductor cache, so the recorded compile times are those of a first compilation
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(tmp / "inductor")
    notes: dict[str, str] = {}
    try:
        checks = {fmt: write_graph(exported, fmt, tmp / f"model.{fmt}") for fmt in ("onnx", "torchscript")}
        for check in checks.values():
            check.pop("path")  # a temporary file
        scripted = torch.jit.load(str(tmp / "model.torchscript"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frozen = torch.jit.optimize_for_inference(
                torch.jit.freeze(torch.jit.load(str(tmp / "model.torchscript")))
            )
        ort_default = OnnxEngine(tmp / "model.onnx")
        ort_threads = OnnxEngine(tmp / "model.onnx")
        ort = importlib.import_module("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        ort_threads.session = ort.InferenceSession(
            str(tmp / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )

        backends = {
            "eager-scorer": lambda: scorer.score_windows(past_u8, target_u8)[0]["full"],
            "eager-graph": lambda: graph(past, target)[0],
            "torchscript": lambda: scripted(past, target)[0],
            "torchscript-frozen": lambda: frozen(past, target)[0],
            "onnxruntime": lambda: ort_default.run(past, target)[0],
            "onnxruntime-threads": lambda: ort_threads.run(past, target)[0],
        }
        compile_s: dict[str, float] = {}
        if a.no_compile:
            notes["compile"] = "left out (--no-compile)"
        else:
            for name, freezing in (("compile", False), ("compile-frozen", True)):
                # a fresh copy of the modules each time, so the second compilation reuses nothing of the first
                fresh = Scorer(random_run(cfg), batch_size=1, variants=("full",))
                start = time.perf_counter()
                try:
                    importlib.import_module("torch._dynamo").reset()
                    inductor = importlib.import_module("torch._inductor.config")
                    with inductor.patch(freezing=freezing), torch.no_grad():
                        compiled = torch.compile(WindowScore(fresh.G, fresh.D, cfg).eval())
                        compiled(past, target)
                    compile_s[name] = round(time.perf_counter() - start, 1)
                    backends[name] = lambda compiled=compiled: compiled(past, target)[0]
                except Exception as e:  # inductor fails in many ways (no compiler, unsupported op): record it
                    notes[name] = (
                        f"failed after {time.perf_counter() - start:.0f} s: {type(e).__name__}: {e}"[:600]
                    )

        with torch.no_grad():
            want = graph(past, target)[0]
            outputs = {k: fn() for k, fn in backends.items()}
            flops = flops_per_call(lambda: graph(past, target))
            samples = interleaved(
                {k: torch.no_grad()(fn) for k, fn in backends.items()}, a.repeats, min_seconds=a.min_seconds
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = load_1min()

    rows = {}
    for k, t in samples.items():
        s = median(t)
        rows[k] = {
            "frames_per_s": round(1 / s, 1),
            "ms_per_frame": round(1e3 * s, 3),
            "achieved_gflops": round(flops / s / 1e9, 1),
            "fraction_of_peak": round(flops / s / 1e9 / peak["peak_gflops"], 3),
            "speedup_vs_eager_scorer": round(median(samples["eager-scorer"]) / s, 3),
            "max_abs_diff_score": float((torch.as_tensor(outputs[k]) - want).abs().max()),
        }
    print(
        f"{threads} thread(s), matmul peak {peak['peak_gflops']} GFLOP/s "
        f"(torch.mm {peak['torch_mm_gflops']});"
        f" load {load_before} -> {load_after}; {flops / 1e6:.0f} MFLOP per frame"
    )
    print(f"{'backend':20} {'frames/s':>9} {'ms/frame':>9} {'GFLOP/s':>8} {'of peak':>7} {'vs eager':>8}")
    for k, r in rows.items():
        print(
            f"{k:20} {r['frames_per_s']:>9.1f} {r['ms_per_frame']:>9.2f} {r['achieved_gflops']:>8.1f} "
            f"{100 * r['fraction_of_peak']:>6.1f}% {r['speedup_vs_eager_scorer']:>7.2f}x"
        )
    for k, v in {**{f"{k} compile seconds": v for k, v in compile_s.items()}, **notes}.items():
        print(f"{k}: {v}")
    fastest = max(rows, key=lambda k: rows[k]["frames_per_s"])
    atomic_write_json(
        a.out,
        {
            "command": f"python bench/backends.py --preset {a.preset} --repeats {a.repeats} "
            f"--min-seconds {a.min_seconds} --threads {a.threads}"
            + (" --no-compile" if a.no_compile else ""),
            **machine(),
            "onnxruntime": ort.__version__,
            "load_average_1min_before": load_before,
            "load_average_1min_after": load_after,
            "matmul_peak": peak,
            "preset": a.preset,
            "size": list(cfg.data.size),
            "channels": cfg.data.channels,
            "batch": 1,
            "mflop_per_frame": round(flops / 1e6, 1),
            "export_checks": checks,
            "compile_seconds": compile_s,
            "notes": notes,
            "fastest": fastest,
            "fastest_fraction_of_peak": rows[fastest]["fraction_of_peak"],
            "rows": rows,
        },
    )
    print(f"fastest: {fastest}, {100 * rows[fastest]['fraction_of_peak']:.1f}% of the matmul peak")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
