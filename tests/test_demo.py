"""`stvad demo` end to end with the tiny preset on the small synthetic set (speed, not quality)."""

import json

from stvad.cli import main


def test_demo_runs_end_to_end_and_resumes(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--preset", "tiny", "--size", "small"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| full |" in printed and "report:" in printed
    assert (out / "report" / "index.html").exists()
    saved = json.loads((out / "eval.json").read_text())
    assert {"full", "only-stn", "copy-last"} <= set(saved["results"])
    assert json.loads((out / "run" / "calibration.json").read_text())["threshold"] > 0
    first = (out / "run" / "checkpoints" / "best.ckpt").stat().st_mtime_ns

    assert main(args) == 0  # a second run reuses the data and the finished training
    printed = capsys.readouterr().out
    assert "reusing the synthetic benchmark" in printed and "reusing the trained run" in printed
    assert (out / "run" / "checkpoints" / "best.ckpt").stat().st_mtime_ns == first
