"""Shared fixtures: copies of the real labelme data sets in ../shared/datasets (never modified in place)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("FACETRACKER_DATASETS", REPO.parent / "shared" / "datasets"))
DATASET_NAMES = ("webcam-a", "webcam-b", "webcam-c")


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
