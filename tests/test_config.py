import json

import pytest

from stvad.config import PRESETS, Config, preset
from stvad.errors import StvadError


def test_presets_round_trip_through_json():
    for name in PRESETS:
        cfg = preset(name)
        assert cfg.preset == name
        again = Config.from_dict(json.loads(cfg.to_json()))
        assert again == cfg


def test_set_coerces_types():
    cfg = preset("cpu").override(
        [
            "train.lr_g=2e-4",
            "data.size=96x80",
            "model.g_skip=false",
            "train.betas_d=0.5,0.99",
            "data.layout=ffp",
        ]
    )
    assert cfg.train.lr_g == 2e-4
    assert cfg.data.size == (96, 80)
    assert cfg.model.g_skip is False
    assert cfg.train.betas_d == (0.5, 0.99)
    assert cfg.data.layout == "ffp"
    assert preset("cpu").override(["data.layout=none"]).data.layout is None


def test_override_leaves_original_untouched():
    base = preset("cpu")
    base.override(["train.max_steps=7"])
    assert base.train.max_steps == preset("cpu").train.max_steps


@pytest.mark.parametrize(
    "assignment, fragment",
    [
        ("train.nope=1", "unknown config key 'train.nope'"),
        ("nosection.x=1", "unknown config key 'nosection.x'"),
        ("train.max_steps=ten", "expects int"),
        ("model.g_skip=maybe", "expects bool"),
        ("data.size=64", "expects tuple"),
        ("train.lr_g", "expects key=value"),
    ],
)
def test_bad_overrides_are_one_line_errors(assignment, fragment):
    with pytest.raises(StvadError) as e:
        preset("cpu").override([assignment])
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_from_dict_rejects_wrong_json_types():
    with pytest.raises(StvadError, match="expects int"):
        Config.from_dict({"train": {"max_steps": "many"}}, source="run/config.json")
    with pytest.raises(StvadError, match="expects int"):
        Config.from_dict({"train": {"max_steps": True}})


def test_unknown_preset():
    with pytest.raises(StvadError, match="unknown preset 'huge'"):
        preset("huge")
