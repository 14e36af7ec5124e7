"""How close each export is to the Keras model, how big and how fast, on every real image.

    .venv/bin/python benchmarks/export_fidelity.py [--model PATH] [--sets webcam-a,webcam-b]

Exports the model (default: the bundled one) with facetracker.export in every format and quantisation mode into a
temporary folder, then compares each runtime's faces with the Keras model's on all real images of
../shared/datasets exactly as `facetracker export` checks them (facetracker.export.compare_outputs: the best score
of every image, and the confident faces paired by IoU; largest score difference, largest and mean box difference
in fractions of the model input) and times Detector.detect() per frame (median, with the configured resize and
thread count).
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
EXPORTS = [("tflite", "none"), ("onnx", "none"), ("savedmodel", "none"), ("tflite", "dynamic"), ("tflite", "int8")]
CHUNK = 64  # images per model call: every real image at once would not fit in RAM next to a training run
TIMED_FRAMES = 200


def detect_ms(detector, frames) -> float:
    for frame in frames[:20]:
        detector.detect(frame)  # warm-up
    times = []
    for frame in frames:
        start = time.perf_counter()
        detector.detect(frame)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def model_inputs(detector, paths) -> "np.ndarray":
    """Every image letterboxed for the model, kept as uint8 (the pixels are whole numbers): 4x less RAM."""
    import cv2
    import numpy as np

    chunks = [detector.prepare([cv2.imread(str(p)) for p in paths[i:i + CHUNK]]) for i in range(0, len(paths), CHUNK)]
    return np.concatenate(chunks).astype(np.uint8)


def raw_outputs(detector, inputs):
    """(scores (N, K), boxes (N, K, 4)) over all inputs, CHUNK images per call."""
    import numpy as np

    parts = [detector.raw(inputs[i:i + CHUNK].astype(np.float32)) for i in range(0, len(inputs), CHUNK)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def export_unchecked(model, fmt, quantize, data, out):
    """export_model with its tolerance lifted: this benchmark measures the differences the tolerance is set from,
    so an export beyond it must still be written and measured."""
    from facetracker import config
    from facetracker.export import export_model

    saved = dict(config.EXPORT_TOLERANCE)
    config.EXPORT_TOLERANCE[quantize] = (float("inf"), float("inf"))
    try:
        return export_model(model, fmt, quantize, data=data, out=out)
    finally:
        config.EXPORT_TOLERANCE.update(saved)


def main() -> None:
    import cv2

    from facetracker import config
    from facetracker.export import compare_outputs
    from facetracker.inference import Detector, bundled_model_path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=bundled_model_path())
    parser.add_argument("--sets", default=None, help="comma-separated data set names (default: all)")
    args = parser.parse_args()
    require_datasets()

    names = args.sets.split(",") if args.sets else sorted(d.name for d in DATASETS.iterdir() if (d / "images").is_dir())
    paths = sorted(p for name in names for p in (DATASETS / name / "images").glob("*.jpg"))
    timed = [cv2.imread(str(p)) for p in paths[::max(1, len(paths) // TIMED_FRAMES)]]
    keras = Detector.load(args.model)
    inputs = model_inputs(keras, paths)
    want = raw_outputs(keras, inputs)
    print(f"model {args.model}, {len(paths)} real frames ({len(timed)} timed), resize {config.RESIZE_INTERPOLATION}, "
          f"{config.INFERENCE_THREADS} thread(s); load average {os.getloadavg()[0]:.2f}")
    print("| export | score, largest | box, largest / mean | faces compared | tolerance (score, box) | size MB "
          "| detect() ms |")
    print("|---|---|---|---|---|---|---|")
    print(f"| keras (.keras) | - | - | - | - | {args.model.stat().st_size / 1e6:.1f} | {detect_ms(keras, timed):.2f} |")
    with tempfile.TemporaryDirectory() as tmp:
        data = DATASETS / "webcam-b"  # int8 calibration and export's own check
        for fmt, quantize in EXPORTS:
            out = Path(tmp) / (f"m-{quantize}.{fmt}" if fmt != "savedmodel" else "m_savedmodel")
            result = export_unchecked(args.model, fmt, quantize, data, out)
            exported = Detector.load(result.path)
            fidelity = compare_outputs(*want, *raw_outputs(exported, inputs))
            tol = config.EXPORT_TOLERANCE[quantize]
            within = fidelity.score_diff <= tol[0] and fidelity.box_diff <= tol[1]
            print(f"| {fmt} {quantize} | {fidelity.score_diff:.1e} | {fidelity.box_diff:.1e} / "
                  f"{fidelity.box_mean_diff:.1e} | {fidelity.faces} | {tol[0]:g}, {tol[1]:g}"
                  f"{'' if within else ' EXCEEDED'} | "
                  f"{result.size_bytes / 1e6:.1f} | {detect_ms(exported, timed):.2f} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
