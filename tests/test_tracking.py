"""The multi-face tracker on synthetic detection sequences and on a real composed video: stable ids, less jitter, no
flicker, births and deaths, low-score detections, --max-faces, and two real people crossing."""

from __future__ import annotations

import numpy as np
import pytest

from facetracker import config
from facetracker.tracking import EmaSmoother, KalmanSmoother, Track, Tracker, diou

FACE = np.array([260.0, 180.0, 380.0, 320.0])  # a 120x140 face in a 640x480 frame
OTHER = np.array([60.0, 60.0, 160.0, 180.0])


def jittery(n: int, sigma: float = 4.0, seed: int = 0, base: np.ndarray = FACE) -> np.ndarray:
    """A still face as a detector sees it: the box wobbles by a few pixels every frame."""
    return base + np.random.default_rng(seed).normal(0.0, sigma, size=(n, 4))


def one_face(tracker: Tracker, scores, boxes) -> list[list[Track]]:
    """Feed one detection per frame (None: nothing found) and return the shown tracks of every frame."""
    return [tracker.update([] if b is None else [(s, tuple(b))]) for s, b in zip(scores, boxes)]


def only(tracks: list[Track]) -> Track:
    assert len(tracks) == 1, tracks
    return tracks[0]


def flips(visible: list[bool]) -> int:
    return sum(a != b for a, b in zip(visible, visible[1:]))


# ---------------------------------------------------------------- one face: smoothing and hysteresis


@pytest.mark.parametrize("smooth, max_ratio", [("kalman", 0.25), ("ema", 0.5)])
def test_smoothing_reduces_jitter_of_a_still_face(smooth, max_ratio):
    raw = jittery(200)
    frames = one_face(Tracker(smooth=smooth), [0.9] * len(raw), raw)
    smoothed = np.array([only(f).box for f in frames[1:]])
    settled = slice(20, None)  # after the filter has settled
    ratio = smoothed[settled].var(axis=0).mean() / raw[1:][settled].var(axis=0).mean()
    assert ratio < max_ratio, f"{smooth}: smoothed variance is {ratio:.2f} of the raw variance"
    # Smoothing must not move the box away from where the face is.
    assert np.abs(smoothed[settled].mean(axis=0) - FACE).max() < 2.0


def test_no_smoothing_passes_the_detection_through():
    raw = jittery(10)
    frames = one_face(Tracker(smooth="none"), [0.9] * 10, raw)
    assert frames[0] == [], "a face is shown from its second detection on"
    assert np.allclose([only(f).box for f in frames[1:]], raw[1:])
    assert all(np.allclose(only(f).box, only(f).raw_box) for f in frames[1:])


def test_a_new_face_is_shown_after_birth_hits_and_a_one_frame_false_positive_never():
    tracker = Tracker(birth_hits=3)
    frames = one_face(tracker, [0.9, 0.9, 0.9, 0.9], [FACE] * 4)
    assert [len(f) for f in frames] == [0, 0, 1, 1] and only(frames[2]).id == 1
    blip = Tracker()
    frames = one_face(blip, [0.95, 0.0, 0.0], [OTHER, None, None])
    assert frames == [[], [], []] and blip.tracks_seen == 0, "a one-frame detection gets no id"


@pytest.mark.parametrize("smooth", ["kalman", "ema"])
def test_a_small_step_is_followed_within_a_few_frames(smooth):
    step = np.array([15.0, 10.0, 15.0, 10.0])  # still overlapping the track: smoothed, not restarted
    boxes = [FACE] * 30 + [FACE + step] * 15
    frames = one_face(Tracker(smooth=smooth), [0.9] * len(boxes), boxes)
    after = np.array([only(f).box for f in frames[30:]]) - (FACE + step)
    error = np.abs(after).max(axis=1)
    assert error[0] > 5.0, "the first frame after the step should still be smoothed"
    assert (error[6:] < 0.25 * 15.0).all(), f"{smooth} still {error[6:].max():.1f} px away 6 frames after the step"
    assert {only(f).id for f in frames[1:]} == {1}


def test_a_jump_across_the_frame_is_a_new_face_and_nothing_slides_across():
    jumped = FACE + np.array([250.0, 0.0, 250.0, 0.0])
    tracker = Tracker()
    frames = one_face(tracker, [0.9] * 30, [FACE] * 20 + [jumped] * 10)
    for f in frames[20:]:
        for track in f:  # every shown box is at one place or the other, never in between
            assert np.allclose(track.box, FACE, atol=3) or np.allclose(track.box, jumped, atol=3), track
    assert [t.id for t in frames[-1]] == [2] and np.allclose(frames[-1][0].box, jumped)


def test_kalman_follows_a_steadily_moving_face_without_lag_and_ema_lags():
    moving = [FACE + np.array([3.0, 1.0, 3.0, 1.0]) * i for i in range(60)]
    ema_smoother = EmaSmoother()
    ema = [ema_smoother.update(tuple(b)) for b in moving][-1]
    kalman_smoother = KalmanSmoother()
    kalman = [kalman_smoother.update(tuple(b)) for b in moving][-1]
    assert np.abs(np.array(kalman) - moving[-1]).max() < 1.0
    assert np.abs(np.array(ema) - moving[-1]).max() > 2.0


def test_a_face_leaving_the_frame_keeps_its_box_inside_the_frame():
    # The detector's boxes stop at the edge as the face slides out; the Kalman filter, carrying its velocity,
    # would draw the box past it.
    moving = [np.clip(FACE - np.array([12.0, 0.0, 12.0, 0.0]) * i, 0, None) for i in range(40)]
    loose = one_face(Tracker(), [0.9] * len(moving), moving)
    assert min(t.box[0] for tracks in loose for t in tracks) < -1, "no overshoot to guard against"
    tracker = Tracker()
    held = [tracker.update([(0.9, tuple(b))], (640, 480)) for b in moving]
    boxes = np.array([t.box for tracks in held for t in tracks])
    assert len(boxes) >= 30 and boxes[:, 0].min() == 0 and (boxes[:, :2] >= 0).all()
    assert (boxes[:, 2] <= 640).all() and (boxes[:, 3] <= 480).all()


def test_a_score_hovering_around_the_threshold_does_not_flicker():
    rng = np.random.default_rng(1)
    scores = np.clip(0.5 + rng.uniform(-0.1, 0.1, size=200), 0, 1)  # 0.4 .. 0.6 around threshold 0.5
    scores[:2] = 0.7  # the face is found
    frames = one_face(Tracker(threshold=0.5), scores, jittery(200))
    per_frame = [s >= 0.5 for s in scores]
    assert flips(per_frame) > 50, "the synthetic scores should make a per-frame detector flicker"
    assert all(len(f) == 1 and f[0].id == 1 for f in frames[1:]), "the tracker must keep the box on, one id"


def test_a_face_is_not_switched_on_below_the_threshold():
    tracker = Tracker(threshold=0.5)
    frames = one_face(tracker, [0.45] * 30, jittery(30))
    assert not any(frames) and tracker.tracks_seen == 0


def test_single_missed_frames_keep_the_box_where_it_was():
    scores = [0.9] * 10 + [0.0] + [0.9] * 5 + [0.0, 0.0] + [0.9] * 5
    boxes = [FACE if s else None for s in scores]
    frames = one_face(Tracker(max_misses=3), scores, boxes)
    assert all(only(f).id == 1 for f in frames[1:])
    assert np.allclose(only(frames[10]).box, FACE) and only(frames[10]).missed
    assert only(frames[10]).score == pytest.approx(0.9), "a coasting track keeps its last score"


def test_low_score_detections_keep_a_shown_face_but_never_start_one():
    # A face turning away: 0.2 is far below threshold - margin, but right where the track expects it.
    scores = [0.9] * 10 + [0.2] * 20
    frames = one_face(Tracker(max_misses=3), scores, jittery(30, sigma=1.0))
    assert all(only(f).id == 1 for f in frames[1:]), "low-score detections on the track keep it"
    elsewhere = one_face(Tracker(max_misses=3), [0.9] * 10 + [0.2] * 10, [FACE] * 10 + [OTHER] * 10)
    assert [len(f) for f in elsewhere[10:]] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 0], "...but not far from it"
    below = config.TRACK_THRESHOLD - 0.05
    assert not any(one_face(Tracker(), [below] * 20, [FACE] * 20)), "a low score never starts a face"


def test_a_face_that_leaves_is_hidden_within_max_misses():
    scores = [0.9] * 20 + [0.0] * 10
    frames = one_face(Tracker(max_misses=3), scores, [FACE] * 20 + [None] * 10)
    assert [len(f) for f in frames[20:]] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 0], "two missed frames are tolerated"


def test_a_face_back_where_it_was_within_max_lost_gets_its_old_id_later_a_new_one():
    # Behind a hand for 10 frames, then there again: the same track.
    back_soon = one_face(Tracker(max_lost=30), [0.9] * 20 + [0.0] * 10 + [0.9] * 5,
                         [FACE] * 20 + [None] * 10 + [FACE] * 5)
    assert [t.id for f in back_soon[30:] for t in f] == [1] * 5, "found again at once, with its old id"
    # Away for longer than max_lost frames: a new face.
    tracker = Tracker(max_lost=30)
    back_late = one_face(tracker, [0.9] * 20 + [0.0] * 40 + [0.9] * 5, [FACE] * 20 + [None] * 40 + [FACE] * 5)
    assert back_late[60] == [] and [t.id for f in back_late[61:] for t in f] == [2] * 4
    assert tracker.tracks_seen == 2
    # A lost face is only taken back by a detection that could start one (>= threshold).
    weak_return = one_face(Tracker(max_lost=30), [0.9] * 20 + [0.0] * 10 + [config.TRACK_THRESHOLD - 0.05] * 5,
                           [FACE] * 20 + [None] * 10 + [FACE] * 5)
    assert not any(weak_return[30:])


def test_ids_are_never_reused_and_tracks_are_ordered_by_id():
    tracker = Tracker(max_lost=2)
    for _ in range(3):  # the face comes and goes: a new id each time
        one_face(tracker, [0.9] * 5 + [0.0] * 10, [FACE] * 5 + [None] * 10)
    assert tracker.tracks_seen == 3
    frames = [tracker.update([(0.8, tuple(OTHER)), (0.9, tuple(FACE))]) for _ in range(3)]
    assert [t.id for t in frames[-1]] == [4, 5], "the better detection is born first, and output is by id"
    assert np.allclose(frames[-1][0].box, FACE)


# ---------------------------------------------------------------- several faces


def test_two_faces_crossing_keep_their_ids():
    rng = np.random.default_rng(3)
    n = 80
    frames = []
    tracker = Tracker()
    for i in range(n):  # left->right and right->left at 8 px a frame, a third of a face apart vertically
        a = np.array([40.0 + 8 * i, 150, 160.0 + 8 * i, 290]) + rng.normal(0, 3, 4)
        b = np.array([560.0 - 8 * i, 195, 680.0 - 8 * i, 335]) + rng.normal(0, 3, 4)
        frames.append((a, b, tracker.update([(0.9, tuple(a)), (0.85, tuple(b))])))
    for a, b, tracks in frames[1:]:
        by_id = {t.id: t for t in tracks}
        assert set(by_id) == {1, 2}
        assert diou(by_id[1].box, tuple(a)) > 0.6 and diou(by_id[2].box, tuple(b)) > 0.6
    assert tracker.tracks_seen == 2


def test_max_faces_caps_the_tracks_and_a_freed_place_is_taken():
    faces = [np.array([20.0 + 120 * k, 100, 110 + 120 * k, 200]) for k in range(5)]
    tracker = Tracker(max_faces=2, max_lost=5)
    scores = [0.9, 0.8, 0.95, 0.7, 0.6]
    for _ in range(10):
        tracks = tracker.update([(s, tuple(f)) for s, f in zip(scores, faces)])
        assert len(tracks) <= 2
    first = [np.argmin([np.abs(np.array(t.box) - f).sum() for f in faces]) for t in tracks]
    assert [t.id for t in tracks] == [1, 2] and first == [2, 0], "the two best of the first frame, best first"
    # Face 2 (id 1) leaves: once its track is hidden, the best waiting face takes its place (a lost track gives
    # way to a new face when there is no other room).
    rest = [(s, tuple(f)) for k, (s, f) in enumerate(zip(scores, faces)) if k != 2]
    seen = [tracker.update(rest) for _ in range(8)]
    assert all(len(t) <= 2 for t in seen)
    assert [t.id for t in seen[-1]] == [2, 3]
    assert np.abs(np.array(seen[-1][1].box) - faces[1]).max() < 3, "the best of the waiting faces"


def test_track_json_is_rounded_pixels():
    track = Track(3, (10.04, 20.06, 110.0, 220.449), 0.912345, None)
    assert track.to_json() == {"id": 3, "score": 0.9123, "box": [10.0, 20.1, 110.0, 220.4]}


def test_detections_may_be_objects_with_score_and_box():
    from facetracker.inference import Detection

    tracker = Tracker()
    for _ in range(3):
        tracks = tracker.update([Detection(0.9, tuple(FACE)), Detection(0.01, (0.0, 0.0, 5.0, 5.0))])
    assert [t.id for t in tracks] == [1]


@pytest.mark.parametrize("kwargs, message", [({"smooth": "median"}, "kalman"), ({"max_faces": 0}, "max_faces"),
                                             ({"threshold": 1.5}, "threshold")])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Tracker(**kwargs)


def test_diou_is_iou_for_concentric_boxes_and_falls_with_distance():
    box = (0.0, 0.0, 100.0, 100.0)
    assert diou(box, box) == pytest.approx(1.0)
    assert diou(box, (25.0, 25.0, 75.0, 75.0)) == pytest.approx(0.25)
    apart = [diou(box, (d, 0.0, d + 100.0, 100.0)) for d in (50.0, 100.0, 200.0, 400.0)]
    assert apart == sorted(apart, reverse=True) and apart[1] < 0 and apart[-1] > -1
    assert config.TRACK_MATCH_DIOU < diou(box, (70.0, 0.0, 170.0, 100.0))


# ---------------------------------------------------------------- two real people crossing in a composed video


CLIP_FRAMES = 240
LEAVES_AT = CLIP_FRAMES // 2  # crossing_routes: the second person is out of the frame from t = 0.5 ...
ABSENCE = 0.2  # ... for a fifth of the clip (48 frames, more than TRACK_MAX_LOST), then comes back


@pytest.fixture(scope="module")
def crossing(tmp_path_factory, datasets_dir):
    """A real 640x480 video: two real people (cut from two shared sets with their labelled boxes) cross over a real
    room, then the second one leaves and comes back. Returns (video path, true faces per frame)."""
    from streams import two_people_clip

    path = tmp_path_factory.mktemp("crossing") / "crossing.avi"
    truth = two_people_clip(datasets_dir, path, frames=CLIP_FRAMES, absence=ABSENCE)
    return path, truth


def test_the_composed_clip_has_two_people_who_cross_and_one_leaves(crossing):
    from facetracker.recording import count_video_frames

    path, truth = crossing
    assert count_video_frames(path) == CLIP_FRAMES
    present = [{f.person for f in faces if f.visible >= 0.5} for faces in truth]
    assert present[0] == {0, 1} and present[-1] == {0, 1}
    assert any(p == {0} for p in present[LEAVES_AT:]), "the second person is away for a while"
    centres = np.array([[(f.box[0] + f.box[2]) / 2 for f in sorted(faces, key=lambda f: f.person)]
                        for faces in truth[:LEAVES_AT // 2]])
    assert centres[0, 0] < centres[0, 1] and centres[-1, 0] > centres[-1, 1], "they swap sides: they cross"
    assert min(f.visible for faces in truth[:LEAVES_AT] for f in faces if f.person == 0) < 0.75, \
        "the one in front hides part of the other as they cross"


@pytest.mark.parametrize("seed", range(5))
def test_two_real_people_crossing_keep_their_ids_and_a_returning_one_gets_a_new_id(crossing, seed):
    from facetracker.demo import detections_from_truth
    from streams import ids_by_person

    _, truth = crossing
    detections = detections_from_truth(truth, seed=seed)  # the true boxes moved by noise, misses, false positives
    tracker = Tracker()
    tracks = [tracker.update(found) for found in detections]
    ids = ids_by_person(truth, tracks)

    first = [i for i in ids[0][config.TRACK_BIRTH_HITS:] if i != "hidden"]
    assert len(set(first) - {None}) == 1, f"the first person changed id: {first}"
    assert first.count(None) <= 0.05 * len(first), "the first person is tracked in nearly every frame"
    before = [i for i in ids[1][config.TRACK_BIRTH_HITS:LEAVES_AT - 15] if i != "hidden"]
    after = [i for i in ids[1][LEAVES_AT + 15:] if i not in ("hidden", None)]
    assert len(set(before) - {None}) == 1 and before.count(None) <= 0.05 * len(before), before
    (a,), (b,) = set(first) - {None}, set(before) - {None}
    assert a != b
    # Away longer than TRACK_MAX_LOST frames: back as a new track, which then keeps its id too.
    assert len(set(after)) == 1 and set(after).isdisjoint({a, b}), after
    assert tracker.tracks_seen <= 4, "at most one short-lived false track"
