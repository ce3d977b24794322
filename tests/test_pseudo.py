"""Pseudo-anomalies made from normal clips (stvad.data.pseudo): local, where things move, deterministic."""

from __future__ import annotations

import numpy as np

from stvad.data.pseudo import (
    PseudoSpec,
    glide_windows,
    moving_side,
    reversal_windows,
    rotated_windows,
    speedup_windows,
    uturn_windows,
)


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
    for make in (speedup_windows, reversal_windows, uturn_windows, rotated_windows):
        assert not list(make(still, 4, PseudoSpec()))


def turned_at(window: np.ndarray, real: np.ndarray, r0: int, c0: int, side: int) -> bool:
    """Whether ``window`` is ``real`` with the box of ``side`` at (r0, c0) turned by 90 degrees."""
    want = real.copy()
    box = (slice(None), slice(r0, r0 + side), slice(c0, c0 + side))
    want[box] = np.rot90(real[box], 1, axes=(1, 2))
    return np.array_equal(window, want)


def test_a_turned_box_moves_the_square_across_its_path_in_past_and_target() -> None:
    frames, T, spec = walking_square(), 4, PseudoSpec(box=(0.3, 0.3))  # a box about the square's path
    wins = list(rotated_windows(frames, T, spec))
    assert wins
    for t, past, pseudo_past, target in wins:
        np.testing.assert_array_equal(past, frames[t - T : t])
        window, real = np.concatenate([pseudo_past, target[None]]), frames[t - T : t + 1]
        boxes = [(r, c) for r in range(64 - 18) for c in range(64 - 18) if turned_at(window, real, r, c, 19)]
        assert boxes  # the window is the real one with one 19-pixel box turned
        r0, c0 = boxes[0]
        r1, c1 = r0 + 19, c0 + 19
        # the square walked right along its rows; in the box it now walks along a column
        bright = [np.argwhere(f[r0:r1, c0:c1, 0] == 220).mean(0) for f in window]
        moved = np.ptp(np.asarray(bright), axis=0)
        assert moved[0] > moved[1]
    assert all(np.array_equal(a[3], b[3]) for a, b in zip(wins, rotated_windows(frames, T, spec)))


def test_moving_side_measures_the_size_of_what_moves() -> None:
    for size in (6, 12):
        frames = np.full((30, 64, 64, 1), 40, np.uint8)
        for t in range(30):
            frames[t, 20 : 20 + size, 2 + 2 * t : 2 + size + 2 * t] = 220
        side = moving_side([frames]) * 64
        assert size <= side <= size + 5  # the square and its two-frame step
    assert moving_side([np.full((10, 32, 32, 1), 90, np.uint8)]) == 0.0


def bright_centres(frame: np.ndarray) -> list[np.ndarray]:
    from scipy import ndimage

    lab, k = ndimage.label(frame[..., 0] == 220)
    return sorted(ndimage.center_of_mass(frame[..., 0] == 220, lab, range(1, k + 1)))


def test_a_glide_adds_a_copy_of_the_figure_beside_it_fast_across_stepping_back_or_standing() -> None:
    frames, T = walking_square(28), 4  # the square steps 2 pixels a frame to the right, all in view
    bg = np.full((64, 64, 1), 40, np.uint8)
    kinds = (("fast", PseudoSpec(speeds=(3,))), *((k, PseudoSpec()) for k in ("across", "back", "stand")))
    for kind, spec in kinds:
        wins = list(glide_windows(frames, T, spec, bg=bg, kind=kind))
        assert wins
        for t, past, pseudo_past, target in wins:
            np.testing.assert_array_equal(past, frames[t - T : t])
            window = np.concatenate([pseudo_past, target[None]])
            real = frames[t - T : t + 1]
            assert ((window == real) | (window == 220)).all()  # the real scene, with bright pixels added
            copies = []
            for f, r in zip(window, real):
                centres = [c for c in bright_centres(f) if r[round(c[0]), round(c[1]), 0] != 220]
                assert len(centres) == 1  # one copy, apart from the original
                copies.append(np.asarray(centres[0]))
            steps = np.diff(np.asarray(copies), axis=0)
            want = {
                "fast": [[0, 6]] * T,
                "across": [[2, 0]] * T,
                "back": [[0, 2]] * (T - 1) + [[0, -2]],
                "stand": [[0, 0]] * T,
            }[kind]
            if kind == "across":  # up or down
                steps = np.abs(steps)
            np.testing.assert_allclose(steps * np.sign(steps[0, 1] or 1), want, atol=1.0)  # (rows, cols)
        again = list(glide_windows(frames, T, spec, bg=bg, kind=kind))
        assert all(np.array_equal(a[3], b[3]) for a, b in zip(wins, again))


def test_an_oscillating_glide_goes_back_and_forth_in_place_at_the_figures_speed() -> None:
    frames, T = walking_square(28), 8  # the square steps 2 pixels a frame to the right
    bg = np.full((64, 64, 1), 40, np.uint8)
    wins = list(glide_windows(frames, T, PseudoSpec(), bg=bg, kind="oscillate"))
    assert wins
    turned = 0
    for t, past, pseudo_past, target in wins:
        np.testing.assert_array_equal(past, frames[t - T : t])
        window, real = np.concatenate([pseudo_past, target[None]]), frames[t - T : t + 1]
        copies = []
        for f, r in zip(window, real):
            centres = [c for c in bright_centres(f) if r[round(c[0]), round(c[1]), 0] != 220]
            assert len(centres) == 1
            copies.append(np.asarray(centres[0]))
        steps = np.diff(np.asarray(copies), axis=0)
        np.testing.assert_allclose(np.hypot(*steps.T), 2.0, atol=1.5)  # each step about the square's own
        dots = (steps[1:] * steps[:-1]).sum(1)
        assert (dots < 0).any()  # it turns back within the window (every 2 to 4 frames)
        turned += int((dots < 0).sum())
        spread = np.ptp(np.asarray(copies), axis=0).max()
        assert spread <= 4 * 2 + 1.5  # it stays in place: at most 4 steps from one end to the other
    assert turned >= len(wins) * 2
    again = list(glide_windows(frames, T, PseudoSpec(), bg=bg, kind="oscillate"))
    assert all(np.array_equal(a[3], b[3]) for a, b in zip(wins, again))
