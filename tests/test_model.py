"""FaceTracker model, its preprocessing, saving/loading, and the dual loss with hand-checked numbers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from facetracker import losses
from facetracker.errors import FacetrackerError
from facetracker.model import (CaffePreprocess, FaceTracker, Standardize, build_model, load_model, make_backbone,
                               pick_preprocessing)


def pixels(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


@pytest.mark.parametrize("backbone,size,preprocessing", [
    ("mobilenetv2", 64, "tf"), ("mobilenetv3small", 64, "tf"), ("vgg16", 32, "caffe")])
def test_every_backbone_follows_the_model_contract(backbone, size, preprocessing):
    model = build_model(backbone, image_size=size, weights=None)
    assert isinstance(model, FaceTracker)
    assert (model.image_size, model.backbone_name, model.preprocessing) == (size, backbone, preprocessing)
    score, box = model(pixels(3, size), training=False)
    assert tuple(score.shape) == (3, 1) and tuple(box.shape) == (3, 4)
    score, box = np.asarray(score), np.asarray(box)
    assert ((score >= 0) & (score <= 1)).all() and ((box >= 0) & (box <= 1)).all()
    assert (box[:, 0] <= box[:, 2]).all() and (box[:, 1] <= box[:, 3]).all(), "corners are ordered"


def test_default_backbone_is_a_small_mobilenetv2_at_128():
    model = build_model()
    assert (model.backbone_name, model.image_size, model.alpha) == ("mobilenetv2", 128, 0.35)
    assert model.count_params() < 1_000_000, "no Dense(2048) heads: the model stays small"


def test_preprocessing_inside_the_model_matches_keras_applications():
    x = pixels(2, 8)
    expected = keras.applications.vgg16.preprocess_input(x.copy())
    np.testing.assert_allclose(np.asarray(CaffePreprocess()(x)), expected, rtol=1e-5, atol=1e-3)
    mobilenet = build_model("mobilenetv2", image_size=32)
    np.testing.assert_allclose(np.asarray(mobilenet.preprocess(x)),
                               keras.applications.mobilenet_v2.preprocess_input(x.copy()), atol=1e-5)


def test_standardize_gives_each_channel_of_each_image_mean_0_and_std_1():
    x = pixels(2, 16)
    x[1] = x[1] * 0.2 + 180  # a bright, flat picture: the same scene after standardisation
    out = np.asarray(Standardize()(x))
    np.testing.assert_allclose(out.mean(axis=(1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(1, 2)), 1, atol=1e-3)
    flat = np.asarray(Standardize()(np.full((1, 8, 8, 3), 77, "float32")))
    assert np.isfinite(flat).all() and np.abs(flat).max() == 0


def test_preprocessing_follows_the_weights_unless_named():
    assert pick_preprocessing("auto", "mobilenetv2", None) == "standardize"
    assert pick_preprocessing("auto", "mobilenetv2", "none") == "standardize"
    assert pick_preprocessing("auto", "mobilenetv2", "imagenet") == "tf"
    assert pick_preprocessing("auto", "vgg16", "/some/weights.h5") == "caffe"
    assert pick_preprocessing("tf", "mobilenetv2", None) == "tf"
    with pytest.raises(FacetrackerError, match="unknown preprocessing"):
        pick_preprocessing("zscore", "mobilenetv2", None)


def test_standardized_model_saves_and_loads_with_safe_mode(tmp_path):
    model = build_model("mobilenetv2", image_size=32, preprocessing="standardize")
    model.save(tmp_path / "s.keras")
    loaded = keras.models.load_model(tmp_path / "s.keras", safe_mode=True)
    assert loaded.preprocessing == "standardize" and isinstance(loaded.preprocess, Standardize)
    x = pixels(2, 32)
    for a, b in zip(model(x), loaded(x)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


def test_saved_model_loads_with_safe_mode_and_needs_no_flags(tmp_path):
    model = build_model("vgg16", image_size=32)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert isinstance(loaded, FaceTracker)
    assert (loaded.image_size, loaded.backbone_name, loaded.preprocessing) == (32, "vgg16", "caffe")
    x = pixels(2, 32)
    for a, b in zip(model(x), loaded(x)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    assert isinstance(load_model(path), FaceTracker)


def test_legacy_h5_is_refused_unless_unsafe(tmp_path):
    inputs = keras.Input((4,))
    legacy = tmp_path / "old.h5"
    keras.Model(inputs, keras.layers.Dense(1)(inputs)).save(legacy)  # a real legacy HDF5 model file
    with pytest.raises(FacetrackerError, match="--unsafe to load it"):
        load_model(legacy)
    with pytest.raises(FacetrackerError, match="not a FaceTracker"):
        load_model(legacy, unsafe=True)  # loads now, and is then rejected for what it is


def test_missing_or_foreign_model_files_are_one_line_errors(tmp_path):
    with pytest.raises(FacetrackerError, match="model file not found"):
        load_model(tmp_path / "nope.keras")
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip")
    with pytest.raises(FacetrackerError, match="cannot load model") as err:
        load_model(broken)
    assert "\n" not in str(err.value)


def test_backbone_weights_from_a_local_file(tmp_path):
    source = make_backbone("mobilenetv2", 32, 0.35, None)
    path = tmp_path / "backbone.weights.h5"
    source.save_weights(path)
    model = build_model("mobilenetv2", image_size=32, weights=path)
    for a, b in zip(source.get_weights(), model.backbone.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(FacetrackerError, match="weights file not found"):
        build_model("mobilenetv2", image_size=32, weights=tmp_path / "missing.h5")


def test_imagenet_download_failure_is_one_clear_line(tmp_path):
    # A subprocess with an empty KERAS_HOME, so no cached download can hide the failure, and a short socket
    # timeout so a slow network cannot hang the test.
    script = textwrap.dedent("""
        import socket; socket.setdefaulttimeout(5)
        from facetracker.errors import FacetrackerError
        from facetracker.model import build_model
        try:
            build_model("mobilenetv2", image_size=96, weights="imagenet")
            print("DOWNLOADED")
        except FacetrackerError as exc:
            print("ERROR", exc)
    """)
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras-home")}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=180)
    assert "ERROR could not download ImageNet weights for mobilenetv2" in run.stdout, run.stderr[-2000:]
    assert "--weights none" in run.stdout and "--weights PATH" in run.stdout


def test_imagenet_at_a_size_without_weights_is_refused_before_any_download():
    with pytest.raises(FacetrackerError, match="no ImageNet weights for mobilenetv2 at 100px"):
        build_model("mobilenetv2", image_size=100, weights="imagenet")


def test_unknown_backbone_is_refused():
    with pytest.raises(FacetrackerError, match="unknown backbone 'resnet'"):
        build_model("resnet")


# ---- losses ---------------------------------------------------------------------------------------------------
FACE = [0.2, 0.2, 0.6, 0.8]


def test_corner_loss_matches_hand_computed_values():
    # corner (0.1, 0.1) vs (0.2, 0.2): 0.01 + 0.01; size (0.5, 0.5) vs (0.4, 0.6): 0.01 + 0.01 -> 0.04
    value = losses.corner_loss(np.array([[0.2, 0.2, 0.6, 0.8]]), np.array([[0.1, 0.1, 0.6, 0.6]]))
    np.testing.assert_allclose(np.asarray(value), [0.04], atol=1e-6)


def test_negatives_contribute_no_box_loss():
    true_class = np.array([[1.0], [0.0], [0.0]])
    true_box = np.array([FACE, [0, 0, 0, 0], [0, 0, 0, 0]], "float32")
    pred = np.array([[0.1, 0.1, 0.6, 0.6], [0.5, 0.5, 0.9, 0.9], [0.0, 0.3, 1.0, 1.0]], "float32")
    # Only the face counts: 0.04 averaged over ONE face image (the notebook would add the negatives' 0.5+...)
    masked = float(losses.masked_box_loss(true_class, true_box, pred, "corner"))
    np.testing.assert_allclose(masked, 0.04, atol=1e-6)
    moved = pred.copy()
    moved[1:] = [[0.9, 0.9, 1.0, 1.0], [0.0, 0.0, 0.1, 0.1]]
    assert float(losses.masked_box_loss(true_class, true_box, moved, "corner")) == pytest.approx(masked)
    no_faces = float(losses.masked_box_loss(np.zeros((2, 1)), np.zeros((2, 4)), pred[:2], "giou"))
    assert no_faces == 0.0


def test_total_loss_weights_class_and_box_terms():
    true_class = np.array([[1.0], [0.0]], "float32")
    score = np.array([[0.8], [0.4]], "float32")
    true_box = np.array([FACE, [0, 0, 0, 0]], "float32")
    pred_box = np.array([[0.1, 0.1, 0.6, 0.6], [0.3, 0.3, 0.4, 0.4]], "float32")
    result = losses.face_tracker_losses(true_class, true_box, score, pred_box, class_weight=0.5, box_weight=2.0)
    bce = -(np.log(0.8) + np.log(0.6)) / 2
    np.testing.assert_allclose(float(result["class_loss"]), bce, rtol=1e-4)
    np.testing.assert_allclose(float(result["box_loss"]), 0.04, atol=1e-6)
    np.testing.assert_allclose(float(result["loss"]), 0.5 * bce + 2.0 * 0.04, rtol=1e-4)


def test_iou_and_giou_match_hand_computed_values():
    a = np.array([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.2, 0.2], FACE], "float32")
    b = np.array([[0.25, 0.25, 0.75, 0.75], [0.6, 0.6, 0.8, 0.8], FACE], "float32")
    # overlap 0.0625, union 0.4375 -> 1/7; disjoint -> 0; identical -> 1
    np.testing.assert_allclose(np.asarray(losses.box_iou(a, b)), [1 / 7, 0.0, 1.0], atol=1e-5)
    # GIoU: iou - (hull - union) / hull; hull of the first pair 0.5625, second pair 0.64 with union 0.08
    giou = np.array([1 / 7 - (0.5625 - 0.4375) / 0.5625, 0.0 - (0.64 - 0.08) / 0.64, 1.0])
    np.testing.assert_allclose(np.asarray(losses.giou_loss(a, b)), 1 - giou, atol=1e-5)
    ciou = np.asarray(losses.ciou_loss(a, b))
    assert ciou[2] == pytest.approx(0.0, abs=1e-4) and ciou[1] > ciou[0] > 0
    # GIoU + 2.5 x L1 of the corners: first pair 4 x 0.25, second 4 x 0.6, identical 0
    np.testing.assert_allclose(np.asarray(losses.giou_l1_loss(a, b)), 1 - giou + 2.5 * np.array([1.0, 2.4, 0.0]),
                               atol=1e-5)


def test_unknown_box_loss_is_refused():
    with pytest.raises(FacetrackerError, match="unknown box loss 'l1'"):
        losses.masked_box_loss(np.ones((1, 1)), np.zeros((1, 4)), np.zeros((1, 4)), "l1")
