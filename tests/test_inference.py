"""Detector: the same faces from .keras, .tflite, .onnx and SavedModel on real images, letterboxed frames of any
size, boxes in the frame's pixels."""

from __future__ import annotations


import cv2
import numpy as np
import pytest

from facetracker import config
from facetracker.boxes import Letterbox, fitted_input, iou_matrix
from facetracker.errors import FacetrackerError
from facetracker.inference import (Detection, Detector, bundled_fitted_path, bundled_model_path, make_resizer,
                                   resolve_model_path, to_detections)


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


def assert_same_faces(want: list[Detection], got: list[Detection], atol_px: float, score_atol: float = 1e-4):
    """The same faces in the same order: scores within score_atol, boxes within atol_px pixels."""
    assert len(got) == len(want), (want, got)
    np.testing.assert_allclose([d.score for d in got], [d.score for d in want], atol=score_atol)
    np.testing.assert_allclose(np.reshape([d.box for d in got], (-1, 4)), np.reshape([d.box for d in want], (-1, 4)),
                               atol=atol_px)


def test_keras_detector_follows_the_image(keras_detector, real_frames):
    # The comparisons below only mean something if outputs differ between images (a trained model).
    detections = keras_detector.detect_batch(real_frames[:-2])
    assert keras_detector.runtime_name == "keras" and keras_detector.image_size == 64
    assert all(detections), "every real frame gives at least one detection above MIN_SCORE"
    assert np.std([faces[0].box[0] for faces in detections]) > 5.0  # pixels
    for faces in detections:  # best first, all above the floor
        assert [d.score for d in faces] == sorted((d.score for d in faces), reverse=True)
        assert min(d.score for d in faces) >= config.MIN_SCORE


@pytest.mark.parametrize("fmt", ["tflite", "onnx", "savedmodel"])
def test_runtimes_agree_with_keras(fmt, tiny_exports, keras_detector, real_frames):
    exported = Detector.load(tiny_exports(fmt).path)
    assert exported.runtime_name == fmt and exported.image_size == 64  # read from the file, no flag
    for frame in real_frames:
        scale = max(frame.shape[:2])
        assert_same_faces(keras_detector.detect(frame), exported.detect(frame), atol_px=1e-4 * scale)


@pytest.mark.parametrize("fmt", ["keras", "tflite", "onnx"])
def test_detect_batch_equals_detect(fmt, tiny_exports, keras_detector, real_frames):
    detector = keras_detector if fmt == "keras" else Detector.load(tiny_exports(fmt).path)
    batch = detector.detect_batch(real_frames)
    assert len(batch) == len(real_frames) and detector.detect_batch([]) == []
    for frame, from_batch in zip(real_frames, batch):
        assert_same_faces(detector.detect(frame), from_batch, atol_px=1e-3, score_atol=1e-5)


def test_boxes_are_in_pixels_of_the_original_frame(keras_detector, real_frames):
    for frame in real_frames:
        height, width = frame.shape[:2]
        scores, boxes = keras_detector.raw(keras_detector.prepare([frame]))
        detections = keras_detector.detect(frame)
        found = scores[0] >= config.MIN_SCORE
        assert all(isinstance(d, Detection) for d in detections) and len(detections) == found.sum()
        np.testing.assert_allclose([d.score for d in detections], scores[0][found], atol=1e-6)
        # The frame sits letterboxed in the square input: scaled by side / longest side, centred.
        scale = keras_detector.image_size / max(width, height)
        pad = (np.array([keras_detector.image_size] * 2) - np.round([width * scale, height * scale])) // 2
        want = (boxes[0][found] * keras_detector.image_size - np.tile(pad, 2)) / scale
        want = np.clip(want, 0, [width, height, width, height])
        np.testing.assert_allclose(np.reshape([d.box for d in detections], (-1, 4)), want, atol=0.5)  # pixels
        for x1, y1, x2, y2 in (d.box for d in detections):
            assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height


def test_frames_are_letterboxed_with_grey_bars(keras_detector, real_frames):
    side = keras_detector.image_size
    for frame in real_frames:
        height, width = frame.shape[:2]
        image = keras_detector.prepare([frame])[0]
        (w, h), (x, y) = Letterbox(width, height, side).size, Letterbox(width, height, side).pad
        bars = np.ones((side, side), bool)
        bars[y:y + h, x:x + w] = False
        assert (image[bars] == config.AUG_BORDER_FILL).all()
        picture = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), (w, h), interpolation=cv2.INTER_AREA)
        assert np.abs(image[y:y + h, x:x + w] - picture).mean() < 2.0  # grey levels


def test_padding_never_becomes_a_detection():
    layout = Letterbox(640, 480, 64)
    scores = np.array([0.9, 0.3, 0.0, 0.0], np.float32)
    boxes = np.array([[0.2, 0.2, 0.5, 0.6], [0.6, 0.3, 0.8, 0.5], [0, 0, 0, 0], [0, 0, 0, 0]], np.float32)
    assert [d.score for d in to_detections(scores, boxes, layout, min_score=0.0)] == pytest.approx([0.9, 0.3])
    assert [d.score for d in to_detections(scores, boxes, layout, min_score=0.5)] == pytest.approx([0.9])
    # 640 x 480 in 64 px: scale 0.1, 8 px bars above and below.
    np.testing.assert_allclose(to_detections(scores, boxes, layout)[0].box, [128, 48, 320, 304], atol=1e-3)


def test_preprocessing_matches_training(real_frames):
    import tensorflow as tf

    for frame in real_frames:
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        # What training feeds the model: the image area-resized (here to a letterbox's 128 x 96), rounded to uint8.
        trained_on = tf.cast(tf.round(tf.image.resize(rgb, (96, 128), method="area")), tf.uint8).numpy()
        exact, fast = np.empty((96, 128, 3), np.uint8), np.empty((96, 128, 3), np.uint8)
        make_resizer("area", (128, 96))(frame, exact)
        make_resizer("fast-area", (128, 96))(frame, fast)
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
        assert_same_faces(keras_model.detect(frame), tflite.detect(frame), atol_px=0.1)  # pixels of 640x480


def test_the_bundled_fitted_tflite_files_are_the_bundled_keras_model_fitted(datasets_dir):
    """`live` runs these for the frames of common cameras: each must be the shipped .keras fitted to those frames
    (model.fitted), and find the same faces as the square file, at the same scale."""
    from facetracker.model import fitted, load_model

    bundled = load_model(bundled_model_path())
    assert bundled.image_size == config.BUNDLED_IMAGE_SIZE
    square = Detector.load(bundled_model_path(fast=True))
    frames = [cv2.imread(str(p)) for p in sorted((datasets_dir / "webcam-b" / "images").glob("*.jpg"))[:6]]
    for width, height in config.BUNDLED_FITTED_FRAMES:
        input_width, input_height = fitted_input(width, height, bundled.image_size)
        path = bundled_fitted_path((width, height))
        assert path.name == config.BUNDLED_FITTED_MODEL_NAME.format(width=input_width, height=input_height)
        tflite = Detector.load(path)
        keras_fitted = Detector.from_model(fitted(bundled, width, height))
        assert tflite.input_size == keras_fitted.input_size == (input_width, input_height)
        assert tflite.image_size == square.image_size  # the same scale: the long side is the square's side
        for frame in frames:
            shown = cv2.resize(frame, (width, height)) if (width, height) != (640, 480) else frame
            assert_same_faces(keras_fitted.detect(shown), tflite.detect(shown), atol_px=0.2)
            best_square, best_fitted = square.detect(shown)[0], tflite.detect(shown)[0]
            assert abs(best_square.score - best_fitted.score) < 0.06
            assert iou_matrix([best_square.box], [best_fitted.box])[0, 0] > 0.85


def test_a_fitted_detector_letterboxes_into_its_own_input(keras_detector, real_frames, trained_model):
    """Detector.load(frame=...) fits a .keras model to the frames it will see: the 64 px test model fitted to
    1280x600 frames takes a 64x32 input. Its frames are scaled as the square model scales them; frames of other
    shapes still fit inside it, and every box maps back to the frame's pixels."""
    fitted_detector = Detector.load(trained_model, frame=(1280, 600))
    side = keras_detector.image_size
    assert fitted_detector.input_size == (64, 32) == fitted_input(1280, 600, side)
    wide = cv2.resize(real_frames[0], (1280, 600))
    assert fitted_detector.letterbox(wide).scale == pytest.approx(Letterbox(1280, 600, side).scale)
    for frame in [wide, *real_frames]:
        height, width = frame.shape[:2]
        layout = fitted_detector.letterbox(frame)
        (w, h), (x, y) = layout.size, layout.pad
        image = fitted_detector.prepare([frame])[0]
        assert image.shape == (32, 64, 3)
        bars = np.ones(image.shape[:2], bool)
        bars[y:y + h, x:x + w] = False
        assert (image[bars] == config.AUG_BORDER_FILL).all()
        picture = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), (w, h), interpolation=cv2.INTER_AREA)
        assert np.abs(image[y:y + h, x:x + w] - picture).mean() < 2.0  # grey levels
        for found in fitted_detector.detect(frame, min_score=0.0):
            x1, y1, x2, y2 = found.box
            assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height


def test_the_default_model_is_fitted_to_the_cameras_frames(tmp_path, monkeypatch):
    """With no --model, a 640x480 source runs the bundled 192x160 file, a 1280x720 one the 192x128 file, a size
    with no fitted file the square one; a file given by path runs as exported."""
    monkeypatch.chdir(tmp_path)  # no models/facetracker.keras here: the bundled model is the default
    assert Detector.load(None, frame=(640, 480)).input_size == (192, 160)
    for frame, fitted in (((1280, 720), (192, 128)), ((368, 656), (128, 192)), ((500, 500), (192, 192))):
        assert Detector.load(resolve_model_path(None, frame=frame), frame=frame).input_size == fitted
    assert resolve_model_path(None, frame=(500, 500)) == bundled_model_path(fast=True)  # no 1:1 file ships
    assert resolve_model_path(None, fast=False, frame=(640, 480)) == bundled_model_path()  # .keras: fitted in memory
    assert Detector.load(None).input_size == (192, 192)
    square = bundled_model_path(fast=True)
    assert Detector.load(square, frame=(640, 480)).input_size == (192, 192)  # a file given runs as exported
