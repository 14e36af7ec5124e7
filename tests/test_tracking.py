"""The tracker on synthetic detection sequences: less jitter, no flicker, still follows real movement and exits."""

from __future__ import annotations

import numpy as np
import pytest

from facetracker.tracking import EmaSmoother, Hysteresis, KalmanSmoother, Tracker

FACE = np.array([260.0, 180.0, 380.0, 320.0])  # a 120x140 face in a 640x480 frame


def jittery(n: int, sigma: float = 4.0, seed: int = 0, base: np.ndarray = FACE) -> np.ndarray:
    """A still face as a detector sees it: the box wobbles by a few pixels every frame."""
    return base + np.random.default_rng(seed).normal(0.0, sigma, size=(n, 4))


def run(tracker: Tracker, scores, boxes):
    return [tracker.update(s, None if b is None else tuple(b)) for s, b in zip(scores, boxes)]


def flips(visible: list[bool]) -> int:
    return sum(a != b for a, b in zip(visible, visible[1:]))


@pytest.mark.parametrize("smooth, max_ratio", [("kalman", 0.25), ("ema", 0.5)])
def test_smoothing_reduces_jitter_of_a_still_face(smooth, max_ratio):
    raw = jittery(200)
    tracks = run(Tracker(smooth=smooth), [0.9] * len(raw), raw)
    smoothed = np.array([t.box for t in tracks])
    settled = slice(20, None)  # after the filter has settled
    ratio = smoothed[settled].var(axis=0).mean() / raw[settled].var(axis=0).mean()
    assert ratio < max_ratio, f"{smooth}: smoothed variance is {ratio:.2f} of the raw variance"
    # Smoothing must not move the box away from where the face is.
    assert np.abs(smoothed[settled].mean(axis=0) - FACE).max() < 2.0


def test_no_smoothing_passes_the_detection_through():
    raw = jittery(10)
    tracks = run(Tracker(smooth="none"), [0.9] * 10, raw)
    assert np.allclose([t.box for t in tracks], raw)


@pytest.mark.parametrize("smooth", ["kalman", "ema"])
def test_a_small_step_is_followed_within_a_few_frames(smooth):
    step = np.array([15.0, 10.0, 15.0, 10.0])  # still overlapping the track: smoothed, not restarted
    boxes = [FACE] * 30 + [FACE + step] * 15
    tracks = run(Tracker(smooth=smooth), [0.9] * len(boxes), boxes)
    after = np.array([t.box for t in tracks[30:]]) - (FACE + step)
    error = np.abs(after).max(axis=1)
    assert error[0] > 5.0, "the first frame after the step should still be smoothed"
    assert (error[6:] < 0.25 * 15.0).all(), f"{smooth} still {error[6:].max():.1f} px away 6 frames after the step"


def test_a_jump_across_the_frame_restarts_the_track_there():
    jumped = FACE + np.array([200.0, 0.0, 200.0, 0.0])
    tracks = run(Tracker(), [0.9] * 21, [FACE] * 20 + [jumped])
    assert np.allclose(tracks[-1].box, jumped), "the box must not slide across the frame"


def test_kalman_follows_a_steadily_moving_face_without_lag_and_ema_lags():
    moving = [FACE + np.array([3.0, 1.0, 3.0, 1.0]) * i for i in range(60)]
    ema_smoother = EmaSmoother()
    ema = [ema_smoother.update(tuple(b)) for b in moving][-1]
    kalman_smoother = KalmanSmoother()
    kalman = [kalman_smoother.update(tuple(b)) for b in moving][-1]
    assert np.abs(np.array(kalman) - moving[-1]).max() < 1.0
    assert np.abs(np.array(ema) - moving[-1]).max() > 2.0


def test_a_score_hovering_around_the_threshold_does_not_flicker():
    rng = np.random.default_rng(1)
    scores = np.clip(0.5 + rng.uniform(-0.1, 0.1, size=200), 0, 1)  # 0.4 .. 0.6 around threshold 0.5
    scores[0] = 0.7  # the face is found once
    tracks = run(Tracker(threshold=0.5), scores, jittery(200))
    per_frame = [s >= 0.5 for s in scores]
    assert flips(per_frame) > 50, "the synthetic scores should make a per-frame detector flicker"
    assert all(t.visible for t in tracks), "the tracker must keep the box on"
    assert all(t.box is not None for t in tracks)


def test_a_face_is_not_switched_on_below_the_threshold():
    tracks = run(Tracker(threshold=0.5), [0.45] * 30, jittery(30))
    assert not any(t.visible for t in tracks)
    assert all(t.box is None for t in tracks)


def test_single_missed_frames_keep_the_box_where_it_was():
    scores = [0.9] * 10 + [0.05] + [0.9] * 5 + [0.05, 0.05] + [0.9] * 5
    boxes = [FACE] * len(scores)
    tracks = run(Tracker(max_misses=3), scores, boxes)
    assert all(t.visible for t in tracks)
    assert np.allclose(tracks[10].box, FACE)


def test_a_face_that_leaves_is_switched_off_within_max_misses_and_comes_back_fresh():
    gone = [0.02] * 10
    returned = FACE + np.array([-150.0, 0.0, -150.0, 0.0])
    scores = [0.9] * 20 + gone + [0.9] * 3
    boxes = [FACE] * 20 + [FACE] * 10 + [returned] * 3
    tracks = run(Tracker(max_misses=3), scores, boxes)
    visible = [t.visible for t in tracks]
    assert visible[20:22] == [True, True], "one or two missed frames are tolerated"
    assert visible[22:30] == [False] * 8, "three missed frames in a row switch the box off"
    assert all(t.box is None for t in tracks[22:30])
    assert visible[30] and np.allclose(tracks[30].box, returned), "a returning face starts where it is found"


def test_hysteresis_switches_on_at_threshold_and_off_only_below_threshold_minus_margin():
    h = Hysteresis(threshold=0.5, margin=0.15, max_misses=1)
    assert [h.update(s) for s in (0.49, 0.5, 0.36, 0.34, 0.4, 0.5)] == [False, True, True, False, False, True]


def test_unknown_smoother_is_refused():
    with pytest.raises(ValueError, match="kalman"):
        Tracker(smooth="median")
