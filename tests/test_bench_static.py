"""bench/static_anomalies.py: the static/moving split of anomalous frames and its exact ceiling."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import bench_script

static_bench = bench_script("static_anomalies")


def test_mask_change_by_hand(static_bench):
    box = np.zeros((8, 8), bool)
    box[2:4, 2:4] = True  # 4 pixels
    shifted = np.roll(box, 1, axis=1)  # overlaps box in 2 pixels: union 6, xor 4
    empty = np.zeros((8, 8), bool)
    masks = [empty, box, box, shifted, empty, empty]
    index = np.arange(1, 6)
    labels = np.array([1, 1, 1, 0, 1])
    change = static_bench.mask_change(masks, index, labels)
    assert change[0] == 1.0  # appears: all of the union is new
    assert change[1] == 0.0  # same box as before
    assert change[2] == pytest.approx(4 / 6)
    assert np.isnan(change[3])  # normal frame
    assert change[4] == 1.0  # labelled, no mask pixels anywhere: counted as moving


def test_micro_auroc_is_the_weighted_mean_of_its_parts(static_bench):
    rng = np.random.default_rng(0)
    n_norm, n_static, n_moving = 300, 80, 120
    labels = np.r_[np.zeros(n_norm), np.ones(n_static + n_moving)].astype(np.uint8)
    change = np.r_[np.full(n_norm, np.nan), np.full(n_static, 0.01), np.full(n_moving, 0.5)]
    scores = np.r_[rng.normal(0, 1, n_norm), rng.normal(0.2, 1, n_static), rng.normal(1.5, 1, n_moving)]
    res = static_bench.analyse({"full": scores}, labels, change, 0.05, None)
    row = res["variants"]["full"]
    assert res["static_frames"] == n_static and res["moving_frames"] == n_moving
    share = n_static / (n_static + n_moving)
    assert row["auroc_micro"] == pytest.approx(
        share * row["auroc_static"] + (1 - share) * row["auroc_moving"]
    )
    assert row["ceiling_moving_perfect"] == pytest.approx(share * row["auroc_static"] + (1 - share))

    # the ceiling is what the AUROC becomes when every moving frame outranks every normal one
    lifted = scores.copy()
    lifted[n_norm + n_static :] = scores.max() + 1 + np.arange(n_moving)
    again = static_bench.analyse({"full": lifted}, labels, change, 0.05, None)["variants"]["full"]
    assert again["auroc_micro"] == pytest.approx(row["ceiling_moving_perfect"])
