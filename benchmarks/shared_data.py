"""Where the benchmarks find the shared labelme data sets: ../shared/datasets beside the repository, or the folder
named by $FACETRACKER_DATASETS."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("FACETRACKER_DATASETS", REPO.parent / "shared" / "datasets"))


def require_datasets(*names: str) -> Path:
    """DATASETS, after checking it (and each named set) is there; otherwise exit with one line saying what to do."""
    if not DATASETS.is_dir():
        sys.exit(f"error: no shared data sets at {DATASETS}: put shared/datasets beside the repository, or set "
                 "FACETRACKER_DATASETS to the folder")
    missing = [name for name in names if not (DATASETS / name / "images").is_dir()]
    if missing:
        sys.exit(f"error: data set {', '.join(missing)} not found in {DATASETS}: check the name, or set "
                 "FACETRACKER_DATASETS to the folder that holds it")
    return DATASETS
