"""The bundled dense model finds every face: two real people composed into one webcam frame."""

from __future__ import annotations

import numpy as np
import pytest

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


def box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union


@pytest.mark.parametrize("fast", [True, False], ids=["tflite", "keras"])
def test_bundled_model_finds_both_people_in_one_frame(two_people, fast):
    from facetracker.inference import bundled_model_path

    frame, truth = two_people
    faces = [d for d in Detector.load(bundled_model_path(fast=fast)).detect(frame) if d.is_face()]
    assert len(faces) == 2, [(round(d.score, 2), [round(v) for v in d.box]) for d in faces]
    for box in truth:
        assert max(box_iou(box, d.box) for d in faces) >= 0.5, (box, faces)
