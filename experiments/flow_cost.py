"""Cost of the flow model of motion_prior.py beside the GAN's scores, in one process.

    python experiments/flow_cost.py [--preset cpu] [--batch 16] [--repeats 7]
        [--json experiments/results/flow_cost.json]

Interleaved (A B C ...), medians: ``only-stn``, ``full`` and ``f2`` through ``Scorer.score_windows``
(random weights, the preset's size, batch B; ``f2`` alone runs only D's first two layers, on xi and
G(x)), and the flow model's work for B frames at x2, DIS medium, fast and ultrafast: one flow from the
frame before, the -log p terms (a fitted histogram), the worst 1/8 window; and ``flow+sway``, what the
package's motion model does per frame of a stream (``MotionModel.score_flows``): one new DIS medium flow,
the sway over the last 8 flows, both priors' terms and the window; and ``flow+sway+still``, the same with
the still-foreground term (its masks over the last 9 frames and its terms) and a stream's running
background updated.
The frames are a smooth random texture shifted a pixel a frame, so that DIS has structure to match.
Reports each per frame and (full + flow) / only-stn, the ratio the issue bounds by 1.5, and (f2 + flow)
/ only-stn.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from stvad._io import atomic_write_json
from stvad.config import preset
from stvad.engine import Scorer
from stvad.motion import (
    STILL_FRAMES,
    Flow,
    FlowPrior,
    MotionModel,
    RunningBackground,
    SwayWindow,
    background,
    frame_score,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))  # the benchmarks' helpers
from perf_common import interleaved, load_1min, machine, median, random_run, set_threads  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    set_threads(1)
    cv2.setNumThreads(1)
    cfg = preset(a.preset)
    (H, W), C, T, B = cfg.data.size, cfg.data.channels, cfg.data.T, a.batch
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (H, W + B + T + 1), dtype=np.uint8), (5, 5), 1.5)
    frames = np.stack([texture[:, i : i + W] for i in range(B + T + 1)])[..., None].repeat(C, -1)
    past = np.stack([frames[i : i + T] for i in range(B)])  # (B, T, H, W, C)
    target = frames[T : T + B]
    scorers = {v: Scorer(random_run(cfg), batch_size=B, variants=(v,)) for v in ("only-stn", "full", "f2")}
    flows = {}
    for name in ("medium", "fast", "ultrafast"):
        flow = Flow(2, name)
        prior = FlowPrior((2 * H, 2 * W))
        for i in range(1, len(frames)):
            prior.fit(flow(frames[i - 1], frames[i]))
        prior.finish()
        flows[name] = (flow, prior)

    def flow_work(flow: Flow, prior: FlowPrior) -> list[float]:
        return [
            frame_score(prior.terms(flow(a, b)).astype(np.float32), 0.125)
            for a, b in zip(past[:, -1], target)
        ]

    motion = MotionModel((H, W)).fit([frames])
    history = [motion.flow(frames[i - 1], frames[i]) for i in range(1, motion.history)]

    def kept() -> SwayWindow:  # a stream's sway, as the engine keeps it: the 7 flows before, then new ones
        w = SwayWindow(motion.sway)
        for f in history:
            w.append(f)
        return w

    def stream_work() -> list[float]:  # each frame's flow is computed once; the 7 before it are kept
        out, w = [], kept()
        for a, b in zip(past[:, -1], target):
            f = motion.flow(a, b)
            w.append(f)
            out.append(motion.score_flows([*history, f], swayed=w.value())[0])
        return out

    still = MotionModel((H, W), still=12).fit([frames])
    bg, running = background(frames), RunningBackground()
    last = list(frames[-STILL_FRAMES - 1 :])  # the still term's frames (its cost does not depend on them)

    def still_work() -> list[float]:
        out, w = [], kept()
        for a, b in zip(past[:, -1], target):
            running.update(b)
            f = still.flow(a, b)
            w.append(f)
            out.append(still.score_flows([*history, f], last, bg, w.value())[0])
        return out

    fns = {v: (lambda s=s: s.score_windows(past, target)) for v, s in scorers.items()}
    fns["flow+sway"] = stream_work
    fns["flow+sway+still"] = still_work
    fns |= {f"flow {n}": (lambda f=f, p=p: flow_work(f, p)) for n, (f, p) in flows.items()}
    load = load_1min()
    ms = {k: 1e3 * median(t) / B for k, t in interleaved(fns, a.repeats).items()}
    with_d, base = ("full", "f2"), ms["only-stn"]
    ratios = {f"{b} + flow {n} / only-stn": (ms[b] + ms[f"flow {n}"]) / base for b in with_d for n in flows}
    ratios |= {f"{b} / only-stn": ms[b] / base for b in with_d}
    motion_work = ("flow+sway", "flow+sway+still")
    ratios |= {f"{b} + {m} / only-stn": (ms[b] + ms[m]) / base for b in with_d for m in motion_work}
    for k, v in ms.items():
        print(f"{k:16} {v:7.3f} ms/frame")
    for k, v in ratios.items():
        print(f"{k:32} {v:.2f}")
    if a.json:
        atomic_write_json(
            Path(a.json),
            {
                "command": "python experiments/flow_cost.py "
                + " ".join(sys.argv[1:] if argv is None else argv),
                **machine(),
                "cv2": cv2.__version__,
                "load_average_1min_before": load,
                "load_average_1min_after": load_1min(),
                "preset": a.preset,
                "batch": B,
                "ms_per_frame": {k: round(v, 3) for k, v in ms.items()},
                "ratios": {k: round(v, 3) for k, v in ratios.items()},
            },
        )


if __name__ == "__main__":
    main()
