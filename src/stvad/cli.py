"""The ``stvad`` command line. Thin: it parses arguments and calls the library.

Every user-facing failure is a :class:`stvad.errors.StvadError`: one line on stderr, exit status 2,
no traceback unless ``--debug``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from stvad import __version__
from stvad.errors import StvadError, StvadWarning


def _cmd_data_info(a: argparse.Namespace) -> int:
    from stvad.data.layouts import dataset_info, open_dataset

    info = dataset_info(open_dataset(a.root, layout=a.layout))
    if a.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"layout: {info['layout']}")
        for split in ("train", "test"):
            s = info[split]
            extra = f", {s['anomalous_frames']} anomalous" if "anomalous_frames" in s else ""
            print(f"{split}: {s['videos']} videos, {s['frames']} frames{extra}")
    return 0


def _cmd_synth(a: argparse.Namespace) -> int:
    from stvad.data.synth import generate

    root = generate(a.out, seed=a.seed, size=a.size, progress=not a.quiet)
    print(f"wrote synthetic benchmark to {root}")
    return 0


def _load_config(a: argparse.Namespace):
    from stvad.config import preset

    return preset(a.preset or "cpu").override(a.set or [])


def _cmd_train(a: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from stvad.api import training_root
    from stvad.checkpoint import run_config, training_summary
    from stvad.train import train

    # resuming without --preset continues with the run's own config (plus any --set, e.g. more steps)
    resumed = a.resume and a.preset is None
    cfg = run_config(a.out).override(a.set or []) if resumed else _load_config(a)
    if a.resume:
        _check_something_to_resume(Path(a.out), cfg.train.max_steps)
    t0 = time.monotonic()
    run = train(
        training_root(a.data, Path(a.out)),
        a.out,
        cfg,
        resume=a.resume,
        devices=a.devices,
        strategy=a.strategy,
        accelerator=a.accelerator,
    )
    lines, warns = training_summary(run)
    print(f"run written to {run} ({(time.monotonic() - t0) / 60:.1f} min)")
    for line in lines:
        print("  " + line)
    for w in warns:
        print(f"stvad: warning: {w}", file=sys.stderr)
    if not a.no_calibrate:
        _print_calibration(_calibrate(run, a.quantile, ()))
    return 0


def _check_something_to_resume(run, max_steps: int) -> None:
    from stvad.checkpoint import read_checkpoint

    last = run / "checkpoints" / "last.ckpt"
    if last.exists():
        done = int(read_checkpoint(last)["stvad"]["step"])
        if done >= max_steps:
            raise StvadError(
                f"nothing to resume: the run has done {done} steps and train.max_steps is {max_steps}; "
                f"train longer with --set train.max_steps=N (N > {done})",
                run,
            )


def _calibrate(run, quantile, sources, score_set=()) -> dict:
    from stvad.calibration import ALARM_SCORE, calibrate

    how = (*ALARM_SCORE, *score_set)  # the user's settings after the defaults, so theirs win
    return calibrate(run, quantile=quantile, progress=sys.stderr.isatty(), sources=sources, score_set=how)


def _print_calibration(cal: dict) -> None:
    how = ", ".join(f"{k} {v}" for k, v in cal.get("score", {}).items())
    print(
        f"threshold {cal['threshold']:.4g}: the {cal['quantile']} quantile of {cal['frames']} normal frames "
        f"({cal['source']}); alarms score {cal['variant']}, {how}"
    )
    if "warning" in cal:
        print(f"stvad: warning: {cal['warning']}", file=sys.stderr)


def _cmd_calibrate(a: argparse.Namespace) -> int:
    _print_calibration(_calibrate(a.run, a.quantile, a.sources, a.set or ()))
    return 0


def _cmd_fit_motion(a: argparse.Namespace) -> int:
    from stvad.calibration import ALARM_SCORE, fit_motion

    sets = ((), ALARM_SCORE, *([a.set] if a.set else []))
    m = fit_motion(a.run, score_sets=sets, which=a.which, refit=a.refit, still=a.still)
    mu, sd = m.scales["flow"]
    print(
        f"motion model in {Path(a.run) / 'motion.json'}: flow score {mu:.4g} +- {sd:.4g} on held-out normal "
        f"frames; f2 standardisers for {', '.join(m.scales['f2'])}"
    )
    return 0


def _cmd_eval(a: argparse.Namespace) -> int:
    from stvad.evaluate import evaluate

    result = evaluate(
        a.run,
        a.data,
        baseline_run=a.baseline,
        compare_runs=a.compare or (),
        json_path=a.json,
        report_dir=a.report,
        smoothing_sigma=a.sigma,
        layout=a.layout,
        score_set=a.set or [],
        progress=sys.stderr.isatty(),
    )
    print(result["table"])
    return 0


def _cmd_demo(a: argparse.Namespace) -> int:
    from stvad.demo import run_demo

    run_demo(a.out, preset_name=a.preset, seed=a.seed, size=a.size)
    return 0


def _cmd_score(a: argparse.Namespace) -> int:
    from stvad.api import score_to_files

    for files in score_to_files(
        a.run,
        a.inputs,
        a.out,
        maps=a.maps,
        video=a.video_format if a.video else None,
        backend=a.backend,
        device=a.device,
        progress=sys.stderr.isatty(),
    ):
        print("wrote " + ", ".join(files.values()))
    return 0


def _cmd_watch(a: argparse.Namespace) -> int:
    from stvad.stream import watch

    summary = watch(
        a.run,
        a.source,
        events=a.events,
        backend=a.backend,
        max_frames=a.max_frames,
        loop=a.loop,
        threshold=a.threshold,
        device=a.device,
        min_event_s=a.min_event,
        merge_gap_s=a.merge_gap,
    )
    pace = ""
    if summary["source_fps"]:
        lag = summary["lag_s"]
        pace = f" against the source's {summary['source_fps']:.3g}; " + (
            f"{lag:.1f} s behind it at the end" if lag > 0 else "kept up with it"
        )
    print(
        f"watched {summary['frames']} frames in {summary['seconds']} s ({summary['fps']} frames/s{pace}), "
        f"{summary['events']} events above {summary['threshold']:.4g}",
        file=sys.stderr,
    )
    return 0


def _cmd_export(a: argparse.Namespace) -> int:
    from stvad.export import export

    r = export(a.run, a.format, a.out)
    print(
        f"wrote {r['path']} ({r['format']}); largest difference from PyTorch on a random window: "
        f"score {r['max_abs_diff_score']:.2g}, map {r['max_abs_diff_map']:.2g}"
    )
    return 0


class _Help(argparse.HelpFormatter):
    """Shows an option's default where it has one worth showing and its help does not already say it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        quiet = action.default in (None, False, argparse.SUPPRESS) or not action.option_strings
        if quiet or "default" in text:
            return text
        return text + " (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    from stvad.events import MERGE_GAP_S, MIN_EVENT_S

    p = argparse.ArgumentParser(
        prog="stvad",
        formatter_class=_Help,
        description="Unsupervised video anomaly detection: a spatio-temporal GAN with a U-Net discriminator.",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version=f"stvad {__version__}")
    p.add_argument(
        "--threads", default="auto", metavar="N",
        help="torch threads for every command that computes; auto = the cores not already busy (the 1-minute "
        "load average subtracted), at least 1, because on a busy machine extra threads wait on each other",
    )  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True)
    add = sub.add_parser
    sub.add_parser = lambda *a, **k: add(*a, formatter_class=_Help, **k)

    data = sub.add_parser("data", help="inspect benchmark folders")
    dsub = data.add_subparsers(dest="data_command", required=True)
    info = dsub.add_parser("info", help="layout, videos, frames and anomalous frames per split")
    info.add_argument("root", help="a benchmark folder (layout detected)")
    info.add_argument("--layout", default=None, help="force a layout instead of detecting it")
    info.add_argument("--json", action="store_true", help="print the counts as JSON")
    info.set_defaults(func=_cmd_data_info)

    synth = sub.add_parser("synth", help="write the built-in procedural benchmark (FFP layout)")
    synth.add_argument("out", help="folder to write the benchmark into")
    synth.add_argument("--seed", type=int, default=0, help="scene, people and events")
    synth.add_argument("--size", default="default", help="default | small | large")
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    synth.set_defaults(func=_cmd_synth)

    def config_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--preset",
            default="cpu",
            help="tiny | cpu | cpu-paper | ped2 | ped2-paper | paper (*-paper: the paper's method; "
            "default: cpu, or the run's own config with --resume)",
        )
        sp.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field")

    train = sub.add_parser(
        "train",
        help="train on normal video: video files, frame folders, or a benchmark's training split",
        description="Train the detector on normal footage, then fit its alarm threshold on held-out normal "
        "clips (the tail of each training video). Presets: cpu (default, 64x64, a few minutes on 2 cores), "
        "ped2 (128x128, about 40 minutes), cpu-paper / ped2-paper (the paper's method), paper (256x256 "
        "colour, for a GPU), tiny (tests).",
        epilog="example: stvad train monday.mp4 tuesday.mp4 --out runs/cam1",
    )
    train.add_argument(
        "data", nargs="+", metavar="SOURCE",
        help="normal footage: video files or frame folders (several), a folder of them, or a benchmark root",
    )  # fmt: skip
    train.add_argument("--out", required=True, help="run folder to write (checkpoints, metrics, threshold)")
    config_args(train)
    train.set_defaults(preset=None)
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    train.add_argument("--devices", default="1", help="Lightning devices: a count, or auto")
    train.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp")
    train.add_argument("--accelerator", default="auto", help="cpu | gpu | auto")
    train.add_argument("--no-calibrate", action="store_true", help="skip fitting the alarm threshold")
    train.add_argument("--quantile", type=float, default=None, help="of normal scores (default: 0.99)")
    train.set_defaults(func=_cmd_train)

    cal = sub.add_parser(
        "calibrate",
        help="(re)fit a run's alarm threshold on normal footage",
        description="Fit the alarm threshold as a quantile of the scores of normal frames: the held-out tail "
        "of each training video, plus any normal footage given here (not used in training).",
    )
    cal.add_argument("run", help="a training run folder")
    cal.add_argument("sources", nargs="*", metavar="NORMAL", help="more normal video files or frame folders")
    cal.add_argument("--quantile", type=float, default=None, help="of normal scores (default: 0.99)")
    cal.add_argument(
        "--set",
        action="append",
        metavar="score.KEY=VALUE",
        help="how alarms score a frame (default: score.aggregate=patch-max, score.patch=0.5, the worst "
        "window of half the frame; score.aggregate=sum scores the whole frame as benchmarks do; "
        "score.causal_window=N alarms on the mean of the last N frame scores)",
    )
    cal.set_defaults(func=_cmd_calibrate)

    fm = sub.add_parser(
        "fit-motion",
        help="fit a run's flow model (training does it; for runs trained before it, or other scoring)",
        description="Fit the flow model that the flow and f2+flow scores need: the histogram of optical "
        "flow of the training clips, and the standardisers of the flow and f2 scores on the held-out normal "
        "clips, stored in RUN/motion.json. What is already fitted is kept, unless --refit.",
    )
    fm.add_argument("run", help="a training run folder")
    fm.add_argument("--which", default="best", choices=("best", "last"), help="the checkpoint to standardise")
    fm.add_argument("--refit", action="store_true", help="fit the flow histogram again")
    fm.add_argument(
        "--still",
        type=float,
        help="the still-foreground term's threshold in grey levels, 0: none (default: the run's score.still)",
    )
    fm.add_argument(
        "--set",
        action="append",
        metavar="score.KEY=VALUE",
        help="also standardise f2 for this scoring (the run's own and the alarms' are always fitted)",
    )
    fm.set_defaults(func=_cmd_fit_motion)

    ev = sub.add_parser("eval", help="score a benchmark's test videos and print the Table-1 metrics")
    ev.add_argument("run", help="a training run folder (or one of its checkpoints)")
    ev.add_argument("data", help="the benchmark folder with the test videos and their labels")
    ev.add_argument("--baseline", default=None, help="a run of the FFP-style baseline to add as a row")
    ev.add_argument(
        "--compare",
        action="append",
        metavar="RUN",
        help="another run on the same data (such as the paper-faithful twin, --preset cpu-paper) whose "
        "full, only-stn, dmap and f2 rows are added, tagged with its preset",
    )
    ev.add_argument("--json", default=None, metavar="FILE", help="write the results and protocol here")
    ev.add_argument("--report", default=None, help="folder for the HTML report")
    ev.add_argument("--sigma", type=float, default=None, help="also report with temporal smoothing")
    ev.add_argument("--layout", default=None, help="force a benchmark layout instead of detecting it")
    ev.add_argument("--set", action="append", metavar="score.KEY=VALUE", help="change how the run is scored")
    ev.set_defaults(func=_cmd_eval)

    demo = sub.add_parser("demo", help="synthesise data, train, evaluate and write the report")
    demo.add_argument("--out", default="runs/demo", help="folder for the data, the run and the report")
    demo.add_argument("--preset", default="cpu", help="cpu (the default detector) or cpu-paper (the paper's)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the synthetic set and of training")
    demo.add_argument("--size", default="default", help="synthetic set size: default | small | large")
    demo.set_defaults(func=_cmd_demo)

    score = sub.add_parser("score", help="score video files or frame folders: CSV, JSON, maps, overlay video")
    score.add_argument("run", help="a run folder (or, with --backend onnxruntime, an exported .onnx file)")
    score.add_argument("inputs", nargs="+", metavar="INPUT", help="video files or frame folders")
    score.add_argument("--out", default="scores", help="output folder (default: scores)")
    score.add_argument("--maps", action="store_true", help="also write the pixel maps (compressed .npz)")
    score.add_argument("--video", action="store_true", help="also write the overlay video")
    score.add_argument("--video-format", default="avi", help="avi (MJPG, default) | mp4 (mp4v)")
    score.add_argument("--backend", default="torch", help="torch | onnxruntime (needs `stvad export` first)")
    score.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    score.set_defaults(func=_cmd_score)

    watch = sub.add_parser("watch", help="score a video, camera or stream online; events as JSON lines")
    watch.add_argument("run", help="a calibrated run folder (or, with --backend onnxruntime, an .onnx file)")
    watch.add_argument("source", help="video file, frame folder, camera index or rtsp/http URL")
    watch.add_argument("--events", default=None, metavar="FILE", help="append events (JSON lines) here too")
    watch.add_argument("--backend", default="torch", help="torch | onnxruntime")
    watch.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    watch.add_argument("--loop", action="store_true", help="play a file or folder again and again")
    watch.add_argument("--threshold", type=float, default=None, help="instead of the run's calibrated one")
    watch.add_argument(
        "--min-event", type=float, default=MIN_EVENT_S, metavar="S",
        help=f"drop events shorter than S seconds (default {MIN_EVENT_S})",
    )  # fmt: skip
    watch.add_argument(
        "--merge-gap", type=float, default=MERGE_GAP_S, metavar="S",
        help=f"one event across gaps up to S seconds below the threshold (default {MERGE_GAP_S})",
    )  # fmt: skip
    watch.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    watch.set_defaults(func=_cmd_watch)

    exp = sub.add_parser("export", help="write the scorer as one ONNX or TorchScript graph")
    exp.add_argument("run", help="a training run folder")
    exp.add_argument("--format", default="onnx", help="onnx | torchscript")
    exp.add_argument("--out", default=None, metavar="FILE", help="default: RUN/export/model.onnx (or .pt)")
    exp.set_defaults(func=_cmd_export)
    return p


def busy_cores(window_s: float = 0.2) -> float:
    """How many cores other processes keep busy now: the non-idle share of the machine's CPU time over
    ``window_s`` seconds (/proc/stat), times the cores. The 1-minute load average, where /proc/stat is
    missing, lags a minute behind and counts this process's own recent work: in a first run of
    bench/threads.py it kept `auto` at one thread on the idle machine."""
    import os
    import time

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields[:8]), idle

    try:
        total0, idle0 = sample()
        time.sleep(window_s)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    span = total1 - total0
    return (os.cpu_count() or 1) * (1 - (idle1 - idle0) / span) if span > 0 else 0.0


def threads_for(setting: str, cores: int | None = None, load: float | None = None) -> int:
    """The torch thread count of ``--threads``: a number, or ``auto`` = the cores that other processes
    leave idle now (:func:`busy_cores`; ``load`` replaces that measurement), at least 1 and never more
    than OMP_NUM_THREADS when that is set (the environment's own limit, as job schedulers set it)."""
    import os

    if setting != "auto":
        try:
            n = int(setting)
        except ValueError:
            n = 0
        if n < 1:
            raise StvadError(f"--threads takes a number of at least 1 or 'auto', got '{setting}'")
        return n
    cores = cores or os.cpu_count() or 1
    env = os.environ.get("OMP_NUM_THREADS", "")
    cap = min(cores, int(env)) if env.isdigit() and int(env) > 0 else cores
    if cap == 1:
        return 1  # nothing to measure
    load = busy_cores() if load is None else load
    return max(1, min(cap, round(cores - load)))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    python_show = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        """StvadWarning as one line, like the errors; any other warning as Python shows it."""
        if issubclass(category, StvadWarning):
            print(f"stvad: warning: {message}", file=sys.stderr)
        else:
            python_show(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    import torch

    threads = torch.get_num_threads()  # restored at the end, for callers that run main() in-process
    try:
        torch.set_num_threads(threads_for(args.threads))
        return args.func(args)
    except StvadError as e:
        if args.debug:
            raise
        print(f"stvad: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # an environment failure that no check caught first (I/O error, full disk, ...)
        if args.debug:
            raise
        print(
            f"stvad: error: {e.filename}: {e.strerror}" if e.filename else f"stvad: error: {e}",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt as e:
        print(f"stvad: interrupted{f'; {e}' if str(e) else ''}", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = python_show
        torch.set_num_threads(threads)


if __name__ == "__main__":
    sys.exit(main())
