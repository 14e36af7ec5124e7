"""MediaPipe BlazeFace on a list of images, for benchmarks/quality.py. Runs INSIDE .venv-mediapipe, not .venv.

    .venv-mediapipe/bin/python benchmarks/blazeface.py --images paths.txt --out detections.jsonl

`mediapipe==0.10.21` ships the BlazeFace models inside its wheel (no download at run time) but pins a protobuf
that TensorFlow 2.21 cannot use, so it lives in its own virtualenv (benchmarks/setup_mediapipe_venv.sh) and
this script imports nothing from facetracker. It reads one image path per line and writes one JSON line per
image, in the same order:

    {"image": "<path>", "full-range": [{"score": .., "box": [x1, y1, x2, y2], "face_box": [...]}, ...],
     "short-range": [...]}

`full-range` is model_selection=1 (faces up to ~5 m), `short-range` model_selection=0 (faces within ~2 m, the
selfie model). `face_box` is BlazeFace's own tight box in pixels; `box` is that box converted to the head-sized
boxes the labelme data sets hold (scaled by --scale about its centre, moved up by --shift-up of its height),
clipped to the image. Detections are best first; an unreadable image gets "error" instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

MODELS = {"full-range": 1, "short-range": 0}


def head_box(xmin: float, ymin: float, width: float, height: float, image_w: int, image_h: int,
             scale: float, shift_up: float) -> list[float]:
    """A relative tight face box -> the head-sized box in pixels: scaled about its centre, moved up, clipped."""
    w, h = width * image_w, height * image_h
    cx, cy = (xmin + width / 2) * image_w, (ymin + height / 2) * image_h - shift_up * h
    return clipped([cx - w * scale / 2, cy - h * scale / 2, cx + w * scale / 2, cy + h * scale / 2], image_w, image_h)


def clipped(box: list[float], image_w: int, image_h: int) -> list[float]:
    x1, y1, x2, y2 = box
    return [round(min(max(x1, 0.0), image_w), 1), round(min(max(y1, 0.0), image_h), 1),
            round(min(max(x2, 0.0), image_w), 1), round(min(max(y2, 0.0), image_h), 1)]


def detections(detector, rgb, scale: float, shift_up: float) -> list[dict]:
    image_h, image_w = rgb.shape[:2]
    found = []
    for detection in detector.process(rgb).detections or []:
        rel = detection.location_data.relative_bounding_box
        tight = [rel.xmin * image_w, rel.ymin * image_h, (rel.xmin + rel.width) * image_w,
                 (rel.ymin + rel.height) * image_h]
        found.append({"score": round(float(detection.score[0]), 4),
                      "box": head_box(rel.xmin, rel.ymin, rel.width, rel.height, image_w, image_h, scale, shift_up),
                      "face_box": clipped(tight, image_w, image_h)})
    return sorted(found, key=lambda d: -d["score"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True, help="text file, one image path per line")
    parser.add_argument("--out", type=Path, required=True, help="JSONL written here (atomically)")
    parser.add_argument("--min-score", type=float, default=0.05, help="lowest detection score kept")
    parser.add_argument("--scale", type=float, default=1.4, help="head box = tight box times this about its centre")
    parser.add_argument("--shift-up", type=float, default=0.2, help="...moved up this share of its height")
    args = parser.parse_args()

    import cv2
    import mediapipe as mp

    paths = [line.strip() for line in args.images.read_text().splitlines() if line.strip()]
    solution = mp.solutions.face_detection
    detectors = {name: solution.FaceDetection(model_selection=selection, min_detection_confidence=args.min_score)
                 for name, selection in MODELS.items()}
    tmp = args.out.with_name(f".{args.out.name}.partial")
    started = time.perf_counter()
    with open(tmp, "w") as out:
        for index, path in enumerate(paths):
            image = cv2.imread(path)
            row = {"image": path}
            if image is None:
                row["error"] = "unreadable image"
            else:
                rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
                row.update({name: detections(d, rgb, args.scale, args.shift_up) for name, d in detectors.items()})
            out.write(json.dumps(row) + "\n")
            if (index + 1) % 200 == 0:
                print(f"blazeface: {index + 1}/{len(paths)} images, {time.perf_counter() - started:.0f} s",
                      file=sys.stderr, flush=True)
    os.replace(tmp, args.out)
    for detector in detectors.values():
        detector.close()


if __name__ == "__main__":
    main()
