"""FaceTracker model, its preprocessing, saving/loading, the grid geometry (target assignment, decoding, NMS) and the
dual loss, with hand-checked numbers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from facetracker import boxes, config, losses
from facetracker.errors import FacetrackerError
from facetracker.model import (CaffePreprocess, FaceTracker, Standardize, build_model, fitted, load_model,
                               make_backbone, pick_preprocessing)


def pixels(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


@pytest.mark.parametrize("backbone,size,preprocessing", [
    ("compact", 64, "standardize"), ("mobilenetv2", 64, "tf"), ("vgg16", 32, "caffe"), ("blazeface", 64, "tf"),
    ("blazeface-lite", 64, "tf")])
def test_every_backbone_follows_the_model_contract(backbone, size, preprocessing):
    model = build_model(backbone, image_size=size, weights=None)
    assert isinstance(model, FaceTracker)
    assert (model.image_size, model.backbone_name, model.preprocessing) == (size, backbone, preprocessing)
    for batch in (3, 1):  # any batch runs tf.map_fn over the images; one image has a loop-free graph
        scores, found = (np.asarray(t) for t in model(pixels(batch, size), training=False))
        assert scores.shape == (batch, config.MAX_FACES) and found.shape == (batch, config.MAX_FACES, 4)
        assert ((scores >= 0) & (scores <= 1)).all()
        assert (np.diff(scores, axis=1) <= 0).all(), "faces sorted best first"
        real = scores > 0
        assert (found[~real] == 0).all(), "slots without a face are zeros"
        assert (found[real][:, 0] <= found[real][:, 2]).all() and (found[real][:, 1] <= found[real][:, 3]).all()
        assert (scores[real] >= config.MIN_SCORE).all()


def test_the_blazeface_backbone_computes_what_mediapipes_own_file_computes(datasets_dir):
    """The shipped BlazeFace .tflite's weights, loaded by layer name into the Keras backbone, give the very features
    that TFLite computes from that file, on a real face (BlazeFace's own 128 px input, pixels in [-1, 1])."""
    import cv2
    import tensorflow as tf

    from facetracker.model import BLAZEFACE_WEIGHTS, blazeface_backbone, blazeface_weights_file, load_blazeface_weights

    path = blazeface_weights_file(BLAZEFACE_WEIGHTS)
    backbone = blazeface_backbone(128)
    load_blazeface_weights(backbone, path)
    image = cv2.imread(str(sorted((datasets_dir / "webcam-v" / "images").glob("*.jpg"))[0]))
    x = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), (128, 128)).astype("float32")[None] / 127.5 - 1.0
    interpreter = tf.lite.Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    tensors = {d["name"]: d["index"] for d in interpreter.get_tensor_details()}
    stride8, stride16, stride32 = (np.asarray(t) for t in backbone(x))
    for ours, theirs in ((stride8, "activation_11"), (stride16, "activation_16")):
        expected = interpreter.get_tensor(tensors[theirs])
        assert ours.shape == expected.shape and np.abs(expected).max() > 1.0
        np.testing.assert_allclose(ours, expected, atol=1e-4)
    assert stride32.shape == (1, 4, 4, 128), "a new block gives the pyramid its stride-32 map"


def test_the_blazeface_backbone_refuses_weights_it_cannot_read(tmp_path):
    other = tmp_path / "other.tflite"
    other.write_bytes((Path(config.__file__).parent / "assets" / config.BUNDLED_FAST_MODEL_NAME).read_bytes())
    with pytest.raises(FacetrackerError, match="convolutions found"):
        build_model("blazeface", image_size=64, weights=other)
    with pytest.raises(FacetrackerError, match="starts from BlazeFace's .tflite"):
        build_model("blazeface", image_size=64, weights="imagenet")
    (tmp_path / "broken.tflite").write_text("not a model")
    with pytest.raises(FacetrackerError, match="cannot read the .tflite"):
        build_model("blazeface", image_size=64, weights=tmp_path / "broken.tflite")


def test_blazeface_lite_keeps_blazefaces_blocks_after_its_own_stem():
    # From BlazeFace's .tflite it loads the blocks it kept (the cheap stem is not in the file); made from a trained
    # blazeface FaceTracker (model.lightened) it keeps every trained layer but the stem, neck and head included.
    from facetracker.model import BLAZEFACE_WEIGHTS, LITE_PREFIX, lightened

    blazeface = build_model("blazeface", image_size=64, weights=BLAZEFACE_WEIGHTS)
    lite = build_model("blazeface-lite", image_size=64, weights=BLAZEFACE_WEIGHTS)
    assert lite.count_params() < blazeface.count_params()
    for name in ("depthwise_conv2d_3", "conv2d_4", "conv2d_16"):
        np.testing.assert_array_equal(lite.backbone.get_layer(name).get_weights()[0],
                                      blazeface.backbone.get_layer(name).get_weights()[0])
    assert {"conv2d", "conv2d_1", "conv2d_3"}.isdisjoint(layer.name for layer in lite.backbone.layers)

    blazeface.merge_bn.moving_mean.assign(np.full(blazeface.neck_channels, 0.5, "float32"))  # "trained"
    made = lightened(blazeface)
    assert (made.backbone_name, made.image_size, made.preprocessing) == ("blazeface-lite", 64, "tf")
    kept = [layer for layer in made.backbone.layers if layer.weights and not layer.name.startswith(LITE_PREFIX)]
    assert len(kept) == 2 * 14  # blocks 3-15 and the extra stride-32 one: a depthwise and a pointwise conv each
    for layer in kept:
        for ours, theirs in zip(layer.get_weights(), blazeface.backbone.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(ours, theirs)
    for ours, theirs in zip(made.neck_and_head(), blazeface.neck_and_head()):
        for a, b in zip(ours.get_weights(), theirs.get_weights()):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(FacetrackerError, match="only a blazeface model can be made lite"):
        lightened(build_model("compact", image_size=64, weights=None))


def test_default_backbone_is_the_small_compact_network_at_192():
    model = build_model()
    assert (model.backbone_name, model.image_size, model.grid) == ("compact", 192, 192 // config.STRIDE)
    assert model.count_params() < 1_000_000, "no Dense(2048) heads: the model stays small"


def separable_layers(model: FaceTracker) -> set[str]:
    everything = list(model.backbone.layers) + [model.merge, model.head]
    return {layer.name for layer in everything if isinstance(layer, keras.layers.SeparableConv2D)}


def test_separable_layers_sit_where_inference_is_weight_bound_and_survive_saving(tmp_path):
    model = build_model(image_size=64, weights=None, width=8, neck_channels=16, separable=True)
    assert separable_layers(model) == {"stage3_conv1", "stage4_conv1", "merge", "head"}
    dense = build_model(image_size=64, weights=None, width=8, neck_channels=16, separable=False)
    assert separable_layers(dense) == set() and model.count_params() < dense.count_params()
    model.save(tmp_path / "s.keras")
    loaded = load_model(tmp_path / "s.keras")
    assert loaded.separable and separable_layers(loaded) == separable_layers(model)
    x = pixels(2, 64)
    for a, b in zip(model(x), loaded(x)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


def test_a_model_saved_before_separable_existed_loads_as_the_all_dense_network():
    saved = build_model(image_size=64, weights=None, width=8, neck_channels=16, separable=False).get_config()
    del saved["separable"]  # what files written by earlier versions hold
    assert separable_layers(FaceTracker.from_config(saved)) == set()
    assert build_model(image_size=64, weights=None).separable == config.SEPARABLE


def test_preprocessing_inside_the_model_matches_keras_applications():
    x = pixels(2, 8)
    expected = keras.applications.vgg16.preprocess_input(x.copy())
    np.testing.assert_allclose(np.asarray(CaffePreprocess()(x)), expected, rtol=1e-5, atol=1e-3)
    mobilenet = build_model("mobilenetv2", image_size=32)
    np.testing.assert_allclose(np.asarray(mobilenet.preprocess(x)),
                               keras.applications.mobilenet_v2.preprocess_input(x.copy()), atol=1e-5)


def test_standardize_gives_each_image_mean_0_and_std_1():
    x = pixels(2, 16)
    bright = x.copy()
    bright[1] = x[1] * 0.2 + 180  # a bright, flat picture: the same scene after standardisation
    out = np.asarray(Standardize()(bright))
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(1, 2, 3)), 1, atol=1e-3)
    np.testing.assert_allclose(out[1], np.asarray(Standardize()(x))[1], atol=1e-3)
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
    with pytest.raises(FacetrackerError, match="not a valid or complete Keras model file") as err:
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
    with pytest.raises(FacetrackerError, match="no ImageNet weights for mobilenetv2 at 64px"):
        build_model("mobilenetv2", image_size=64, weights="imagenet")
    with pytest.raises(FacetrackerError, match="image size 100 is not a multiple of 32"):
        build_model("mobilenetv2", image_size=100, weights="imagenet")  # the stride-32 grid needs whole cells


def test_unknown_backbone_is_refused():
    with pytest.raises(FacetrackerError, match="unknown backbone 'resnet'"):
        build_model("resnet")




# ---- the grid: which cells learn which face, decoding, non-maximum suppression ------------------------------
def distances_for(box, cell: int, grid: int) -> list[float]:
    """The raw head output (log of the side distances in cells) that makes `cell` predict `box` exactly."""
    cx, cy = np.asarray(boxes.cell_centers(grid))[cell]
    x1, y1, x2, y2 = box
    return list(np.log(np.array([cx - x1, cy - y1, x2 - cx, y2 - cy]) * grid))


def logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def test_decoding_and_nms_give_the_right_boxes_on_a_hand_made_case():
    grid = 4  # cell centres at 0.125, 0.375, 0.625, 0.875; cell index = row * 4 + column
    face_a, duplicate_a = [0.1, 0.1, 0.6, 0.6], [0.1, 0.12, 0.58, 0.6]  # IoU 0.92: the same face
    face_b, faint = [0.7, 0.7, 0.95, 0.95], [0.6, 0.0, 1.0, 0.3]
    cells = {5: (face_a, 0.9), 0: (duplicate_a, 0.8), 15: (face_b, 0.7), 3: (faint, 0.01)}  # cell: (box, score)
    distances = np.zeros((1, grid * grid, 4), "float32")
    logits = np.full((grid * grid,), -10.0, "float32")  # every other cell: no face
    for cell, (box, score) in cells.items():
        distances[0, cell] = distances_for(box, cell, grid)
        logits[cell] = logit(score)
    decoded = np.asarray(boxes.decode_boxes(distances, grid))[0]
    for cell, (box, _) in cells.items():
        np.testing.assert_allclose(decoded[cell], box, atol=1e-6)

    scores, kept = (np.asarray(t) for t in boxes.select_faces(
        1 / (1 + np.exp(-logits)), decoded, max_faces=4, iou=config.NMS_IOU, min_score=config.MIN_SCORE))
    # Two faces -> two boxes, best first; the duplicate is suppressed, the faint cell (0.01) dropped; then zeros.
    np.testing.assert_allclose(scores, [0.9, 0.7, 0, 0], atol=1e-6)
    np.testing.assert_allclose(kept, [face_a, face_b, [0, 0, 0, 0], [0, 0, 0, 0]], atol=1e-6)


def test_a_grid_of_other_rows_than_columns_decodes_and_assigns_by_its_own_cells():
    """A model fitted to a wide frame has a grid of 2 rows and 4 columns: cell centres at x 0.125 ... 0.875 and
    y 0.25, 0.75; a cell is a quarter of the input wide and half of it high."""
    grid = (2, 4)  # (rows, columns); cell index = row * 4 + column
    centres = np.asarray(boxes.cell_centers(grid))
    np.testing.assert_allclose(centres[[0, 3, 5]], [[0.125, 0.25], [0.875, 0.25], [0.375, 0.75]])
    face = [0.3, 0.55, 0.5, 0.95]  # centred in cell 5
    cx, cy = centres[5]
    distances = np.zeros((1, 8, 4), "float32")
    distances[0, 5] = np.log(np.array([cx - face[0], cy - face[1], face[2] - cx, face[3] - cy]) * [4, 2, 4, 2])
    np.testing.assert_allclose(np.asarray(boxes.decode_boxes(distances, grid))[0, 5], face, atol=1e-6)
    positive, matched = (np.asarray(t) for t in boxes.assign_faces(np.array([[face]], "float32"), grid))
    assert np.nonzero(positive[0])[0].tolist() == [5]
    np.testing.assert_allclose(matched[0, 5], face)


def test_fitted_inputs_keep_the_squares_scale_with_fewer_bars():
    """boxes.fitted_input and Letterbox(fit=...): a frame keeps the scale of the square input, only the bars the
    stride needs remain, and boxes go to the input and back unchanged."""
    assert boxes.fitted_input(640, 480, 192) == (192, 160)  # 192 x 144 of picture
    assert boxes.fitted_input(1280, 720, 192) == (192, 128)  # 192 x 108
    assert boxes.fitted_input(368, 656, 192) == (128, 192)  # portrait phone clip: 108 x 192
    assert boxes.fitted_input(500, 500, 192) == (192, 192)
    assert boxes.fitted_input(4000, 100, 192) == (192, 32)  # never under one stride-32 cell
    frame_box = np.array([[100.0, 50.0, 300.0, 400.0]], np.float32)
    for width, height in ((640, 480), (1280, 720), (368, 656)):
        square = boxes.Letterbox(width, height, 192)
        fit = boxes.Letterbox(width, height, 192, boxes.fitted_input(width, height, 192))
        assert fit.scale == square.scale and fit.size == square.size
        assert fit.input_size[0] * fit.input_size[1] < 192 * 192
        np.testing.assert_allclose(fit.to_frame(fit.to_input(frame_box)), frame_box, atol=1e-3)
        # The same face, in pixels of the input, sits at the same place relative to the picture.
        in_square = square.to_input(frame_box) * 192 - np.tile(square.pad, 2)
        in_fit = fit.to_input(frame_box) * np.tile(fit.input_size, 2) - np.tile(fit.pad, 2)
        np.testing.assert_allclose(in_fit, in_square, atol=1e-3)


def test_a_fitted_model_has_the_squares_weights_and_its_own_grid():
    square = build_model("compact", image_size=64, weights=None)
    wide = fitted(square, 1280, 600)
    assert wide.input_size == (64, 32) and wide.grid == (4, 8) and wide.image_size == 64
    for mine, theirs in zip(wide.get_weights(), square.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    scores, found = wide(np.zeros((1, 32, 64, 3), "float32"))
    assert scores.shape == (1, wide.max_faces) and found.shape == (1, wide.max_faces, 4)
    assert FaceTracker.from_config(wide.get_config()).input_size == (64, 32)
    assert square.get_config()["input_size"] is None  # files saved before fitting existed load as squares
    with pytest.raises(FacetrackerError, match="multiples of 32"):
        build_model("compact", image_size=64, weights=None, input_size=(64, 40))


def test_decoding_keeps_an_untrained_head_finite():
    wild = np.array([[[100.0, -100.0, 0.0, 50.0]]], "float32")
    decoded = np.asarray(boxes.decode_boxes(wild, 1))
    assert np.isfinite(decoded).all()


def positive_cells(positive, grid: int) -> set:
    rows, cols = np.nonzero(np.asarray(positive).reshape(grid, grid))
    return set(zip(rows.tolist(), cols.tolist()))


def test_assign_faces_on_hand_made_boxes():
    grid = 8  # cell centres at (i + 0.5) / 8
    small = [0.30, 0.30, 0.35, 0.35]  # smaller than a cell (0.125): it still owns the cell it sits in
    big = [0.10, 0.10, 0.90, 0.90]  # central part (0.3 of the half-size): the 2 x 2 cells around the centre
    nested = [0.45, 0.45, 0.52, 0.52]  # a small face inside the big one's central part
    left, right = [0.10, 0.20, 0.50, 0.70], [0.60, 0.10, 0.95, 0.90]
    zero = [0.0, 0.0, 0.0, 0.0]
    true_boxes = np.array([[small, zero, zero], [big, zero, zero], [big, nested, zero], [left, right, zero],
                           [zero, zero, zero]], "float32")
    positive, matched = (np.asarray(t) for t in boxes.assign_faces(true_boxes, grid))
    assert positive.shape == (5, 64) and matched.shape == (5, 64, 4)
    cell = lambda row, col: row * grid + col  # noqa: E731

    assert positive_cells(positive[0], grid) == {(2, 2)}
    np.testing.assert_allclose(matched[0, cell(2, 2)], small)

    central = {(3, 3), (3, 4), (4, 3), (4, 4)}
    assert positive_cells(positive[1], grid) == central, "only central cells, not every cell inside the box"
    for row, col in central:
        np.testing.assert_allclose(matched[1, cell(row, col)], big)

    # Overlapping faces: the cell both could learn goes to the smaller face, the big one keeps the others.
    assert positive_cells(positive[2], grid) == central
    np.testing.assert_allclose(matched[2, cell(3, 3)], nested)
    for row, col in central - {(3, 3)}:
        np.testing.assert_allclose(matched[2, cell(row, col)], big)

    # Two faces in one frame: each gets its own cells.
    assert positive_cells(positive[3], grid) == {(3, 2), (3, 6), (4, 6)}
    np.testing.assert_allclose(matched[3, cell(3, 2)], left)
    np.testing.assert_allclose(matched[3, cell(3, 6)], right)
    np.testing.assert_allclose(matched[3, cell(4, 6)], right)

    assert positive[4].sum() == 0, "an image without faces has no face cell"


# ---- losses ---------------------------------------------------------------------------------------------------
FACE = [0.2, 0.2, 0.6, 0.8]


def test_corner_loss_matches_hand_computed_values():
    # corner (0.1, 0.1) vs (0.2, 0.2): 0.01 + 0.01; size (0.5, 0.5) vs (0.4, 0.6): 0.01 + 0.01 -> 0.04
    value = losses.corner_loss(np.array([[0.2, 0.2, 0.6, 0.8]]), np.array([[0.1, 0.1, 0.6, 0.6]]))
    np.testing.assert_allclose(np.asarray(value), [0.04], atol=1e-6)


def one_face_and_one_negative(grid: int = 4):
    """true boxes (2, 2, 4): image 0 holds FACE, image 1 nothing; logits and distances of an arbitrary head."""
    true_boxes = np.zeros((2, 2, 4), "float32")
    true_boxes[0, 0] = FACE
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (2, grid * grid)).astype("float32")
    distances = rng.normal(0, 0.5, (2, grid * grid, 4)).astype("float32")
    return true_boxes, logits, distances


def test_negatives_contribute_no_box_loss():
    true_boxes, logits, distances = one_face_and_one_negative()
    result = losses.dense_losses(true_boxes, logits, distances, 4)
    assert float(result["positives"]) > 0 and float(result["box_loss"]) > 0
    moved = distances.copy()
    moved[1] += 3.0  # the negative image's boxes, anywhere: only face cells are pulled towards a box
    again = losses.dense_losses(true_boxes, logits, moved, 4)
    assert float(again["box_loss"]) == pytest.approx(float(result["box_loss"]))
    no_faces = losses.dense_losses(np.zeros_like(true_boxes), logits, distances, 4)
    assert float(no_faces["box_loss"]) == 0.0 and float(no_faces["positives"]) == 0.0
    assert float(no_faces["class_loss"]) > 0, "every cell of a negative still learns 'no face'"


def test_total_loss_weights_class_and_box_terms():
    true_boxes, logits, distances = one_face_and_one_negative()
    plain = losses.dense_losses(true_boxes, logits, distances, 4)
    weighted = losses.dense_losses(true_boxes, logits, distances, 4, class_weight=0.5, box_weight=2.0)
    np.testing.assert_allclose(float(weighted["loss"]),
                               0.5 * float(plain["class_loss"]) + 2.0 * float(plain["box_loss"]), rtol=1e-5)
    np.testing.assert_allclose(float(plain["loss"]), float(plain["class_loss"]) + float(plain["box_loss"]), rtol=1e-5)


def one_face_and_a_perfect_head(grid: int = 4):
    """true boxes (1, 1, 4) holding FACE, the cells assigned to it (1, C) and head distances (1, C, 4) that make
    every one of those cells predict FACE exactly."""
    true_boxes = np.zeros((1, 1, 4), "float32")
    true_boxes[0, 0] = FACE
    positive, _ = boxes.assign_faces(true_boxes, grid)
    distances = np.zeros((1, grid * grid, 4), "float32")
    for cell in np.flatnonzero(np.asarray(positive)[0]):
        distances[0, cell] = distances_for(FACE, cell, grid)
    return true_boxes, np.asarray(positive), distances


def test_a_perfect_head_has_iou_1_and_no_giou_loss():
    grid = 4
    true_boxes, positive, distances = one_face_and_a_perfect_head(grid)
    result = losses.dense_losses(true_boxes, np.zeros((1, grid * grid), "float32"), distances, grid)
    assert float(result["iou"]) == pytest.approx(1.0, abs=1e-5)
    assert float(result["box_loss"]) == pytest.approx(0.0, abs=1e-5)


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


def test_quality_focal_loss_is_lowest_where_the_score_is_the_box_iou():
    # One face cell whose box overlaps its face at IoU 0.6, one background cell: the loss per cell is smallest
    # when the face cell scores 0.6 (not 1, as plain focal loss would want) and the background cell scores 0.
    quality = np.array([[0.6, 0.0]], "float32")
    scores = np.linspace(0.05, 0.95, 19)
    face_cell = [float(losses.quality_focal_loss(quality[:, :1], np.log([[p / (1 - p)]]).astype("float32"))[0])
                 for p in scores]
    assert scores[int(np.argmin(face_cell))] == pytest.approx(0.6, abs=0.03)
    low = float(losses.quality_focal_loss(quality[:, 1:], np.array([[-6.0]], "float32"))[0])
    high = float(losses.quality_focal_loss(quality[:, 1:], np.array([[2.0]], "float32"))[0])
    assert low < 1e-4 < high


def test_quality_focal_score_loss_targets_the_iou_of_the_predicted_box():
    grid = 4
    true_boxes, positive, distances = one_face_and_a_perfect_head(grid)
    perfect, sure = np.full((1, grid * grid), -9.0, "float32"), np.asarray(positive, "float32") * 18.0 - 9.0
    # A perfect box and a sure score: nothing to learn. The same score on a box moved off the face: a loss.
    assert float(losses.dense_losses(true_boxes, sure, distances, grid, score_loss="quality_focal")["class_loss"]) \
        == pytest.approx(0.0, abs=1e-3)
    moved = distances + np.array([0.0, 0.0, 1.0, 1.0], "float32")
    off = losses.dense_losses(true_boxes, sure, moved, grid, score_loss="quality_focal")
    assert float(off["iou"]) < 0.9 and float(off["class_loss"]) > 0.1
    assert float(losses.dense_losses(true_boxes, perfect, distances, grid, score_loss="quality_focal")["class_loss"]) > 1
    with pytest.raises(FacetrackerError, match="unknown score loss"):
        losses.dense_losses(true_boxes, sure, distances, grid, score_loss="bce")


def test_unknown_box_loss_is_refused():
    true_boxes, logits, distances = one_face_and_one_negative()
    with pytest.raises(FacetrackerError, match="unknown box loss 'l1'"):
        losses.dense_losses(true_boxes, logits, distances, 4, box_loss="l1")
