"""Windows: one per frame after the first T, aligned to the target's index; clips decoded once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import frame_value, write_frames, write_video
from stvad.data.sources import ImageFolderSource, open_source, to_model
from stvad.data.windows import WindowDataset, iter_windows, split_train_val
from stvad.errors import StvadError


def numbered(n: int):
    for i in range(n):
        yield np.full((2, 3, 1), i, np.uint8)


def test_iter_windows_alignment_and_count():
    windows = list(iter_windows(numbered(10), T=3))
    assert [w[0] for w in windows] == list(range(3, 10))
    for index, past, target in windows:
        assert past.shape == (3, 2, 3, 1) and past.dtype == np.uint8
        assert past[:, 0, 0, 0].tolist() == [index - 3, index - 2, index - 1]
        assert target[0, 0, 0] == index
    assert list(iter_windows(numbered(3), T=3)) == []


def test_iter_windows_streams():
    consumed = []

    def frames():
        for f in numbered(100):
            consumed.append(int(f[0, 0, 0]))
            yield f

    first = next(iter_windows(frames(), T=4))
    assert first[0] == 4 and consumed == [0, 1, 2, 3, 4]


class CountingSource(ImageFolderSource):
    decodes = 0

    def iter_range(self, start=0, stop=None):
        CountingSource.decodes += 1
        return super().iter_range(start, stop)


def test_window_dataset_items_targets_and_single_decode(tmp_path):
    CountingSource.decodes = 0
    a = CountingSource(write_frames(tmp_path / "a", 9))
    b = CountingSource(write_frames(tmp_path / "b", 7))
    ds = WindowDataset([(a, 0, 9), (b, 2, 7)], T=3, size=(12, 16), channels=1, stride=2)
    # clip a: targets 3, 5, 7; clip b (frames 2..6): targets 5 only (its first 3 frames are context)
    assert ds.targets == [(0, 3), (0, 5), (0, 7), (1, 5)]
    assert len(ds) == 4
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == (3, 1, 12, 16) and y.shape == (1, 12, 16) and x.dtype == torch.float32
    x, y = ds[3]
    expected = np.stack(list(b.frames((12, 16), 1)))
    assert torch.equal(x, to_model(expected[2:5])) and torch.equal(y, to_model(expected[5]))
    assert CountingSource.decodes == 3  # one decode per clip at construction, one above for `expected`


def test_window_dataset_over_video_clip(tmp_path):
    src = open_source(write_video(tmp_path / "v.avi", 10))
    ds = WindowDataset([(src, 4, 10)], T=2, size=(24, 32), channels=3)
    assert [t for _, t in ds.targets] == [6, 7, 8, 9]
    _, y = ds[0]
    red = (y[0].mean().item() + 1) * 127.5
    assert abs(red - frame_value(6)) < 4


def test_window_dataset_clip_past_the_end(tmp_path):
    src = ImageFolderSource(write_frames(tmp_path / "a", 5))
    with pytest.raises(StvadError, match="past the end"):
        WindowDataset([(src, 0, 8)], T=2, size=(8, 8), channels=1)


def test_split_train_val_holds_out_tails(tmp_path):
    long = ImageFolderSource(write_frames(tmp_path / "long", 40, size=(4, 4)))
    short = ImageFolderSource(write_frames(tmp_path / "short", 9, size=(4, 4)))
    mid = ImageFolderSource(write_frames(tmp_path / "mid", 12, size=(4, 4)))
    train, val = split_train_val([long, short, mid], val_fraction=0.1, T=4)
    # long: ceil(4) < T+1 = 5 frames, so 5 are held out; short cannot give both parts 5 frames
    assert train == [(long, 0, 35), (short, 0, 9), (mid, 0, 7)]
    assert val == [(long, 35, 40), (mid, 7, 12)]
    train, val = split_train_val([long], val_fraction=0.25, T=4)
    assert train == [(long, 0, 30)] and val == [(long, 30, 40)]
    assert split_train_val([long, short], 0.0, T=4) == ([(long, 0, 40), (short, 0, 9)], [])
    with pytest.raises(StvadError, match="long enough"):
        split_train_val([short], 0.2, T=4)


def test_split_accepts_layout_records(tmp_path):
    from stvad.data.layouts import Video

    src = ImageFolderSource(write_frames(tmp_path / "a", 20, size=(4, 4)))
    train, val = split_train_val([Video("a", src)], 0.5, T=2)
    assert train == [(src, 0, 10)] and val == [(src, 10, 20)]
    ds = WindowDataset(val, T=2, size=(4, 4), channels=1)
    # validation windows draw their context from the held-out tail only
    assert [t for _, t in ds.targets] == list(range(12, 20))
