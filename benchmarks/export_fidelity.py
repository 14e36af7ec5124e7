"""How close each export is to the Keras model, how big and how fast, on every real image.

    .venv/bin/python benchmarks/export_fidelity.py [--model PATH]

Exports the model (default: the bundled one) with facetracker.export in every format and quantisation mode into a
temporary folder, then compares each runtime's score and box with the Keras model on all real images of
../shared/datasets (largest and mean absolute difference; box in fractions of the image) and times
Detector.detect() per frame (median, with the configured resize and thread count).
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
DATASETS = Path(os.environ.get("FACETRACKER_DATASETS", REPO.parent / "shared" / "datasets"))
EXPORTS = [("tflite", "none"), ("onnx", "none"), ("savedmodel", "none"), ("tflite", "dynamic"), ("tflite", "int8")]


def detect_ms(detector, frames) -> float:
    for frame in frames[:20]:
        detector.detect(frame)  # warm-up
    times = []
    for frame in frames:
        start = time.perf_counter()
        detector.detect(frame)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    import cv2
    import numpy as np

    from facetracker import config
    from facetracker.export import export_model
    from facetracker.inference import Detector, bundled_model_path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=bundled_model_path())
    args = parser.parse_args()

    paths = sorted(p for d in DATASETS.iterdir() if (d / "images").is_dir() for p in (d / "images").glob("*.jpg"))
    frames = [cv2.imread(str(p)) for p in paths]
    keras = Detector.load(args.model)
    inputs = keras.prepare(frames)
    want_scores, want_boxes = keras.raw(inputs)
    print(f"model {args.model}, {len(frames)} real frames, resize {config.RESIZE_INTERPOLATION}, "
          f"{config.INFERENCE_THREADS} thread(s); load average {os.getloadavg()[0]:.2f}")
    print("| export | score, largest | box, largest / mean | tolerance (score, box) | size MB | detect() ms |")
    print("|---|---|---|---|---|---|")
    print(f"| keras (.keras) | - | - | - | {args.model.stat().st_size / 1e6:.1f} | {detect_ms(keras, frames):.2f} |")
    with tempfile.TemporaryDirectory() as tmp:
        data = DATASETS / "webcam-b"  # int8 calibration and export's own check
        for fmt, quantize in EXPORTS:
            out = Path(tmp) / (f"m-{quantize}.{fmt}" if fmt != "savedmodel" else "m_savedmodel")
            result = export_model(args.model, fmt, quantize, data=data, out=out)
            exported = Detector.load(result.path)
            scores, boxes = exported.raw(inputs)
            box_diff = np.abs(boxes - want_boxes)
            tol = config.EXPORT_TOLERANCE[quantize]
            print(f"| {fmt} {quantize} | {np.abs(scores - want_scores).max():.1e} | {box_diff.max():.1e} / "
                  f"{box_diff.mean():.1e} | {tol[0]:g}, {tol[1]:g} | {result.size_bytes / 1e6:.1f} | "
                  f"{detect_ms(exported, frames):.2f} |")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
