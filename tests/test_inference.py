"""Detector: the same face score and box from .keras, .tflite, .onnx and SavedModel on real images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facetracker import config
from facetracker.errors import FacetrackerError
from facetracker.inference import Detection, Detector, make_resizer, bundled_model_path, resolve_model_path


@pytest.fixture(scope="module")
def real_frames(datasets_dir):
    """Real frames of several sizes: 640x480 webcam images, a 1280x720 upscale and a portrait crop."""
    paths = sorted((datasets_dir / "webcam-c" / "images").glob("*.jpg"))[::12]
    frames = [cv2.imread(str(p)) for p in paths]
    frames.append(cv2.resize(frames[0], (1280, 720)))
    frames.append(np.ascontiguousarray(frames[1][:, 150:420]))
    return frames


@pytest.fixture(scope="module")
def keras_detector(trained_model):
    return Detector.load(trained_model)


def test_keras_detector_follows_the_image(keras_detector, real_frames):
    # The comparisons below only mean something if outputs differ between images (a trained model).
    detections = keras_detector.detect_batch(real_frames[:-2])
    assert keras_detector.runtime_name == "keras" and keras_detector.image_size == 64
    assert np.std([d.box[0] for d in detections]) > 5.0  # pixels


@pytest.mark.parametrize("fmt", ["tflite", "onnx", "savedmodel"])
def test_runtimes_agree_with_keras(fmt, tiny_exports, keras_detector, real_frames):
    exported = Detector.load(tiny_exports(fmt).path)
    assert exported.runtime_name == fmt and exported.image_size == 64  # read from the file, no flag
    for frame in real_frames:
        want, got = keras_detector.detect(frame), exported.detect(frame)
        assert got.score == pytest.approx(want.score, abs=1e-4)
        scale = max(frame.shape[:2])
        np.testing.assert_allclose(got.box, want.box, atol=1e-4 * scale)  # 1e-4 of the image in pixels


@pytest.mark.parametrize("fmt", ["keras", "tflite", "onnx"])
def test_detect_batch_equals_detect(fmt, tiny_exports, keras_detector, real_frames):
    detector = keras_detector if fmt == "keras" else Detector.load(tiny_exports(fmt).path)
    batch = detector.detect_batch(real_frames)
    assert len(batch) == len(real_frames) and detector.detect_batch([]) == []
    for frame, from_batch in zip(real_frames, batch):
        single = detector.detect(frame)
        assert from_batch.score == pytest.approx(single.score, abs=1e-5)
        np.testing.assert_allclose(from_batch.box, single.box, atol=1e-3)


def test_box_is_in_pixels_of_the_original_frame(keras_detector, real_frames):
    for frame in real_frames:
        height, width = frame.shape[:2]
        scores, boxes = keras_detector.raw(keras_detector.prepare([frame]))
        detection = keras_detector.detect(frame)
        assert isinstance(detection, Detection) and detection.score == pytest.approx(float(scores[0]), abs=1e-6)
        np.testing.assert_allclose(detection.box, boxes[0] * [width, height, width, height], atol=1e-3)
        x1, y1, x2, y2 = detection.box
        assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height


def test_preprocessing_matches_training(real_frames):
    import tensorflow as tf

    for frame in real_frames:
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        # What facetracker.data feeds the model in training: the whole image, area-resized, rounded to uint8.
        trained_on = tf.cast(tf.round(tf.image.resize(rgb, (128, 128), method="area")), tf.uint8).numpy()
        exact, fast = np.empty((128, 128, 3), np.uint8), np.empty((128, 128, 3), np.uint8)
        make_resizer("area", 128)(frame, exact)
        make_resizer("fast-area", 128)(frame, fast)
        exact, fast = cv2.cvtColor(exact, cv2.COLOR_BGR2RGB), cv2.cvtColor(fast, cv2.COLOR_BGR2RGB)
        assert np.abs(exact.astype(int) - trained_on).max() <= 1  # rounding only
        assert np.abs(fast.astype(int) - trained_on).mean() < 1.0  # under one grey level on average
    with pytest.raises(FacetrackerError, match="unknown resize mode"):
        make_resizer("cubic", 128)


def test_detection_json():
    detection = Detection(score=0.87654, box=(10.04, 20.0, 30.0, 40.55))
    assert detection.to_json(0.5) == {"score": 0.8765, "box": [10.0, 20.0, 30.0, 40.5]}
    assert detection.to_json(0.9) == {"score": 0.8765, "box": None}


def test_bad_frames_are_one_clear_error(keras_detector):
    for frame in (np.zeros((48, 64), np.uint8), np.zeros((48, 64, 3), np.float32), np.zeros((0, 64, 3), np.uint8),
                  None):
        with pytest.raises(FacetrackerError, match="not a BGR uint8 image"):
            keras_detector.detect(frame)


def test_load_errors(tmp_path, trained_model):
    with pytest.raises(FacetrackerError, match="model not found"):
        Detector.load(tmp_path / "missing.tflite")
    (tmp_path / "model.pt").write_bytes(b"torch")
    with pytest.raises(FacetrackerError, match="unknown model format"):
        Detector.load(tmp_path / "model.pt")
    for name in ("broken.tflite", "broken.onnx"):
        (tmp_path / name).write_bytes(trained_model.read_bytes()[:4096])  # some other file's bytes
        with pytest.raises(FacetrackerError, match="cannot load"):
            Detector.load(tmp_path / name)
    (tmp_path / "legacy.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    with pytest.raises(FacetrackerError, match="unsafe"):
        Detector.load(tmp_path / "legacy.h5")


def test_default_model_is_yours_then_the_bundled_one(tmp_path, monkeypatch, trained_model):
    monkeypatch.chdir(tmp_path)
    assert resolve_model_path(trained_model) == trained_model
    assert resolve_model_path(None) == bundled_model_path(fast=True) and bundled_model_path(fast=True).is_file()
    assert resolve_model_path(None, fast=False) == bundled_model_path() and bundled_model_path().suffix == ".keras"
    (tmp_path / config.MODELS_DIR).mkdir()
    (tmp_path / config.DEFAULT_MODEL).write_bytes(trained_model.read_bytes())
    assert resolve_model_path(None) == config.DEFAULT_MODEL


def test_bundled_tflite_is_the_bundled_keras_model(datasets_dir):
    """live/predict/evaluate run the shipped .tflite by default: it must be an export of the shipped .keras."""
    fast = bundled_model_path(fast=True)
    assert fast.suffix == ".tflite"
    tflite, keras_model = Detector.load(fast), Detector.load(bundled_model_path())
    assert tflite.image_size == keras_model.image_size
    for image in sorted((datasets_dir / "webcam-b" / "images").glob("*.jpg"))[:8]:
        frame = cv2.imread(str(image))
        a, b = tflite.detect(frame), keras_model.detect(frame)
        assert abs(a.score - b.score) < 1e-4
        assert np.allclose(a.box, b.box, atol=0.1)  # pixels of a 640x480 frame
