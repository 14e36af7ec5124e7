"""Which frame resize should inference use? Speed and accuracy of config.RESIZE_INTERPOLATION's modes.

    .venv/bin/python benchmarks/resize_modes.py [--model PATH] [--runtime tflite|onnx|keras]

Training letterboxes each image with tf.image.resize(method="area"); cv2.INTER_AREA reproduces it exactly but is
slow on a 640x480 frame. For each mode ("area", "fast-area", "linear") this prints the resize time alone (each
frame to its letterboxed size inside the model input, as Detector does), the whole Detector.detect() time per
frame (median over every real image), and evaluate_folder's AP@0.5 / mean IoU on each real data set, with the
bundled model (exported to TFLite in a temporary folder by default).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from shared_data import DATASETS, require_datasets  # noqa: E402  (benchmarks/shared_data.py)


def median_ms(fn, items, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        for item in items:
            start = time.perf_counter()
            fn(item)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def number(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"  # None: no face found at the threshold


def letterbox_resizer(detector, mode: str):
    """frame -> the frame resized to its letterboxed size in the model input, as Detector.preprocess does (one
    resizer and output buffer per frame size, cached like Detector's; the median hides the first call)."""
    import numpy as np

    from facetracker.inference import make_resizer

    by_size = {}

    def resize(frame):
        key = frame.shape[:2]
        if key not in by_size:
            width, height = detector.letterbox(frame).size
            by_size[key] = (make_resizer(mode, (width, height)), np.empty((height, width, 3), np.uint8))
        function, out = by_size[key]
        function(frame, out)

    return resize


def main() -> None:
    import cv2

    from facetracker import config
    from facetracker.evaluate import evaluate_folder
    from facetracker.export import export_model
    from facetracker.inference import RESIZE_MODES, Detector, bundled_model_path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=bundled_model_path())
    parser.add_argument("--runtime", choices=("tflite", "onnx", "keras"), default="tflite")
    args = parser.parse_args()
    require_datasets()

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if args.runtime != "keras":
            model = export_model(args.model, args.runtime, out=Path(tmp) / f"model.{args.runtime}").path
        names = sorted(p.name for p in DATASETS.iterdir() if (p / "images").is_dir())
        frames = [cv2.imread(str(p)) for name in names for p in sorted((DATASETS / name / "images").glob("*.jpg"))]
        print(f"model {args.model} as {args.runtime}; {len(frames)} real frames from {', '.join(names)}; "
              f"load average {os.getloadavg()[0]:.2f}")
        print("| mode | resize ms | detect() ms | " + " | ".join(f"{n} AP@0.5 / IoU" for n in names) + " |")
        print("|---|---|---|" + "---|" * len(names))
        for mode in RESIZE_MODES:
            config.RESIZE_INTERPOLATION = mode
            detector = Detector.load(model)
            resize_ms = median_ms(letterbox_resizer(detector, mode), frames)
            for frame in frames[:20]:
                detector.detect(frame)  # warm-up
            detect_ms = median_ms(detector.detect, frames, repeat=1)
            scores = []
            for name in names:
                report = evaluate_folder(detector, DATASETS / name / "images", DATASETS / name / "labels")
                scores.append(f"{number(report['ap50'])} / {number(report['mean_iou'])}")
            print(f"| {mode} | {resize_ms:.3f} | {detect_ms:.3f} | " + " | ".join(scores) + " |")
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
