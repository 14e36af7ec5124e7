"""Shared fixtures: copies of the real labelme data sets in ../shared/datasets (never modified in place)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import facetracker  # noqa: F401  (before any test module imports TensorFlow: sets TF_ENABLE_ONEDNN_OPTS)

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("FACETRACKER_DATASETS", REPO.parent / "shared" / "datasets"))
DATASET_NAMES = ("webcam-a", "webcam-b", "webcam-c")


@pytest.fixture(scope="session", autouse=True)
def own_cache_folder(tmp_path_factory):
    """`live` keeps TFLite exports of .keras models in the user's cache folder: the tests get one of their own."""
    folder = tmp_path_factory.mktemp("xdg-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(folder))
        yield folder


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    if not (DATASETS / "webcam-a" / "images").is_dir():
        pytest.fail(f"real data sets not found at {DATASETS}: clone beside ../shared or set FACETRACKER_DATASETS")
    return DATASETS


def copy_dataset(name: str, dest: Path, limit: int | None = None, negatives: int | None = None) -> Path:
    """Copy images/ and labels/ of one shared data set into dest/ (the data/ layout).

    limit keeps the first `limit` labelled images by name; negatives keeps that many unlabelled ones."""
    src = DATASETS / name
    images = sorted((src / "images").glob("*.jpg"))
    labelled = [p for p in images if (src / "labels" / f"{p.stem}.json").exists()]
    unlabelled = [p for p in images if p not in labelled]
    chosen = labelled[:limit] if limit is not None else labelled
    chosen += unlabelled[:negatives] if negatives is not None else unlabelled
    (dest / "images").mkdir(parents=True, exist_ok=True)
    (dest / "labels").mkdir(parents=True, exist_ok=True)
    for image in chosen:
        shutil.copy2(image, dest / "images" / image.name)
        label = src / "labels" / f"{image.stem}.json"
        if label.exists():
            shutil.copy2(label, dest / "labels" / label.name)
    return dest


@pytest.fixture
def dataset_copy(tmp_path, datasets_dir):
    """Factory: dataset_copy("webcam-b", limit=10, negatives=2) -> a data/ folder in tmp_path."""

    def make(name: str, limit: int | None = None, negatives: int | None = None, dest: Path | None = None) -> Path:
        return copy_dataset(name, dest or tmp_path / name, limit=limit, negatives=negatives)

    return make


def write_video(frames_from: list[Path], path: Path, fps: float = 10.0, size: tuple[int, int] | None = None,
                repeat: int = 1) -> Path:
    """Write a real MJPG .avi with OpenCV from real image files (each shown `repeat` frames)."""
    import cv2

    first = cv2.imread(str(frames_from[0]))
    width, height = size or (first.shape[1], first.shape[0])
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened(), f"cv2.VideoWriter could not open {path}"
    for image_path in frames_from:
        frame = cv2.resize(cv2.imread(str(image_path)), (width, height))
        for _ in range(repeat):
            writer.write(frame)
    writer.release()
    return path


@pytest.fixture
def video_of(tmp_path, datasets_dir):
    """Factory: video_of("webcam-a", frames=20) -> path of an .avi made from that data set's real images."""

    def make(name: str = "webcam-a", frames: int = 20, fps: float = 10.0, **kwargs) -> Path:
        images = sorted((datasets_dir / name / "images").glob("*.jpg"))[:frames]
        return write_video(images, tmp_path / f"{name}-{frames}.avi", fps=fps, **kwargs)

    return make


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory, datasets_dir) -> Path:
    """A small FaceTracker (.keras, 64 px) really trained for a few hundred steps on real webcam-a images and their
    mirror images (~10 s, once).

    Its outputs differ between images, unlike an untrained one; see tests/tiny_model.py."""
    from tiny_model import train_tiny_model

    return train_tiny_model(datasets_dir / "webcam-a", tmp_path_factory.mktemp("tiny-model") / "tiny.keras")


@pytest.fixture(scope="session")
def tiny_exports(tmp_path_factory, trained_model):
    """Factory: tiny_exports("tflite", "none") -> ExportResult of `trained_model`, exported once per session."""
    from tiny_model import ExportCache

    return ExportCache(trained_model, tmp_path_factory.mktemp("tiny-exports"), datasets_dir=DATASETS)
