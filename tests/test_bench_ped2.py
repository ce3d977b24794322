"""Reusing a finished run only when it was trained with the config asked for now (bench/ped2.py relies on
it), and the Ped2 table of the docs is the one bench/results/ped2.json renders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stvad.checkpoint import check_reusable
from stvad.config import overrides_for_arch, preset
from stvad.errors import StvadError

ROOT = Path(__file__).resolve().parent.parent


def finished_run(path: Path, overrides: list[str]) -> Path:
    path.mkdir()
    (path / "config.json").write_text(json.dumps(preset("ped2").override(overrides).to_dict()))
    (path / "DONE").write_text("")
    return path


def test_a_finished_run_of_another_config_is_refused(tmp_path: Path) -> None:
    run = finished_run(tmp_path / "stgan-s0", ["model.g_skip_frames=1", "train.seed=0"])
    check_reusable(run, preset("ped2").override(["model.g_skip_frames=1", "train.seed=0"]))
    with pytest.raises(
        StvadError,
        match=r"stgan-s0: finished run trained with another config "
        r"\(model.g_skip_frames: 1 in the run, 4 asked for\)",
    ):
        check_reusable(run, preset("ped2").override(["train.seed=0"]))


def test_fields_the_baseline_does_not_read_do_not_block_reuse(tmp_path: Path) -> None:
    run = finished_run(tmp_path / "ffp-s0", ["model.arch=ffp", "model.g_skip_frames=1", "train.seed=0"])
    check_reusable(run, preset("ped2").override(["model.arch=ffp", "train.seed=0"]))
    with pytest.raises(StvadError, match=r"train.seed: 0 in the run, 1 asked for"):
        check_reusable(run, preset("ped2").override(["model.arch=ffp", "train.seed=1"]))


def test_overrides_the_baseline_does_not_have_stay_with_the_full_method() -> None:
    sets = ["model.d_context=4", "model.g_skip_frames=2", "train.max_steps=10"]
    assert overrides_for_arch("stgan", sets) == sets
    assert overrides_for_arch("ffp", sets) == ["train.max_steps=10"]


def test_the_ped2_table_in_the_docs_is_the_one_its_json_renders() -> None:
    """docs/results_ped2.md's generated table is not stale (regenerate: `python bench/ped2.py --readme`)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ped2.py"), "--readme", "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr + done.stdout
