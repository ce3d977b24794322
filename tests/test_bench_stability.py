"""bench/stability.py shares its runs among processes by a lock that a killed process gives back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from stability import claim  # noqa: E402


def test_a_lock_left_by_a_killed_process_is_claimed_again(tmp_path: Path) -> None:
    lock = tmp_path / "no-TTUR-s0.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); "
            f"from stability import claim; fd = claim(__import__('pathlib').Path({str(lock)!r})); "
            "print(fd is not None, flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "True"  # the other process holds the run
        assert claim(lock) is None  # so this one leaves it alone
    finally:
        holder.kill()
        holder.wait()
    assert lock.exists()  # killed: the file stays behind, as after a lost session
    fd = claim(lock)
    assert fd is not None  # but the lock went with the process, and the run is claimed again
    assert claim(lock) is None  # held now by this process's descriptor (flock locks are per open file)
    os.close(fd)
