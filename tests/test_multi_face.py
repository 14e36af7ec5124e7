"""The bundled dense model finds every face: two real people composed into one webcam frame."""

from __future__ import annotations

import numpy as np
import pytest

import cv2

from facetracker import config
from facetracker.boxes import cut_by_window, iou_matrix, merge_mirrored, merge_views, tiles, unmirror
from facetracker.demo import group_photo, sprites_from_labelme
from facetracker.evaluate import match_detections
from facetracker.inference import Detector
from facetracker.labels import resolve_face_labels, scan


def half_frame_around_face(sample, width: int = 320, height: int = 480):
    """A width x height crop of the sample's frame centred on its face (clamped to the frame), with the box."""
    frame = cv2.imread(str(sample.image))
    x1, y1, x2, y2 = sample.box
    left = int(np.clip((x1 + x2) / 2 - width / 2, 0, frame.shape[1] - width))
    top = int(np.clip((y1 + y2) / 2 - height / 2, 0, frame.shape[0] - height))
    crop = frame[top:top + height, left:left + width]
    return crop, (x1 - left, y1 - top, x2 - left, y2 - top)


def first_face(datasets_dir, name):
    found = scan(datasets_dir / name / "images", datasets_dir / name / "labels")
    return next(s for s in found.samples if len(s.boxes) == 1 and s.size == (640, 480))


@pytest.fixture(scope="module")
def two_people(datasets_dir):
    """A 640x480 frame: person A's face half on the left, person B's on the right; their two boxes."""
    left, left_box = half_frame_around_face(first_face(datasets_dir, "webcam-a"))
    right, right_box = half_frame_around_face(first_face(datasets_dir, "webcam-c"))
    frame = np.ascontiguousarray(np.concatenate([left, right], axis=1))
    x1, y1, x2, y2 = right_box
    return frame, [left_box, (x1 + 320, y1, x2 + 320, y2)]


@pytest.mark.parametrize("fast", [True, False], ids=["tflite", "keras"])
def test_bundled_model_finds_both_people_in_one_frame(two_people, fast):
    from facetracker.inference import bundled_model_path

    frame, truth = two_people
    faces = [d for d in Detector.load(bundled_model_path(fast=fast)).detect(frame) if d.is_face()]
    assert len(faces) == 2, [(round(d.score, 2), [round(v) for v in d.box]) for d in faces]
    for box in truth:
        assert iou_matrix([box], [d.box for d in faces]).max() >= 0.5, (box, faces)


def test_a_frame_and_its_mirror_image_merge_into_one_list_of_faces():
    """Two views of a frame: paired faces average their scores and weight their boxes by score; a face one view
    alone found keeps half its score; boxes found in the mirrored frame are mapped back first."""
    width = 100.0
    seen = ([0.8, 0.3], [[10, 10, 30, 30], [60, 60, 90, 90]])
    # the mirrored frame found the first face (slightly wider) and a third thing the plain view missed
    mirrored_pixels = [[68, 10, 92, 30], [0, 70, 20, 90]]
    mirrored = ([0.6, 0.5], unmirror(mirrored_pixels, width))
    np.testing.assert_allclose(mirrored[1], [[8, 10, 32, 30], [80, 70, 100, 90]])
    scores, boxes = merge_mirrored(*seen, *mirrored)
    np.testing.assert_allclose(scores, [0.7, 0.25, 0.15])
    np.testing.assert_allclose(boxes[0], (np.array([10, 10, 30, 30]) * 0.8 + np.array([8, 10, 32, 30]) * 0.6) / 1.4)
    np.testing.assert_allclose(boxes[1:], [[80, 70, 100, 90], [60, 60, 90, 90]])
    empty_scores, empty_boxes = merge_mirrored([], [], [], [])
    assert empty_scores.shape == (0,) and empty_boxes.shape == (0, 4)


def test_detect_mirrored_finds_both_real_faces_with_the_bundled_model(two_people):
    """The bundled model on a frame of two real people, seen as it is and mirrored: both faces, once each."""
    frame, truth = two_people
    found = Detector.load().detect_mirrored(frame, min_score=config.THRESHOLD)
    assert len(found) == 2
    assert all(iou_matrix(truth, [d.box for d in found]).max(axis=1) >= 0.5)


# ---------------------------------------------------------------- big photos: tiles


def test_tiles_cover_a_big_photo_at_two_scales_and_leave_webcam_frames_whole():
    assert tiles(640, 480) == [] and tiles(960, 540) == []  # webcam frames: the model sees them whole
    windows = tiles(2000, 1000, min_side=256, overlap=0.3, from_side=1000, min_share=0.0)
    level1 = [w for w in windows if w[2] - w[0] == 1000]
    level2 = [w for w in windows if w[2] - w[0] == 500]
    assert len(level1) + len(level2) == len(windows), "halves, then quarters; 250 px would be under 256"
    assert level1 == [(0, 0, 1000, 1000), (500, 0, 1500, 1000), (1000, 0, 2000, 1000)]
    assert len(level2) == 6 * 3  # x from 0 to 1500 in steps of at most 350, y from 0 to 500
    for level, side in ((level1, 1000), (level2, 500)):
        covered = np.zeros((1000, 2000), bool)
        for x1, y1, x2, y2 in level:
            assert x2 - x1 == y2 - y1 == side and 0 <= x1 < x2 <= 2000 and 0 <= y1 < y2 <= 1000
            covered[y1:y2, x1:x2] = True
        assert covered.all(), "every pixel is in some window"


def test_the_tile_pyramid_stops_at_a_tenth_of_the_photo_and_at_the_model_input():
    def finest(width, height):
        return min(x2 - x1 for x1, _, x2, _ in tiles(width, height, min_side=192, min_share=0.1))

    assert finest(1920, 1440) == 240, "960, 480, then 240: the smallest faces of a 1920 px photo"
    assert finest(4000, 3000) == 500, "2000, 1000, 500; 250 is under a tenth of 4000"
    assert finest(1280, 960) == 320, "640, 320; 160 is under the model's 192 px input"


def test_faces_cut_by_a_window_and_parts_of_a_better_face_are_dropped():
    window, width, height = (100, 100, 300, 300), 1000, 800
    boxes = [[150, 150, 200, 200],  # inside: kept
             [99, 150, 140, 200],  # touches the window's left side, which lies inside the image: cut
             [250, 250, 301, 290]]  # touches the right side
    assert cut_by_window(boxes, window, width, height).tolist() == [False, True, True]
    assert cut_by_window([[0, 0, 40, 40]], (0, 0, 300, 300), width, height).tolist() == [False], \
        "the image's own edge cuts nothing a neighbour could hold whole"
    scores = [0.9, 0.8, 0.7, 0.6]
    boxes = [[0, 0, 100, 100],  # a face
             [5, 5, 100, 100],  # the same face seen again: NMS
             [10, 10, 40, 40],  # an eye of that face, from a tile: inside the better box
             [200, 200, 260, 260]]  # another face
    assert merge_views(scores, boxes).tolist() == [0, 3]
    assert merge_views([], []).tolist() == []


def test_a_group_photo_of_real_people_is_found_with_tiles(datasets_dir):
    """20 real people of ../shared in a 1920x1440 group photo, faces ~90 px: seen whole, the faces are ~12 px in the
    model's input and the bundled model finds almost none; as predict sees a photo (mirrored + tiles) it finds them."""
    people = ["caltech-faces", *(f"webcam-{c}" for c in "abcefhjklmnopqstv")]
    faces = [sprites_from_labelme(datasets_dir / name, count=1, min_height=80,
                                  face_labels=resolve_face_labels(datasets_dir / name / "labels")[0])[0]
             for name in people]
    negatives = [s for s in scan(datasets_dir / "webcam-d" / "images", datasets_dir / "webcam-d" / "labels").samples
                 if not s.has_face]
    background = cv2.resize(cv2.imread(str(negatives[0].image)), (1920, 1440))
    photo, truth = group_photo(faces, background, face_height=90, columns=6, seed=1)
    assert len(truth) == len(people)
    detector = Detector.load()

    def found(detections):
        kept = [d for d in detections if d.is_face()]
        matched = match_detections(truth, [d.score for d in kept], [d.box for d in kept]) if kept else np.zeros(0)
        return int(matched.sum()), len(kept)

    assert found(detector.detect(photo))[0] <= 2
    hits, kept = found(detector.detect_still(photo))
    assert hits >= 0.9 * len(truth) and hits >= 0.85 * kept, (hits, kept, len(truth))
