"""Every bad input (tests/bad_inputs.py, the table in docs/bad_input.md) through the CLI and the API.

The contract: exit status 2, the error line "stvad: error: PATH: problem" is the last line on stderr and the
only one when the problem could be seen before any work, no traceback, the Python API raises the same
error, and every file that was there before keeps its bytes (no temporary file is left either).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

import bad_inputs as table
from stvad.cli import main
from stvad.errors import StvadError

pytestmark = pytest.mark.usefixtures("torch_one_thread")

# failures that can only happen after the work (the disk fills while results are written)
AFTER_WORK = {"full-disk-eval"}


def snapshot(folder: Path) -> dict[str, str]:
    """Every regular file below ``folder`` (not through the linked run/ and data/) -> sha256 of its bytes."""
    out = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = Path(dirpath) / name
            if not path.is_symlink():
                out[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.mark.parametrize("case", table.CASES, ids=[c.name for c in table.CASES])
def test_bad_input(case: table.Case, tiny_run: Path, synth_small: Path, tmp_path: Path) -> None:
    root = tmp_path / "case"
    table.prepare(case, root, tiny_run, synth_small)
    before, run_before = snapshot(root), snapshot(tiny_run)
    assert set(case.unchanged) <= set(before), "the case must write the files it says must survive"

    outcome = table.run_cli(case, root)

    assert outcome.status == case.status, outcome.stderr[-2000:]
    assert "Traceback" not in outcome.stderr
    assert re.fullmatch(table.expected_line(case), outcome.last_line), outcome.last_line
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    if case.status == 2 and case.name not in AFTER_WORK:
        others = [line for line in lines[:-1] if not line.startswith("stvad: warning: ")]
        assert not others, "a problem seen before any work is the only error, with no progress bars before it"
    after = snapshot(root)
    assert {p: after.get(p) for p in before} == before, "a file written before was changed or removed"
    assert not [p for p in after if Path(p).name.startswith(".") and p.endswith(".tmp")]
    assert snapshot(tiny_run) == run_before
    assert not (root / "pwned").exists()

    if case.api is not None:
        with table.working_directory(root), case.during(), pytest.raises(StvadError) as e:
            case.api()
        assert f"stvad: error: {e.value}" == outcome.last_line


def test_debug_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(StvadError, match="benchmark folder not found"):
        main(["--debug", "data", "info", str(tmp_path / "nowhere")])
    assert "stvad: error" not in capsys.readouterr().err


def test_the_table_is_the_generated_one() -> None:
    """docs/bad_input.md lists exactly the cases checked here, in order (regenerate it when they change)."""
    doc = table.DOC.read_text()
    rows = [line for line in doc.splitlines() if line.startswith("| ") and "`stvad " in line]
    assert len(rows) == len(table.CASES)
    for row, case in zip(rows, table.CASES):
        assert row.startswith(f"| {case.bad} | `{table.command(case)}` | {case.status} | ")
        seen = row.rsplit("| `", 1)[1].removesuffix("` |").replace("\\|", "|")
        assert re.fullmatch(table.expected_line(case), seen), seen
