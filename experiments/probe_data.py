"""What the flow probes without a GAN run share: a data set at a preset's size, split as training splits it.

from probe_data import preset_split  # scripts in experiments/ run with this folder on sys.path
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from stvad.config import Config, preset
from stvad.data.layouts import Dataset, open_dataset
from stvad.data.windows import split_train_val


@dataclass
class PresetSplit:
    cfg: Config
    ds: Dataset
    train: list  # (source, start, stop) clips the priors are fitted on
    val: list  # the held-out tails of the training videos
    clip: Callable[[tuple], list[np.ndarray]]  # a clip -> its uint8 frames at the preset's size


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
