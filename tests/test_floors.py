"""The trivial floors: copy-last-frame -PSNR and distance to the mean training frame."""

from __future__ import annotations

import numpy as np
import pytest

from stvad.data.layouts import open_dataset
from stvad.data.sources import open_source
from stvad.floors import copy_last_scores, iter_frames, mean_frame, mean_frame_scores


def grey_video(values: list[int], size: tuple[int, int] = (8, 10)) -> list[np.ndarray]:
    return [np.full(size, v, np.uint8) for v in values]


def test_copy_last_is_minus_psnr_of_the_previous_frame_from_index_T():
    frames = grey_video([0, 0, 0, 0, 0, 51, 51, 0])
    s = copy_last_scores(frames, T=4)
    assert len(s) == len(frames) - 4  # s[j] scores frame j + T
    # frame 5 differs from frame 4 by 51/255 = 0.2 everywhere: MSE 0.04, PSNR 13.98 dB
    assert s[1] == pytest.approx(10 * np.log10(0.04))
    assert s[2] == s[0] == pytest.approx(-100.0)  # identical frames: MSE clamped at 1e-10
    assert s[3] == pytest.approx(s[1])
    assert np.argmax(s) in (1, 3)


def test_mean_frame_distance_is_zero_at_the_mean_and_grows_away_from_it():
    train = [grey_video([10, 30]), grey_video([20])]
    mean = mean_frame(train)
    assert mean.shape == (8, 10, 1)
    assert mean[0, 0, 0] == pytest.approx(20 / 255)
    s = mean_frame_scores(grey_video([0, 0, 20, 20, 40, 120]), mean, T=2)
    assert s[:2] == pytest.approx([0.0, 0.0])
    assert s[2] == pytest.approx((20 / 255) ** 2)
    assert s[3] > s[2]
    with pytest.raises(ValueError):
        mean_frame([])


def test_frames_are_resized_and_turned_grey():
    rgb = [np.dstack([np.full((40, 60), v, np.uint8)] * 3) for v in (0, 100, 200)]
    out = list(iter_frames(rgb, size=(16, 16), channels=1))
    assert [f.shape for f in out] == [(16, 16, 1)] * 3
    assert out[1][0, 0, 0] == pytest.approx(100 / 255)
    assert next(iter_frames(grey_video([7]), channels=3)).shape == (8, 10, 3)


def test_takes_frame_sources_and_video_records(synth_small):
    ds = open_dataset(synth_small)
    video = ds.test[0]
    by_record = copy_last_scores(video, T=4, size=(64, 64))
    by_source = copy_last_scores(open_source(synth_small / "testing" / "frames" / "01"), T=4, size=(64, 64))
    assert len(by_record) == len(video.source) - 4
    assert np.array_equal(by_record, by_source)
    mean = mean_frame(ds.train, size=(64, 64))
    assert mean.shape == (64, 64, 1)
    assert len(mean_frame_scores(video, mean, T=4, size=(64, 64))) == len(video.source) - 4
