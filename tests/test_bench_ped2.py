"""bench/ped2.py reuses a finished run only when it was trained with the config asked for now."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import bench_script
from stvad.config import preset
from stvad.errors import StvadError

ped2_bench = bench_script("ped2")


def finished_run(path: Path, overrides: list[str]) -> Path:
    path.mkdir()
    (path / "config.json").write_text(json.dumps(preset("ped2").override(overrides).to_dict()))
    (path / "DONE").write_text("")
    return path


def test_a_finished_run_of_another_config_is_refused(ped2_bench, tmp_path: Path) -> None:
    run = finished_run(tmp_path / "stgan-s0", ["model.g_skip_frames=1", "train.seed=0"])
    ped2_bench.check_reusable(run, preset("ped2").override(["model.g_skip_frames=1", "train.seed=0"]))
    with pytest.raises(
        StvadError,
        match=r"stgan-s0: finished run trained with another config "
        r"\(model.g_skip_frames: 1 in the run, 4 asked for\)",
    ):
        ped2_bench.train_run("unused", run, "ped2", 0, "stgan", [])


def test_fields_the_baseline_does_not_read_do_not_block_reuse(ped2_bench, tmp_path: Path) -> None:
    run = finished_run(tmp_path / "ffp-s0", ["model.arch=ffp", "model.g_skip_frames=1", "train.seed=0"])
    ped2_bench.check_reusable(run, preset("ped2").override(["model.arch=ffp", "train.seed=0"]))
    with pytest.raises(StvadError, match=r"train.seed: 0 in the run, 1 asked for"):
        ped2_bench.check_reusable(run, preset("ped2").override(["model.arch=ffp", "train.seed=1"]))


def test_overrides_the_baseline_does_not_have_stay_with_the_full_method(ped2_bench) -> None:
    sets = ["model.d_context=4", "model.g_skip_frames=2", "train.max_steps=10"]
    assert ped2_bench.overrides_for("stgan", sets) == sets
    assert ped2_bench.overrides_for("ffp", sets) == ["train.max_steps=10"]


def test_the_ped2_table_in_the_docs_is_the_one_its_json_renders(ped2_bench) -> None:
    """docs/results_ped2.md's generated table is not stale (regenerate: `python bench/ped2.py --readme`)."""
    import json
    import re

    result = json.loads((Path(ped2_bench.OUT)).read_text())
    text = ped2_bench.README.read_text()
    block = re.search(re.escape(ped2_bench.BEGIN) + r"\n(.*?)" + re.escape(ped2_bench.END), text, flags=re.S)
    assert block is not None and block.group(1) == ped2_bench.render(result)
