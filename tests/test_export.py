"""export: every format round-trips within its stated tolerance on real images; bad options fail early."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facetracker import config
from facetracker.cli import app
from facetracker.errors import FacetrackerError
from facetracker.export import _staging, default_out, export_model
from facetracker.inference import Detector, bundled_model_path


def largest_differences(reference, exported, inputs):
    want_scores, want_boxes = reference.raw(inputs)
    scores, boxes = exported.raw(inputs)
    return np.abs(scores - want_scores).max(), np.abs(boxes - want_boxes).max()


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
    score_diff, box_diff = largest_differences(reference, exported, webcam_c_inputs(reference, datasets_dir))
    assert score_diff <= tol_score and box_diff <= tol_box


@pytest.mark.parametrize("fmt", ["tflite", "onnx", "savedmodel"])
def test_float_round_trip_within_1e4(fmt, tiny_exports, trained_model, keras_detectors, datasets_dir):
    check_round_trip(tiny_exports(fmt), fmt, "none", keras_detectors(trained_model), datasets_dir)


@pytest.mark.parametrize("quantize", ["dynamic", "int8"])
def test_quantized_round_trip(quantize, bundled_exports, keras_detectors, datasets_dir):
    result = bundled_exports("tflite", quantize)  # int8: calibrated on real webcam-b images
    check_round_trip(result, "tflite", quantize, keras_detectors(bundled_model_path()), datasets_dir)
    assert result.size_bytes < 0.5 * bundled_model_path().stat().st_size  # int8 weights: ~1/3 of float32


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


def test_default_output_names(tmp_path):
    model = tmp_path / "models" / "face.keras"
    assert default_out(model, "tflite", "none") == tmp_path / "models" / "face.tflite"
    assert default_out(model, "tflite", "int8") == tmp_path / "models" / "face-int8.tflite"
    assert default_out(model, "savedmodel", "none") == tmp_path / "models" / "face_savedmodel"
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
