"""What the flow probes without a GAN run share: a data set at a preset's size, split as training splits it.

from probe_data import preset_split, set_parser  # scripts in experiments/ run with this folder on sys.path
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NamedTuple

import cv2
import numpy as np

from stvad.config import Config, preset
from stvad.data.layouts import Dataset, open_dataset
from stvad.data.windows import split_train_val


class PresetSplit(NamedTuple):
    cfg: Config
    ds: Dataset
    train: list  # (source, start, stop) clips the priors are fitted on
    val: list  # the held-out tails of the training videos
    clip: Callable[[tuple], list[np.ndarray]]  # a clip -> its uint8 frames at the preset's size


def set_parser(doc: str, default_preset: str) -> argparse.ArgumentParser:
    """The arguments every such probe takes: the data set, the preset to read and split it by, the JSON."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--preset", default=default_preset)
    ap.add_argument("--json")
    return ap


def preset_split(data: str, preset_name: str) -> PresetSplit:
    """``data`` opened, its training videos split into training clips and held-out tails as ``preset_name``
    splits them, and a reader of clips at that preset's size and channels (OpenCV on one thread)."""
    cv2.setNumThreads(1)
    cfg = preset(preset_name)
    size, ch = tuple(cfg.data.size), cfg.data.channels
    ds = open_dataset(data)
    train, val = split_train_val(ds.train, cfg.data.val_fraction, cfg.data.T)

    def clip(c: tuple) -> list[np.ndarray]:
        src, start, stop = c
        return list(src.frames(size, ch, start=start, stop=stop))

    return PresetSplit(cfg, ds, train, val, clip)
