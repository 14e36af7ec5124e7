"""export: every format keeps the decoding and NMS and round-trips within its stated tolerance on real images;
multi-face outputs are compared face by face; bad options fail early."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facetracker import config
from facetracker.cli import app
from facetracker.errors import FacetrackerError
from facetracker.export import _staging, compare, compare_outputs, default_out, export_model
from facetracker.inference import Detector, bundled_model_path
from facetracker.labels import scan


@pytest.fixture(scope="module")
def bundled_exports(tmp_path_factory, datasets_dir):
    """Quantised exports of the bundled model (really trained): a model trained for a few dozen steps from
    scratch has activation ranges no real model has, and its int8 error says nothing about the converter."""
    from tiny_model import ExportCache

    return ExportCache(bundled_model_path(), tmp_path_factory.mktemp("bundled-exports"), datasets_dir)


def webcam_c_inputs(detector, datasets_dir):
    """Model inputs from real webcam-c images: not used by export's own check (webcam-b)."""
    frames = [cv2.imread(str(p)) for p in sorted((datasets_dir / "webcam-c" / "images").glob("*.jpg"))[::10]]
    return detector.prepare(frames)


@pytest.fixture(scope="module")
def keras_detectors():
    """Factory: the Keras Detector of a model path, loaded once per module."""
    loaded = {}

    def get(path):
        if path not in loaded:
            loaded[path] = Detector.load(path)
        return loaded[path]

    return get


def check_round_trip(result, fmt, quantize, reference, datasets_dir):
    tol_score, tol_box = config.EXPORT_TOLERANCE[quantize]
    assert result.passed and result.score_diff <= tol_score and result.box_diff <= tol_box
    assert result.images_checked == config.EXPORT_CHECK_IMAGES and "webcam-b" in result.check_source
    assert result.path.exists() and result.image_size == reference.image_size
    if fmt != "savedmodel":
        assert result.path.stat().st_mode & 0o777 == 0o666 & ~_umask()  # a normal file, not mkstemp's 0600
    # Independently of export's own check: the published file on other real images.
    exported = Detector.load(result.path)
    assert exported.runtime_name == fmt and exported.image_size == reference.image_size  # read from the file
    inputs = webcam_c_inputs(reference, datasets_dir)
    fidelity = compare(reference, exported, inputs)
    assert fidelity.score_diff <= tol_score and fidelity.box_diff <= tol_box
    return reference.raw(inputs), exported.raw(inputs)


@pytest.mark.parametrize("fmt", ["tflite", "onnx", "savedmodel"])
def test_float_round_trip_within_1e4(fmt, tiny_exports, trained_model, keras_detectors, datasets_dir):
    (want_scores, want_boxes), (scores, boxes) = check_round_trip(
        tiny_exports(fmt), fmt, "none", keras_detectors(trained_model), datasets_dir)
    # Float exports are the same computation: every slot agrees, down to the order of the faces and the padding.
    np.testing.assert_allclose(scores, want_scores, atol=1e-4)
    np.testing.assert_allclose(boxes, want_boxes, atol=1e-4)


@pytest.mark.parametrize("fmt", ["tflite", "onnx", "savedmodel"])
def test_the_bundled_model_round_trips_in_every_format(fmt, bundled_exports, keras_detectors, datasets_dir):
    """The shipped network itself, as trained for real, in each format (float)."""
    check_round_trip(bundled_exports(fmt), fmt, "none", keras_detectors(bundled_model_path()), datasets_dir)


@pytest.mark.parametrize("quantize", ["dynamic", "int8"])
def test_quantized_round_trip(quantize, bundled_exports, keras_detectors, datasets_dir):
    result = bundled_exports("tflite", quantize)  # int8: calibrated on real webcam-b images
    check_round_trip(result, "tflite", quantize, keras_detectors(bundled_model_path()), datasets_dir)
    assert result.size_bytes < 0.5 * bundled_model_path().stat().st_size  # int8 weights: ~1/3 of float32


def tflite_outputs(path, image: np.ndarray) -> dict:
    """Run a .tflite file in the bare TFLite interpreter, no facetracker code: {output name: array}."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image[None])
    interpreter.invoke()
    return {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}


@pytest.mark.parametrize("fmt", ["tflite", "onnx", "savedmodel"])
def test_every_export_keeps_the_decoding(fmt, tiny_exports, trained_model, keras_detectors, datasets_dir):
    """Each exported file alone turns a real frame into the same faces as the Keras model: decoding and NMS
    travel inside it, nothing is left for the caller but mapping boxes to the frame."""
    reference = keras_detectors(trained_model)
    exported = Detector.load(tiny_exports(fmt).path)
    found = scan(datasets_dir / "webcam-a" / "images", datasets_dir / "webcam-a" / "labels")
    frames = [cv2.imread(str(s.image)) for s in [s for s in found.samples if s.has_face][:40:8]]
    for frame in frames:
        want, got = reference.detect(frame), exported.detect(frame)
        assert want, "the tiny model finds a face on these images of the person it trained on"
        assert len(got) == len(want)
        np.testing.assert_allclose([d.score for d in got], [d.score for d in want], atol=1e-4)
        np.testing.assert_allclose([d.box for d in got], [d.box for d in want], atol=0.1)  # pixels of 640 x 480
    if fmt == "tflite":  # the bare interpreter gives the K best faces, sorted and zero-padded: boxes, not cells
        image = reference.prepare(frames[:1])[0]
        outputs = sorted(tflite_outputs(tiny_exports(fmt).path, image).values(), key=np.ndim)
        scores, boxes = outputs
        assert scores.shape == (1, config.MAX_FACES) and boxes.shape == (1, config.MAX_FACES, 4)
        want_scores, want_boxes = reference.raw(image[None])
        np.testing.assert_allclose(scores, want_scores, atol=1e-5)
        np.testing.assert_allclose(boxes, want_boxes, atol=1e-5)
        assert (boxes[scores == 0] == 0).all()


FACE_A, FACE_B = [0.1, 0.1, 0.4, 0.5], [0.6, 0.2, 0.9, 0.6]


def outputs(*faces, k: int = 4):
    """Zero-padded (1, k) scores and (1, k, 4) boxes from (score, box) pairs, in the order given."""
    scores, boxes = np.zeros((1, k), "float32"), np.zeros((1, k, 4), "float32")
    for slot, (score, box) in enumerate(faces):
        scores[0, slot], boxes[0, slot] = score, box
    return scores, boxes


def test_compare_pairs_faces_not_slots():
    want = outputs((0.90, FACE_A), (0.89, FACE_B))
    swapped = outputs((0.895, FACE_B), (0.893, FACE_A))  # near-equal scores change places after NMS
    fidelity = compare_outputs(*want, *swapped)
    assert fidelity.score_diff == pytest.approx(0.007, abs=1e-6) and fidelity.box_diff == 0.0  # slots: 0.5
    assert fidelity.faces == 4  # both faces, from both sides

    moved = outputs((0.88, [0.11, 0.1, 0.4, 0.52]), (0.89, FACE_B))
    fidelity = compare_outputs(*want, *moved)
    assert fidelity.score_diff == pytest.approx(0.02, abs=1e-6) and fidelity.box_diff == pytest.approx(0.02)


def test_compare_counts_a_lost_face_and_ignores_what_nms_may_flip():
    want = outputs((0.9, FACE_A), (0.8, FACE_B))
    lost = compare_outputs(*want, *outputs((0.9, FACE_A)))
    assert lost.score_diff == pytest.approx(0.8)  # a confident face found by one output only: its whole score
    faint = outputs((0.9, FACE_A), (0.1, FACE_B))  # below the floor on both sides: not compared...
    assert compare_outputs(*faint, *outputs((0.9, FACE_A))).score_diff == pytest.approx(0.0, abs=1e-6)
    # ...and a near-duplicate of a better face (IoU 0.4 < NMS_IOU) that NMS kept in one output only, neither.
    duplicate = [0.1, 0.27, 0.4, 0.67]
    with_duplicate = outputs((0.9, FACE_A), (0.8, FACE_B), (0.35, duplicate))
    assert compare_outputs(*with_duplicate, *want).score_diff == pytest.approx(0.0, abs=1e-6)
    # The best score is always compared, even below the floor (a negative image's score matters too).
    assert compare_outputs(*outputs((0.1, FACE_A)), *outputs((0.2, FACE_A))).score_diff == pytest.approx(0.1)
    assert compare_outputs(*outputs(), *outputs()).score_diff == 0.0


def test_bad_options_fail_before_any_work(trained_model, tmp_path):
    out = tmp_path / "m.tflite"
    cases = [
        (dict(fmt="coreml"), "unknown export format"),
        (dict(fmt="tflite", quantize="fp8"), "unknown quantization"),
        (dict(fmt="onnx", quantize="int8", data=tmp_path), "only supported for TFLite"),
        (dict(fmt="tflite", quantize="int8"), "needs real images"),
        (dict(fmt="tflite", quantize="int8", data=tmp_path / "missing"), "image folder not found"),
        (dict(fmt="tflite", quantize="int8", data=tmp_path), "no images in folder"),
        (dict(fmt="tflite", out=tmp_path / "m.onnx"), "must end with .tflite"),
        (dict(fmt="tflite", image_size=100), "not a positive multiple of 32"),
    ]
    for kwargs, message in cases:
        kwargs.setdefault("out", out)
        with pytest.raises(FacetrackerError, match=message):
            export_model(trained_model, **kwargs)
    out.write_bytes(b"keep me")
    with pytest.raises(FacetrackerError, match="already exists"):
        export_model(trained_model, "tflite", out=out)
    assert out.read_bytes() == b"keep me"
    legacy = tmp_path / "legacy.h5"
    legacy.write_bytes(b"\x89HDF\r\n\x1a\n")
    with pytest.raises(FacetrackerError, match="--unsafe"):
        export_model(legacy, "onnx", out=tmp_path / "x.onnx")


def test_mismatch_publishes_nothing(trained_model, tmp_path, monkeypatch):
    # An impossible tolerance: the check must fail, and the failed export must not appear.
    monkeypatch.setitem(config.EXPORT_TOLERANCE, "none", (-1.0, -1.0))
    runner = CliRunner()
    out = tmp_path / "m.onnx"
    result = runner.invoke(app, ["export", "--model", str(trained_model), "--format", "onnx", "--out", str(out)])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "nothing written" in result.output and "built-in" in result.output
    assert list(tmp_path.iterdir()) == []  # no file, no temporary left behind


def test_cli_export(trained_model, datasets_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "exports" / "face.onnx"
    args = ["export", "--model", str(trained_model), "--format", "onnx", "--out", str(out),
            "--data", str(datasets_dir / "webcam-c")]  # the data/ layout: images found in webcam-c/images
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "largest difference from Keras" in result.output and "64 px input" in result.output
    assert Detector.load(out).image_size == 64
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--force" in again.output and len(again.output.strip().splitlines()) == 1


def test_the_bundled_model_exports_at_a_smaller_input_and_still_finds_faces(datasets_dir, tmp_path):
    """`export --image-size 160`: the same weights at a 160 px input (the faster file of docs/quality.md, "Input
    size"), checked by export against Keras at 160 px, and still finding the faces of a real labelled set."""
    from facetracker.evaluate import evaluate_folder

    runner = CliRunner()
    out = tmp_path / "fast.tflite"
    result = runner.invoke(app, ["export", "--model", str(bundled_model_path()), "--format", "tflite",
                                 "--image-size", "160", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "160 px input" in result.output
    fast = Detector.load(out)
    assert fast.image_size == 160 and Detector.load(bundled_model_path()).image_size == 192
    report = evaluate_folder(fast, datasets_dir / "webcam-c" / "images", datasets_dir / "webcam-c" / "labels")
    assert report["ap50"] >= 0.9 and report["mean_iou"] >= 0.7, report["ap50"]
    bad = runner.invoke(app, ["export", "--format", "tflite", "--image-size", "150", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1 and "multiple of 32" in bad.output
    assert not (tmp_path / "x").exists()


def test_the_bundled_model_exports_fitted_to_a_cameras_frames(datasets_dir, tmp_path, monkeypatch):
    """`export --frame 640x480`: the input fitted to 4:3 frames (192x160, model.fitted), checked by export against
    Keras, named after the frames, and finding the faces of a real 640x480 set as the square file does."""
    from facetracker.evaluate import evaluate_folder

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["export", "--model", str(bundled_model_path()), "--format", "tflite",
                                 "--frame", "640x480"])
    assert result.exit_code == 0, result.output
    out = tmp_path / config.MODELS_DIR / "facetracker-640x480.tflite"
    assert "192x160 px input" in result.output and out.is_file()
    images, labels = datasets_dir / "webcam-c" / "images", datasets_dir / "webcam-c" / "labels"
    fitted_report = evaluate_folder(Detector.load(out), images, labels)
    square_report = evaluate_folder(Detector.load(bundled_model_path(fast=True)), images, labels)
    assert abs(fitted_report["ap50"] - square_report["ap50"]) <= 0.02, (fitted_report["ap50"], square_report["ap50"])
    assert abs(fitted_report["mean_iou"] - square_report["mean_iou"]) <= 0.02
    bad = runner.invoke(app, ["export", "--format", "tflite", "--frame", "640by480"])
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1 and "WIDTHxHEIGHT" in bad.output


def test_default_output_names(tmp_path):
    model = tmp_path / "models" / "face.keras"
    assert default_out(model, "tflite", "none") == tmp_path / "models" / "face.tflite"
    assert default_out(model, "tflite", "int8") == tmp_path / "models" / "face-int8.tflite"
    assert default_out(model, "savedmodel", "none") == tmp_path / "models" / "face_savedmodel"
    assert default_out(model, "tflite", "none", 160) == tmp_path / "models" / "face-160px.tflite"
    assert default_out(model, "tflite", "none", frame=(640, 480)) == tmp_path / "models" / "face-640x480.tflite"
    # Exports of the bundled model go to models/, never into the installed package.
    assert default_out(bundled_model_path(), "onnx", "none") == config.MODELS_DIR / "facetracker.onnx"


def test_savedmodel_folder_replaced_atomically(tmp_path):
    out = tmp_path / "model_savedmodel"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with _staging(out, is_dir=True) as staged:
            staged.mkdir()
            (staged / "saved_model.pb").write_text("new")
            raise RuntimeError("conversion failed")
    assert [p.name for p in out.iterdir()] == ["old.txt"] and sorted(os.listdir(tmp_path)) == ["model_savedmodel"]
    with _staging(out, is_dir=True) as staged:
        staged.mkdir()
        (staged / "saved_model.pb").write_text("new")
    assert [p.name for p in out.iterdir()] == ["saved_model.pb"] and sorted(os.listdir(tmp_path)) == ["model_savedmodel"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
