"""Speed of `facetracker split` + `facetracker augment` on all 338 real images of the three data sets.

    .venv/bin/python benchmarks/augment_speed.py [--variants 60] [--workers 1 0] [--keep DIR]

Copies webcam-a, webcam-b and webcam-c (images + labelme labels) into one temporary data/ folder, splits it
(seed 42), then augments it once per --workers value (0 = all cores) with the default settings
(256x256 outputs, default background crops per labelled image), each run into a fresh output folder.
Prints source images/s and written files/s per run. The load average before and after is printed because
other processes on the machine slow everything down.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shared_data import DATASETS, require_datasets  # noqa: E402  (benchmarks/shared_data.py)
NAMES = ("webcam-a", "webcam-b", "webcam-c")


def copy_all(dest: Path) -> int:
    """All images and labels of the three data sets into dest/images + dest/labels (uuid names never clash)."""
    for folder in ("images", "labels"):
        (dest / folder).mkdir(parents=True, exist_ok=True)
    count = 0
    for name in NAMES:
        for image in sorted((DATASETS / name / "images").glob("*.jpg")):
            shutil.copy2(image, dest / "images" / image.name)
            label = DATASETS / name / "labels" / f"{image.stem}.json"
            if label.exists():
                shutil.copy2(label, dest / "labels" / label.name)
            count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=60)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 0], help="worker counts to run (0 = all cores)")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary folder)")
    args = parser.parse_args()
    require_datasets()

    from rich.console import Console

    from facetracker.augment import augment_dataset
    from facetracker.split import split_dataset

    root = args.keep or Path(tempfile.mkdtemp(prefix="facetracker-augment-bench-"))
    quiet = Console(file=io.StringIO())
    try:
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cores")
        count = copy_all(root / "data")
        started = time.perf_counter()
        split_dataset(root / "data", console=quiet)
        print(f"split: {count} images in {time.perf_counter() - started:.2f} s")
        rows = []
        for workers in args.workers:
            workers = workers or os.cpu_count() or 1
            out = root / f"aug_data_w{workers}"
            summary = augment_dataset(root / "data", out, variants=args.variants, workers=workers, force=True,
                                      console=quiet)
            files = summary.total("variants") + summary.total("background") + summary.total("pasted")
            rows.append((workers, summary.images, files, summary.seconds))
            print(summary.line())
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print("\n| workers | source images | files written | seconds | source images/s | files/s |")
        print("|---|---|---|---|---|---|")
        for workers, images, files, seconds in rows:
            print(f"| {workers} | {images} | {files} | {seconds:.1f} | {images / seconds:.2f} "
                  f"| {files / seconds:.0f} |")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
