import os

import pytest

from stvad._io import atomic_open, atomic_write_json
from stvad.errors import StvadError


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "out" / "r.json"
    atomic_write_json(p, {"a": 1})
    atomic_write_json(p, {"a": 2})
    assert p.read_text().strip().endswith("}")
    assert '"a": 2' in p.read_text()
    assert [f.name for f in p.parent.iterdir()] == ["r.json"]


def test_interrupted_write_keeps_previous_version(tmp_path):
    p = tmp_path / "r.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(p, "w") as f:
        f.write("half")
        raise RuntimeError("killed")
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["r.txt"]


def test_unwritable_folder_is_a_clear_error(tmp_path):
    # a path below a regular file cannot be created, even by root (chmod would not stop root)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StvadError, match="cannot write") as e:
        atomic_write_json(blocker / "sub" / "x.json", {})
    assert str(blocker / "sub") in str(e.value)


def test_full_disk_is_a_clear_error_and_keeps_old_file(tmp_path, monkeypatch):
    p = tmp_path / "r.txt"
    p.write_text("old")

    def no_space(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(StvadError, match="No space left on device"):
        atomic_write_json(p, {"new": True})
    assert p.read_text() == "old"


def test_outputs_get_the_usual_permissions(tmp_path):
    p = tmp_path / "r.json"
    atomic_write_json(p, {})
    mask = os.umask(0)
    os.umask(mask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~mask


@pytest.fixture
def sigint():
    """Set SIGINT's handler for one test (a suite started as a background job finds it ignored) and put
    the one found back after."""
    import signal

    found = signal.getsignal(signal.SIGINT)
    yield lambda handler: signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGINT, found)


def _save_with_ctrl_c(monkeypatch, path, calls=None):
    """atomic_torch_save of a small dict with a SIGINT sent to this process in the middle of torch.save."""
    import os
    import signal

    import torch

    from stvad import _io

    real_save = torch.save

    def save_interrupted(obj, f):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C lands mid-write
        if calls is not None:
            calls.append("written")
        real_save(obj, f)

    monkeypatch.setattr(torch, "save", save_interrupted)
    try:
        _io.atomic_torch_save(path, {"w": torch.ones(3)})
    finally:
        monkeypatch.setattr(torch, "save", real_save)


def test_ctrl_c_during_a_checkpoint_write_waits_for_the_write(tmp_path, monkeypatch, sigint):
    """A SIGINT in the middle of torch.save is held until the file is whole, then raised as Ctrl-C."""
    import signal

    import torch

    sigint(signal.default_int_handler)
    path = tmp_path / "last.ckpt"
    with pytest.raises(KeyboardInterrupt):
        _save_with_ctrl_c(monkeypatch, path)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(3))  # complete, not torn
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler it found is back


def test_a_held_ctrl_c_goes_to_the_handler_found_and_an_ignored_one_stays_ignored(
    tmp_path, monkeypatch, sigint
):
    """A process that ignores SIGINT (a background job, nohup) is not stopped by one landing in a write;
    a handler of the caller's own is called once, after the write."""
    import signal

    import torch

    sigint(signal.SIG_IGN)
    _save_with_ctrl_c(monkeypatch, tmp_path / "a.ckpt")  # no KeyboardInterrupt
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN

    calls: list[str] = []
    sigint(lambda signum, frame: calls.append("handler"))
    _save_with_ctrl_c(monkeypatch, tmp_path / "b.ckpt", calls)
    assert calls == ["written", "handler"]
    assert torch.equal(torch.load(tmp_path / "b.ckpt", weights_only=True)["w"], torch.ones(3))
