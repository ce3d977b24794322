"""Files from elsewhere are data, never code: crafted checkpoints are refused by every command that loads
one, pickles inside .npy ground truth are never unpickled, and malformed checkpoints or exported models
give one clear error.

The API-level refusal of a code-running checkpoint is tests/test_train.py's; here the same file goes
through each CLI command, with several ways of smuggling code in. UCSD .m files are parsed as text
(tests/test_fuzz_readers.py::test_ucsd_m_is_parsed_never_executed).
"""

from __future__ import annotations

import builtins
import json
import os
import pickle
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stvad.checkpoint import load_run
from stvad.cli import main
from stvad.config import Config
from stvad.data.labels import NpyMaskSource, read_shanghaitech_labels
from stvad.errors import StvadError

pytestmark = pytest.mark.usefixtures("torch_one_thread")


class RunsCode:
    """Unpickling this calls ``call(*args)``: what a malicious checkpoint does."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


def payloads(marker: Path) -> dict[str, object]:
    touch = f"touch {marker}"
    return {
        "os.system": RunsCode(os.system, touch),
        "subprocess": RunsCode(subprocess.call, ["touch", str(marker)]),
        "exec": RunsCode(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
        "own class": Config(),  # even stvad's own classes: a checkpoint holds plain types only
    }


def evil_run(root: Path, tiny_run: Path, payload: object, where: str, legacy: bool = False) -> Path:
    """A run folder (config.json of a real run) whose checkpoints carry ``payload`` at ``where``."""
    run = root / "evil"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(tiny_run / "config.json", run / "config.json")
    good = torch.load(tiny_run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    if where == "config":
        good["stvad"]["config"] = payload
    elif where == "weights":
        good["state_dict"]["G.evil"] = payload
    else:
        good = payload
    for name in ("best.ckpt", "last.ckpt"):
        path = run / "checkpoints" / name
        if legacy:  # the pre-zip torch format is a bare pickle, read by the same restricted unpickler
            path.write_bytes(pickle.dumps(good, protocol=2))
        else:
            torch.save(good, path)
    return run


COMMANDS = {
    "eval": lambda run, data: ["eval", str(run), str(data)],
    "score": lambda run, data: [
        "score",
        str(run),
        str(data / "testing" / "frames" / "01"),
        "--out",
        "scores",
    ],
    "watch": lambda run, data: [
        "watch",
        str(run),
        str(data / "testing" / "frames" / "01"),
        "--threshold",
        "1",
    ],
    "export": lambda run, data: ["export", str(run), "--format", "torchscript"],
    "resume": lambda run, data: ["train", str(data), "--out", str(run), "--resume"],
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    "kind, where, legacy",
    [
        ("os.system", "whole", False),
        ("subprocess", "config", False),
        ("exec", "weights", False),
        ("os.system", "whole", True),
        ("own class", "config", False),
    ],
)
def test_every_command_refuses_a_checkpoint_that_would_run_code(
    command, kind, where, legacy, tiny_run, synth_small, tmp_path, capsys, monkeypatch
) -> None:
    marker = tmp_path / "pwned"
    run = evil_run(tmp_path, tiny_run, payloads(marker)[kind], where, legacy)
    monkeypatch.chdir(tmp_path)
    assert main(COMMANDS[command](run, synth_small)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    which = "last" if command == "resume" else "best"
    assert last.startswith(
        f"stvad: error: {run}/checkpoints/{which}.ckpt: refusing to load: the checkpoint would import "
    ), last
    assert last.endswith("; a checkpoint may hold only tensors and plain types")
    assert not marker.exists()


def test_the_refusal_names_what_the_file_would_import(tiny_run, tmp_path) -> None:
    marker = tmp_path / "pwned"
    for kind, name in [
        ("os.system", "posix.system"),
        ("exec", "exec"),
        ("own class", "stvad.config.Config"),
    ]:
        where = "config" if kind == "own class" else "whole"
        run = evil_run(tmp_path / kind, tiny_run, payloads(marker)[kind], where)
        with pytest.raises(StvadError, match=rf"would import {name};"):
            load_run(run)
    assert not marker.exists()


def pickled_npy(path: Path, marker: Path) -> Path:
    """A .npy whose object array, if unpickled, would create ``marker``."""
    a = np.empty(1, dtype=object)
    a[0] = RunsCode(os.system, f"touch {marker}")
    np.save(path, a, allow_pickle=True)
    return path


def test_npy_ground_truth_is_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    masks = tmp_path / "test_frame_mask"
    masks.mkdir()
    pickled_npy(masks / "01_0014.npy", marker)
    with pytest.raises(StvadError, match="cannot read frame mask"):
        read_shanghaitech_labels(masks)
    with pytest.raises(StvadError, match="cannot read mask volume"):
        NpyMaskSource(pickled_npy(tmp_path / "pixel.npy", marker))
    assert not marker.exists()


# ------------------------------------------------------------------------ malformed but harmless checkpoints

plain = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=4), st.just(torch.zeros(2))),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["config", "meta", "step", "x"]), inner)
    ),
    max_leaves=8,
)
checkpoints = st.fixed_dictionaries(
    {},
    optional={
        "state_dict": st.one_of(
            plain, st.dictionaries(st.sampled_from(["G.w", "D.w", 3]), plain, max_size=2)
        ),
        "stvad": st.one_of(
            plain,
            st.fixed_dictionaries(
                {"config": st.one_of(plain, st.just({}), st.just({"model": {"g_width": "wide"}}))},
                optional={"meta": plain, "step": plain},
            ),
        ),
    },
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(checkpoints)
def test_malformed_checkpoints_are_one_clear_error(ckpt: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run" / "checkpoints" / "best.ckpt"
        path.parent.mkdir(parents=True)
        torch.save(ckpt, path)
        with pytest.raises(StvadError) as e:
            load_run(Path(tmp) / "run")
        assert e.value.path == str(path) and "\n" not in str(e.value)


def test_an_exported_model_with_bad_metadata_is_one_clear_error(tiny_run, tmp_path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import onnx

    from stvad.export import OnnxEngine, export

    good = Path(export(tiny_run, "onnx", tmp_path / "model.onnx")["path"])
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07 not a model")
    with pytest.raises(StvadError, match="cannot load the ONNX model"):
        OnnxEngine(tmp_path / "junk.onnx")
    for key, value in [("stvad_config", "{not json"), ("stvad_config", "[1, 2]"), ("stvad_calibration", "7")]:
        proto = onnx.load(str(good))
        for entry in proto.metadata_props:
            if entry.key == key:
                entry.value = value
        if key not in {e.key for e in proto.metadata_props}:
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        bad = tmp_path / "bad.onnx"
        onnx.save(proto, str(bad))
        with pytest.raises(StvadError) as e:
            OnnxEngine(bad)
        assert e.value.path == str(bad), json.dumps([key, value])
