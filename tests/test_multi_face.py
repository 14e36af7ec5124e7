"""The bundled dense model finds every face: two real people composed into one webcam frame."""

from __future__ import annotations

import numpy as np
import pytest

from facetracker import config
from facetracker.boxes import iou_matrix, merge_mirrored, unmirror
from facetracker.inference import Detector
from facetracker.labels import scan


def half_frame_around_face(sample, width: int = 320, height: int = 480):
    """A width x height crop of the sample's frame centred on its face (clamped to the frame), with the box."""
    import cv2

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
