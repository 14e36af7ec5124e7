"""Two errors that used to be unclear, through the real CLI: an unknown export format ("unexpected KeyError: 'pt'")
and a cut-off or damaged .keras file (which Keras reports as "File not found" although it exists)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

import facetracker
from clihelp import assert_one_line_error, cli
from facetracker import config
from facetracker.errors import FacetrackerError
from facetracker.files import check_keras_archive

BUNDLED = Path(facetracker.__file__).parent / "assets" / config.BUNDLED_MODEL_NAME


def test_export_unknown_format_is_one_line(tmp_path):
    result = cli("export", "--format", "pt")
    assert_one_line_error(result, "unknown export format", "--format pt", "tflite, onnx, savedmodel")
    assert result.stderr.count("\n") == 1 and "KeyError" not in result.output
    # Also with a model and an output given: refused before any work, nothing written.
    result = cli("export", "--format", "pt", "--model", str(BUNDLED), "--out", str(tmp_path / "m.pt"))
    assert_one_line_error(result, "unknown export format")
    assert not list(tmp_path.iterdir())


@pytest.fixture
def cut_model(tmp_path) -> Path:
    """The bundled model as an interrupted download leaves it: the first 40% of the bytes."""
    cut = tmp_path / "cut.keras"
    data = BUNDLED.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 5])
    return cut


@pytest.fixture
def damaged_model(tmp_path) -> Path:
    """A complete zip whose weights were damaged on the way (a flipped run of bytes inside model.weights.h5)."""
    damaged = tmp_path / "damaged.keras"
    data = bytearray(BUNDLED.read_bytes())
    with zipfile.ZipFile(BUNDLED) as archive:
        info = archive.getinfo(next(n for n in archive.namelist() if n.endswith(".h5")))
    middle = info.header_offset + 100 + info.compress_size // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    damaged.write_bytes(bytes(data))
    return damaged


def assert_bad_model_line(result, path: Path, problem: str) -> None:
    assert_one_line_error(result, "not a valid or complete Keras model file", problem, str(path),
                          "copy or download it again")
    assert "File not found" not in result.output
    assert len(result.stderr.splitlines()) == 1


def test_cut_off_keras_file_through_every_command(cut_model, dataset_copy, tmp_path):
    data = dataset_copy("webcam-a", limit=2, negatives=1)
    image = sorted((data / "images").glob("*.jpg"))[0]
    commands = {
        "evaluate": ["evaluate", "--data", str(data), "--out", str(tmp_path / "reports")],
        "predict": ["predict", str(image), "--out", str(tmp_path / "predictions")],
        "export": ["export", "--format", "tflite", "--out", str(tmp_path / "m.tflite")],
        "live": ["live", "--camera", str(image), "--no-show"],
    }
    for name, args in commands.items():
        result = cli(*args, "--model", str(cut_model))
        assert_bad_model_line(result, cut_model, "not a complete zip archive")
    assert not (tmp_path / "m.tflite").exists() and not (tmp_path / "predictions").exists()


def test_damaged_keras_file_is_named(damaged_model, dataset_copy, tmp_path):
    data = dataset_copy("webcam-a", limit=2, negatives=1)
    result = cli("evaluate", "--data", str(data), "--out", str(tmp_path / "reports"), "--model", str(damaged_model))
    assert_bad_model_line(result, damaged_model, "model.weights.h5 inside it is damaged")


def test_archive_check_passes_real_models_and_other_formats(tmp_path):
    assert check_keras_archive(BUNDLED) == BUNDLED
    assert check_keras_archive(tmp_path / "missing.keras") == tmp_path / "missing.keras"  # the loader says "not found"
    tflite = BUNDLED.with_name(config.BUNDLED_FAST_MODEL_NAME)
    assert check_keras_archive(tflite) == tflite  # not a .keras file: its own loader checks it
    no_config = tmp_path / "weights-only.keras"
    with zipfile.ZipFile(no_config, "w") as archive:
        archive.writestr("model.weights.h5", b"not a model")
    with pytest.raises(FacetrackerError, match="it has no config.json"):
        check_keras_archive(no_config)
