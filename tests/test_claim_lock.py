"""stvad._io.claim_lock, by which bench/stability.py shares its runs among processes: a killed holder gives
the lock back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from stvad._io import claim_lock


def test_a_lock_left_by_a_killed_process_is_claimed_again(tmp_path: Path) -> None:
    lock = tmp_path / "no-TTUR-s0.lock"
    code = (
        "import sys; from stvad._io import claim_lock; "
        f"print(claim_lock({str(lock)!r}) is not None, flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "True"  # the other process holds the job
        assert claim_lock(lock) is None  # so this one leaves it alone
    finally:
        holder.kill()
        holder.wait()
    assert lock.exists()  # killed: the file stays behind, as after a lost session
    fd = claim_lock(lock)
    assert fd is not None  # but the lock went with the process, and the job is claimed again
    assert claim_lock(lock) is None  # held now by this descriptor (flock locks belong to the open file)
    os.close(fd)
