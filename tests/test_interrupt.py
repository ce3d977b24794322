"""Killing training never costs more than the steps since the last checkpoint, and writes are atomic.

`stvad train` runs in a child process and is killed (SIGKILL, SIGINT) at random moments (fixed seed) after a
checkpoint exists; last.ckpt and best.ckpt must always load, and `--resume` must carry on to the end and
reach exactly the weights of an uninterrupted run. Scoring and report writing are interrupted in the middle
of a write: the previous file must survive whole.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from stvad.checkpoint import load_run, read_checkpoint
from stvad.cli import main
from stvad.config import preset
from stvad.train import train

REPO = Path(__file__).resolve().parent.parent
SETS = ["--set", "train.val_every=2", "--set", "train.val_windows=4"]


# A child inherits an ignored SIGINT from a suite started as a background job of a shell without job control
# (`make test &` in a script), and Python then leaves it ignored, as a nohup'd training should; these tests
# are of a Ctrl-C that reaches the training, so the child puts Python's handler in place before the CLI runs.
CLI = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from stvad.cli import main; sys.exit(main())"
)


def start(data: Path, run: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-c", CLI, "train", str(data), "--out", str(run), "--accelerator", "cpu"]
    return subprocess.Popen(
        [*cmd, *extra], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def checkpoint_after(run: Path, since_ns: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until the child has written last.ckpt after ``since_ns`` (it is replaced by a rename)."""
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + timeout
    while not (last.exists() and last.stat().st_mtime_ns > since_ns):
        assert proc.poll() is None, f"training ended early: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.02)


def intact(run: Path) -> int:
    """Both checkpoints load as a run, the JSON and CSV parse; returns the step of last.ckpt."""
    last = load_run(run, "last")
    load_run(run, "best")
    json.loads((run / "config.json").read_text())
    assert (run / "metrics.csv").read_text().startswith("step")
    return int(last.meta["step"])


def test_killed_training_resumes_to_the_same_weights(synth_small: Path, tmp_path: Path) -> None:
    rng = random.Random(9)
    run = tmp_path / "run"
    steps = []
    for kill, resume in ((signal.SIGKILL, False), (signal.SIGINT, True), (signal.SIGKILL, True)):
        since = (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns if resume else 0
        args = ["--resume"] if resume else ["--preset", "tiny", "--set", "train.max_steps=100000", *SETS]
        proc = start(synth_small, run, *args)
        checkpoint_after(run, since, proc)
        time.sleep(rng.uniform(0.0, 0.5))  # anywhere: in a step, a validation or a checkpoint write
        proc.send_signal(kill)
        _, err = proc.communicate(timeout=60)
        if kill == signal.SIGINT:
            assert proc.returncode == 130, err[-2000:]
            last_line = err.strip().splitlines()[-1]
            assert last_line.startswith("stvad: interrupted; the last good checkpoint (step "), last_line
            assert last_line.endswith("last.ckpt; continue with --resume") and "Traceback" not in err
        else:
            assert proc.returncode == -signal.SIGKILL
        steps.append(intact(run))
    assert steps == sorted(steps) and steps[0] >= 2

    final = steps[-1] + 4
    proc = start(synth_small, run, "--resume", "--set", f"train.max_steps={final}")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert intact(run) == final
    assert not list(run.rglob(".*.tmp")), "temporary files of killed writes are cleaned up on resume"

    # the interruptions cost nothing: the same weights as one uninterrupted run of `final` steps
    torch.set_num_threads(1)
    cfg = preset("tiny").override([f"train.max_steps={final}", *SETS[1::2]])
    whole = train(synth_small, tmp_path / "whole", cfg, accelerator="cpu", progress=False)
    a = read_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]
    b = read_checkpoint(whole / "checkpoints" / "last.ckpt")["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Interrupted(BaseException):
    """Stands for Ctrl-C or a crash in the middle of a write."""


def cut_write(monkeypatch: pytest.MonkeyPatch, k: int) -> list[Path]:
    """Let k atomic writes (stvad._io) finish, then cut the next one off after its data reached the temporary
    file, before the rename. Returns the targets of the writes begun, in order; the last one was cut."""
    targets: list[Path] = []
    real_mkstemp, real_fsync = tempfile.mkstemp, os.fsync

    def mkstemp(*args, dir=None, prefix="", **kwargs):
        targets.append(Path(dir) / prefix[1:-1])  # the writer names it ".NAME.<random>.tmp"
        return real_mkstemp(*args, dir=dir, prefix=prefix, **kwargs)

    def fsync(fd: int) -> None:
        if len(targets) > k:
            raise Interrupted
        real_fsync(fd)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(os, "fsync", fsync)
    return targets


def files(*roots: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for r in roots for p in ([r] if r.is_file() else r.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("k", [0, 1, 2])
def test_interrupted_score_leaves_the_previous_file(
    k, tiny_run: Path, synth_small: Path, tmp_path, monkeypatch
):
    out = tmp_path / "scores"
    argv = [
        "score",
        str(tiny_run),
        str(synth_small / "testing" / "frames" / "01"),
        "--out",
        str(out),
        "--maps",
    ]
    assert main(argv) == 0
    fresh = files(out)
    assert {p.name for p in fresh} == {"01.csv", "01.json", "01.maps.npz"}
    for p, data in fresh.items():  # an older result, told apart from a rewrite by one more byte
        p.write_bytes(data + b"\n")
    previous = files(out)

    targets = cut_write(monkeypatch, k)
    with pytest.raises(Interrupted):
        main(argv)
    done, cut = targets[:-1], targets[-1]
    assert len(done) == k
    expected = {p: fresh[p] if p in done else previous[p] for p in previous}
    assert files(out) == expected  # the cut file is the previous one, whole; no temporary file is left
    assert cut in previous


def test_interrupted_report_leaves_the_previous_files(
    tiny_run: Path, synth_small: Path, tmp_path, monkeypatch
):
    from stvad.evaluate import evaluate

    report, results = tmp_path / "report", tmp_path / "results.json"
    counted = cut_write(monkeypatch, 10**6)  # no cut: count the writes of a whole evaluation
    evaluate(tiny_run, synth_small, json_path=results, report_dir=report, progress=False)
    previous = files(results, report)
    assert results in counted and report / "index.html" in counted and len(counted) >= 4
    for k in (0, 1, len(counted) - 1):  # the JSON, the first figure, the page itself
        monkeypatch.undo()
        targets = cut_write(monkeypatch, k)
        with pytest.raises(Interrupted):
            evaluate(tiny_run, synth_small, json_path=results, report_dir=report, progress=False)
        assert files(results, report).keys() == previous.keys()  # nothing lost, no temporary file left
        assert files(targets[-1])[targets[-1]] == previous[targets[-1]]


def test_an_infinite_d_loss_stops_training_with_the_step_and_keeps_the_checkpoint(
    synth_small: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tests/test_train.py stops on a NaN G loss through the API; here an infinite D loss, through the CLI."""
    import stvad.train as train_mod

    original, calls = train_mod.d_adversarial_loss, {"n": 0}

    def inf_on_third_step(*args, **kwargs):
        calls["n"] += 1
        loss = original(*args, **kwargs)
        return loss + float("inf") if calls["n"] == 3 else loss

    monkeypatch.setattr(train_mod, "d_adversarial_loss", inf_on_third_step)
    torch.set_num_threads(1)
    run = tmp_path / "run"
    argv = ["train", str(synth_small), "--out", str(run), "--preset", "tiny", "--accelerator", "cpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "stvad: error: training diverged: the D loss is inf at step 3 of 4; stopped, the last good "
        f"checkpoint (step 2) is {run / 'checkpoints' / 'last.ckpt'}"
    )
    last = load_run(run, "last")
    assert last.meta["step"] == 2 and intact(run) == 2
    assert all(
        torch.isfinite(p).all() for p in [*last.generator.parameters(), *last.discriminator.parameters()]
    )
