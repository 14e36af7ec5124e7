"""Is a labeller's box convention a fixed offset? A box adapter fitted on a person's first labelled images, tried on
the pre-labels of the rest.

    .venv/bin/python benchmarks/box_adapter.py --model PATH --sets webcam-c webcam-d ...   # people it never saw

For each set, every image is seen as `label --prelabel` sees it (facetracker.inference.still_faces). The first
--first images (name order) play the frames a user labelled by hand: each of their faces is paired with the model's
best-overlapping box at the pre-label threshold (IoU >= 0.3), and the adapter is the median over the pairs of the
width and height ratios (human / model) and of the centre shift in model-box units. On the other images, the share
of human faces with a pre-label box within IoU 0.6 (prelabel_quality.py's measure) is reported without and with the
adapter applied to every box. A large gain would mean the misses are the labeller's convention, which a few labels
could correct without training; a small one, that they are per-image box errors, which only fine-tuning fixes.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facetracker import config  # noqa: E402
from prelabel_quality import human_samples, matched_faces  # noqa: E402  (benchmarks/prelabel_quality.py, beside this)
from shared_data import require_datasets  # noqa: E402  (benchmarks/shared_data.py)

MATCH_IOU = config.PRELABEL_MATCH_IOU  # a pre-label is right within this IoU of the human box (prelabel_quality.py)
PAIR_IOU = 0.3  # a model box is paired with a human box for fitting from this IoU


def fit_adapter(pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """(log width ratio, log height ratio, centre x shift, centre y shift) from (model box, human box) pairs; the
    shifts are in model-box widths and heights. Medians: one badly drawn label does not move it."""
    model, human = (np.array(side, np.float64).reshape(-1, 4) for side in zip(*pairs))
    size_m, size_h = model[:, 2:] - model[:, :2], human[:, 2:] - human[:, :2]
    centre_m, centre_h = (model[:, :2] + model[:, 2:]) / 2, (human[:, :2] + human[:, 2:]) / 2
    return np.concatenate([np.median(np.log(size_h / size_m), axis=0), np.median((centre_h - centre_m) / size_m, axis=0)])


def adapt(boxes: np.ndarray, adapter: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    size = boxes[:, 2:] - boxes[:, :2]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2 + adapter[2:] * size
    size = size * np.exp(adapter[:2])
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--sets", nargs="+", required=True)
    parser.add_argument("--first", type=int, default=20, help="images whose labels fit the adapter")
    parser.add_argument("--threshold", type=float, default=config.PRELABEL_THRESHOLD)
    args = parser.parse_args()
    datasets = require_datasets(*args.sets)

    from facetracker.evaluate import iou_matrix
    from facetracker.files import read_image
    from facetracker.inference import Detector, still_faces

    detector = Detector.load(args.model)
    print(f"`.venv/bin/python benchmarks/box_adapter.py --model {args.model} --sets {' '.join(args.sets)} --first "
          f"{args.first}` (threshold {args.threshold:g}, right within IoU {MATCH_IOU})\n")
    print("| set | pairs | adapter: width x, height x, centre shift x, y | faces right | with the adapter |")
    print("|---|---:|---|---:|---:|")
    totals = np.zeros(3, int)  # faces, right, right with the adapter
    for name in args.sets:
        samples = sorted(human_samples(datasets / name)[1], key=lambda s: s.image.name)
        found = [np.array([d.box for d in still_faces(detector, read_image(s.image), args.threshold)]).reshape(-1, 4)
                 for s in samples]
        pairs = []
        for sample, boxes in zip(samples[:args.first], found[:args.first]):
            if not len(boxes):
                continue
            for face in sample.boxes:
                overlaps = iou_matrix([face], boxes)[0]
                if overlaps.max() >= PAIR_IOU:
                    pairs.append((boxes[overlaps.argmax()], np.asarray(face, np.float64)))
        adapter = fit_adapter(pairs) if pairs else np.zeros(4)
        counts = np.zeros(3, int)
        for sample, boxes in zip(samples[args.first:], found[args.first:]):
            counts += [len(sample.boxes), matched_faces(sample.boxes, boxes, MATCH_IOU),
                       matched_faces(sample.boxes, adapt(boxes, adapter), MATCH_IOU)]
        totals += counts
        ratio = np.exp(adapter[:2])
        print(f"| {name} | {len(pairs)} | {ratio[0]:.2f}, {ratio[1]:.2f}, {adapter[2]:+.2f}, {adapter[3]:+.2f} | "
              f"{counts[1] / max(counts[0], 1):.1%} ({counts[1]}/{counts[0]}) | "
              f"{counts[2] / max(counts[0], 1):.1%} ({counts[2]}/{counts[0]}) |")
    print(f"| **all** | | | **{totals[1] / max(totals[0], 1):.1%}** ({totals[1]}/{totals[0]}) | "
          f"**{totals[2] / max(totals[0], 1):.1%}** ({totals[2]}/{totals[0]}) |")


if __name__ == "__main__":
    main()
