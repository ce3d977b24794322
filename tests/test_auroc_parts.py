"""How much of an anomaly stands still (stvad.data.labels.mask_change) and the exact split of a micro AUROC
into parts (stvad.metrics.auroc_of_part), on which experiments/static_anomalies.py's ceiling rests."""

from __future__ import annotations

import numpy as np
import pytest

from stvad.data.labels import mask_change
from stvad.metrics import auroc_micro, auroc_of_part


def test_mask_change_by_hand():
    box = np.zeros((8, 8), bool)
    box[2:4, 2:4] = True  # 4 pixels
    shifted = np.roll(box, 1, axis=1)  # overlaps box in 2 pixels: union 6, xor 4
    empty = np.zeros((8, 8), bool)
    masks = [empty, box, box, shifted, empty, empty]
    index = np.arange(1, 6)
    labels = np.array([1, 1, 1, 0, 1])
    change = mask_change(masks, index, labels)
    assert change[0] == 1.0  # appears: all of the union is new
    assert change[1] == 0.0  # same box as before
    assert change[2] == pytest.approx(4 / 6)
    assert np.isnan(change[3])  # normal frame
    assert change[4] == 1.0  # labelled, no mask pixels anywhere: counted as moving


def test_micro_auroc_is_the_weighted_mean_of_its_parts_and_the_ceiling_is_exact():
    rng = np.random.default_rng(0)
    n_norm, n_static, n_moving = 300, 80, 120
    labels = np.r_[np.zeros(n_norm), np.ones(n_static + n_moving)].astype(np.uint8)
    static = np.r_[np.zeros(n_norm, bool), np.ones(n_static, bool), np.zeros(n_moving, bool)]
    moving = (labels == 1) & ~static
    scores = np.r_[rng.normal(0, 1, n_norm), rng.normal(0.2, 1, n_static), rng.normal(1.5, 1, n_moving)]
    share = n_static / (n_static + n_moving)
    a_static, a_moving = auroc_of_part(scores, labels, static), auroc_of_part(scores, labels, moving)
    assert auroc_micro([scores], [labels]) == pytest.approx(share * a_static + (1 - share) * a_moving)
    # every moving frame ranked above every normal one: the AUROC becomes the ceiling share*static + moving
    lifted = scores.copy()
    lifted[n_norm + n_static :] = scores.max() + 1 + np.arange(n_moving)
    assert auroc_micro([lifted], [labels]) == pytest.approx(share * a_static + (1 - share))
    assert auroc_of_part(scores, labels, np.zeros_like(static)) is None
