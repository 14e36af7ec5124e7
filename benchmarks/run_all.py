"""`make bench`: every speed benchmark in turn, then the quick quality ones of the bundled model (tracking on a
composed two-person clip, composed group photos, clear frontal clips), each in its own process, output straight to
the terminal.

    .venv/bin/python benchmarks/run_all.py [--skip NAME ...]

The data pipeline benchmark needs an augmented folder: the augment benchmark keeps the one it builds
(in a temporary folder) and the pipeline benchmark reads it. Model quality (leave-one-person-out training, over an
hour) is separate: `make quality`. Copy the figures into docs/benchmarks.md with the command that printed them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def benchmarks(work: Path) -> dict[str, list[str]]:
    return {
        "augment": ["augment_speed.py", "--keep", str(work / "augment")],
        "pipeline": ["pipeline_speed.py", "--data", str(work / "augment" / "aug_data_w1")],
        "train": ["train_speed.py"],
        "live": ["live_fps.py"],
        "tracking": ["tracking_quality.py"],
        "group": ["group_photos.py"],
        "frontal": ["frontal_clips.py"],
        "resize": ["resize_modes.py"],
        "export": ["export_fidelity.py"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip", nargs="*", default=[], choices=list(benchmarks(Path())), help="benchmarks to leave out")
    args = parser.parse_args()
    failed = []
    with tempfile.TemporaryDirectory(prefix="facetracker-bench-") as work:
        for name, command in benchmarks(Path(work)).items():
            if name in args.skip:
                continue
            print(f"\n=== {name}: {' '.join(['benchmarks/' + command[0], *command[1:]])}", flush=True)
            started = time.perf_counter()
            result = subprocess.run([sys.executable, str(HERE / command[0]), *command[1:]])
            print(f"=== {name}: {'ok' if result.returncode == 0 else f'FAILED ({result.returncode})'} "
                  f"in {time.perf_counter() - started:.0f} s", flush=True)
            if result.returncode:
                failed.append(name)
    if failed:
        sys.exit(f"benchmarks failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
