import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from stvad import StvadError
from stvad.metrics import (
    aupr,
    auroc_macro,
    auroc_micro,
    eer,
    evaluate_scores,
    frame_metrics,
    pixel_auroc,
)

# Hand example, 2 anomalous (A) and 4 normal (N) frames, in descending score order:
#   0.9 A, 0.8 N, 0.7 A, 0.3 N, 0.2 N, 0.1 N
# AUROC by pair counting: A=0.9 beats all 4 N, A=0.7 beats 0.3, 0.2, 0.1 -> 7 of 2*4 pairs = 0.875.
# Average precision: recall 1/2 at precision 1 (after 0.9), recall 1 at precision 2/3 (after 0.7)
#   -> 0.5 * 1 + 0.5 * 2/3 = 5/6.
# ROC points (FPR, TPR): (0,0) (0,.5) (.25,.5) (.25,1) (.5,1) (.75,1) (1,1). FPR - FNR = FPR + TPR - 1 goes
# -1, -.5, -.25, +.25: it crosses zero halfway up the vertical segment from (.25,.5) to (.25,1), where
# FPR = .25 and FNR = 1 - .75 = .25 -> EER = 0.25.
HAND_SCORES = [np.array([0.3, 0.9, 0.1]), np.array([0.7, 0.2, 0.8])]
HAND_LABELS = [np.array([0, 1, 0]), np.array([1, 0, 0])]


def test_hand_example():
    assert auroc_micro(HAND_SCORES, HAND_LABELS) == pytest.approx(0.875)
    assert aupr(HAND_SCORES, HAND_LABELS) == pytest.approx(5 / 6)
    assert eer(HAND_SCORES, HAND_LABELS) == pytest.approx(0.25)
    # per video: video 0 has A=0.9 above both N -> 1.0; video 1 has A=0.7 above 0.2 but below 0.8 -> 0.5
    assert auroc_macro(HAND_SCORES, HAND_LABELS) == (pytest.approx(0.75), 0)


def test_eer_interpolates_on_a_horizontal_segment():
    # 0.9 A, 0.6 N, 0.5 N, 0.4 A, 0.1 N: ROC (0,0) (0,.5) (1/3,.5) (2/3,.5) (2/3,1) (1,1); FPR + TPR - 1 is
    # -1/6 at (1/3,.5) and +1/6 at (2/3,.5), so the crossing is at FPR = .5 where FNR = .5 as well.
    scores = [np.array([0.9, 0.6, 0.5, 0.4, 0.1])]
    labels = [np.array([1, 0, 0, 1, 0])]
    assert eer(scores, labels) == pytest.approx(0.5)


def _random_set(rng, videos=5):
    scores, labels = [], []
    for _ in range(videos):
        n = int(rng.integers(30, 80))
        y = (rng.random(n) < 0.4).astype(np.uint8)
        scores.append(rng.normal(size=n) + 0.8 * y)
        labels.append(y)
    return scores, labels


def test_against_scikit_learn_on_random_data():
    rng = np.random.default_rng(1)
    scores, labels = _random_set(rng)
    s, y = np.concatenate(scores), np.concatenate(labels)
    m = frame_metrics(scores, labels)
    assert m["auroc_micro"] == pytest.approx(roc_auc_score(y, s))
    assert m["aupr"] == pytest.approx(average_precision_score(y, s))
    assert m["auroc_macro"] == pytest.approx(np.mean([roc_auc_score(b, a) for a, b in zip(scores, labels)]))
    assert (m["frames"], m["anomalous_frames"], m["macro_excluded"]) == (len(y), int(y.sum()), 0)
    # the EER must sit between the best threshold's FPR and FNR (the interpolation happens inside a step)
    fpr, tpr, _ = roc_curve(y, s)
    fnr = 1 - tpr
    i = int(np.argmin(np.abs(fpr - fnr)))
    assert min(fpr[i], fnr[i]) - 1e-12 <= m["eer"] <= max(fpr[i], fnr[i]) + 1e-12


def test_macro_excludes_single_class_videos_and_counts_them():
    scores = [np.array([0.1, 0.9]), np.array([0.5, 0.6]), np.array([0.2, 0.3])]
    labels = [np.array([0, 1]), np.array([0, 0]), np.array([1, 1])]
    assert auroc_macro(scores, labels) == (pytest.approx(1.0), 2)
    mean, excluded = auroc_macro(scores[1:], labels[1:])
    assert np.isnan(mean) and excluded == 2


def test_bad_inputs_raise_stvad_error():
    with pytest.raises(StvadError, match="2 score arrays but 1 label"):
        auroc_micro([np.zeros(3), np.zeros(3)], [np.zeros(3)])
    with pytest.raises(StvadError, match="video 0"):
        auroc_micro([np.zeros(3)], [np.zeros(4)])
    with pytest.raises(StvadError, match="single class"):
        auroc_micro([np.arange(4.0)], [np.zeros(4)])
    with pytest.raises(StvadError, match="NaN"):
        auroc_micro([np.array([0.0, np.nan])], [np.array([0, 1])])


def test_evaluate_scores_normalisations():
    rng = np.random.default_rng(2)
    scores, labels = _random_set(rng)
    # give the videos very different offsets, which per-video min-max removes and global-max keeps
    scores = [s + 5 * i for i, s in enumerate(scores)]
    res = evaluate_scores({"a": scores, "b": [-s for s in scores]}, labels)
    assert set(res) == {"a", "b"} and set(res["a"]) == {"global-max", "per-video-minmax", "none"}
    a = res["a"]
    assert a["global-max"]["auroc_micro"] == pytest.approx(a["none"]["auroc_micro"])
    assert a["per-video-minmax"]["auroc_micro"] != pytest.approx(a["none"]["auroc_micro"])
    for norm in a:
        assert a[norm]["auroc_macro"] == pytest.approx(a["none"]["auroc_macro"])
    # negated scores (like -PSNR) keep their order under global-max: AUROC is 1 - that of "a"
    assert res["b"]["global-max"]["auroc_micro"] == pytest.approx(1 - a["none"]["auroc_micro"])


def test_pixel_auroc_matches_scikit_learn_and_subsamples_deterministically():
    rng = np.random.default_rng(3)
    masks = [rng.random((16, 16)) < 0.2 for _ in range(6)]
    maps = [rng.random((16, 16)) + 0.5 * m for m in masks]
    full = roc_auc_score(
        np.concatenate([m.ravel() for m in masks]), np.concatenate([a.ravel() for a in maps])
    )
    assert pixel_auroc(maps, masks, pixels_per_frame=None) == pytest.approx(full)
    sub = pixel_auroc(iter(maps), iter(masks), pixels_per_frame=100, seed=7)
    assert sub == pixel_auroc(maps, masks, pixels_per_frame=100, seed=7)
    assert sub != pytest.approx(full, abs=1e-9) and sub == pytest.approx(full, abs=0.08)
    with pytest.raises(StvadError, match="frame 1"):
        pixel_auroc(maps[:2], [masks[0], masks[1][:8]])


@pytest.mark.realdata
def test_copy_last_frame_floor_on_ped2(shared_data):
    """METHOD.md's floor: -PSNR of 'next frame = previous frame' on Ped2 at 128x128 grey, first 4 dropped.

    Measured elsewhere as 0.906 with per-video min-max and 0.796-0.798 without; exercises psnr(), the
    normalisations and the pooled AUROC together on real labels (FFP's ped2.mat intervals).
    """
    import cv2
    import scipy.io
    import torch

    from stvad.scoring import postprocess, psnr

    root = shared_data / "ped2"
    gt = scipy.io.loadmat(root / "ped2.mat")["gt"][0]
    scores, labels = [], []
    for v, folder in enumerate(sorted((root / "testing" / "frames").iterdir())):
        files = sorted(folder.glob("*.jpg"))
        grey = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]
        frames = np.stack([cv2.resize(g, (128, 128), interpolation=cv2.INTER_AREA) for g in grey])
        x = torch.from_numpy(frames).float()[:, None] / 127.5 - 1
        scores.append(-psnr(x[4:], x[3:-1]).numpy())
        y = np.zeros(len(files), np.uint8)
        for start, end in gt[v].T:
            y[int(start) - 1 : int(end)] = 1
        labels.append(y[4:])
    assert auroc_micro(postprocess(scores, "per-video-minmax"), labels) == pytest.approx(0.906, abs=0.005)
    assert auroc_micro(postprocess(scores, "global-max"), labels) == pytest.approx(0.80, abs=0.01)
