"""Pseudo-anomalies made from normal clips (stvad.data.pseudo): local, where things move, deterministic."""

from __future__ import annotations

import numpy as np

from stvad.data.pseudo import PseudoSpec, reversal_windows, speedup_windows, uturn_windows


def walking_square(n: int = 30, size: int = 64) -> np.ndarray:
    """A bright 6x6 square moving 2 pixels a frame to the right over a dark, still background."""
    frames = np.full((n, size, size, 1), 40, np.uint8)
    for t in range(n):
        frames[t, 20:26, 2 + 2 * t : 8 + 2 * t] = 220
    return frames


def test_pseudo_anomalies_change_one_box_where_the_square_moves() -> None:
    frames, T, spec = walking_square(), 4, PseudoSpec()
    for make in (speedup_windows, reversal_windows):
        wins = list(make(frames, T, spec))
        assert wins, make.__name__
        for t, past, pseudo, target in wins:
            np.testing.assert_array_equal(past, frames[t - T : t])
            np.testing.assert_array_equal(target, frames[t])
            changed = np.argwhere((pseudo != past).any(axis=(0, 3)))
            assert changed.size  # a pseudo-anomaly, not a copy
            (r0, c0), (r1, c1) = changed.min(0), changed.max(0)
            side = round(spec.box[1] * 64)
            assert r1 - r0 < side and c1 - c0 < side  # inside one box of at most the largest side
            assert r0 >= 14 and r1 <= 31  # around the square's rows, not elsewhere
        again = list(make(frames, T, spec))
        assert all(np.array_equal(a[2], b[2]) for a, b in zip(wins, again))  # deterministic


def test_reversal_runs_the_box_backwards_and_speedup_skips_frames() -> None:
    frames, T = walking_square(), 4
    t, past, pseudo, _ = next(reversal_windows(frames, T, PseudoSpec()))
    box = (pseudo != past).any(axis=(0, 3))
    np.testing.assert_array_equal(pseudo[:, box], frames[t + T : t : -1][:, box])
    t, past, pseudo, _ = next(speedup_windows(frames, T, PseudoSpec()))
    box = (pseudo != past).any(axis=(0, 3))
    np.testing.assert_array_equal(pseudo[:, box], frames[t - 2 * T : t : 2][:, box])


def test_a_uturn_sends_the_box_of_the_target_back_two_frames_after_a_real_past() -> None:
    frames, T, spec = walking_square(), 4, PseudoSpec()
    wins = list(uturn_windows(frames, T, spec))
    assert wins
    for t, past, pseudo_past, target in wins:
        np.testing.assert_array_equal(past, frames[t - T : t])
        np.testing.assert_array_equal(pseudo_past, past)
        box = (target != frames[t]).any(axis=2)
        assert box.any() and np.argwhere(box)[:, 0].min() >= 14  # where the square is
        np.testing.assert_array_equal(target[box], frames[t - 2][box])
        np.testing.assert_array_equal(target[~box], frames[t][~box])
    assert all(np.array_equal(a[3], b[3]) for a, b in zip(wins, uturn_windows(frames, T, spec)))


def test_a_still_clip_gets_no_pseudo_anomalies() -> None:
    still = np.full((30, 64, 64, 1), 90, np.uint8)
    for make in (speedup_windows, reversal_windows, uturn_windows):
        assert not list(make(still, 4, PseudoSpec()))
