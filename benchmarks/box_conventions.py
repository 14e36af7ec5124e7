"""Is what keeps some held-out sets under issue 9's targets the labeller's way of drawing boxes?

    .venv/bin/python benchmarks/box_conventions.py --results benchmarks/results/quality/2-folds-blazeface-192-s29

Each fold model of a benchmarks/quality.py run detects the sets its fold held out, as quality.py scores them (the
detections are kept in RESULTS/box-conventions.json, so a second run only redoes the arithmetic). Then every
detected box is redrawn by one box convention: its width and height scaled by (sx, sy) about its centre, and its
centre moved down by dy of its height. The conventions form a grid. Per held-out set, AP@0.5 and the mean IoU at
the threshold, as quality.py reports them:

- as the model draws its boxes;
- with the set's own best convention: the one that comes nearest to both targets (AP@0.5 >= 0.95, mean IoU >=
  0.75) on that set, or of those meeting both the best AP plus IoU, chosen with the set's own labels. It is the
  upper bound of what knowing how this labeller draws gives; a user's own labels teach it in fine-tuning
  (`facetracker train`);
- with the one convention that meets both targets on the most sets at once: the best any single model can do
  by redrawing its boxes alone.

If the sets under the targets meet them with their own convention, and no single convention meets them on every
set, then what is missing on those sets is not finding the faces but knowing how their labeller drew the boxes,
which images alone do not tell.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

from quality import fmt, samples_of  # benchmarks/quality.py (puts this checkout's package on sys.path)

from facetracker import config  # noqa: E402
from facetracker.boxes import as_boxes  # noqa: E402
from facetracker.files import file_digest, write_json_atomic  # noqa: E402

AP_TARGET, IOU_TARGET = 0.95, 0.75  # issue 9, on every held-out set
SCALES = np.round(np.arange(0.50, 1.201, 0.05), 2)  # width and height multipliers
SHIFTS = np.round(np.arange(-0.20, 0.201, 0.05), 2) + 0.0  # centre moved down, in box heights (+ 0.0: no -0.0)
IDENTITY = (1.0, 1.0, 0.0)
CACHE_NAME = "box-conventions.json"


def held_out_detections(results_dir: Path) -> dict[str, dict]:
    """{set: {"fold", "digest", "scores", "boxes"}}: every held-out set detected by the model of the fold that held
    it out, kept in RESULTS/box-conventions.json under the fold model's digest."""
    from facetracker.evaluate import detect_samples
    from facetracker.inference import Detector

    folds = json.loads((results_dir / "results.json").read_text())["folds"]
    cache_path = results_dir / CACHE_NAME
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    for k, fold in folds.items():
        model_path = results_dir / fold["model"]
        if not model_path.is_file():
            sys.exit(f"error: {model_path} is missing: run benchmarks/quality.py into {results_dir} to train fold {k}")
        digest = file_digest(model_path)
        missing = [n for n in fold["held_out"] if cache.get(n, {}).get("digest") != digest]
        if not missing:
            continue
        detector = Detector.load(model_path)
        for name in missing:
            print(f"fold {k}: detecting {name} ...", flush=True)
            scores, boxes, _ = detect_samples(detector, samples_of(name))
            cache[name] = {"fold": k, "digest": digest, "scores": scores, "boxes": boxes}
            write_json_atomic(cache_path, cache)  # after every set: a stopped run keeps what it detected
    return {n: cache[n] for fold in folds.values() for n in fold["held_out"]}


def redrawn(boxes: np.ndarray, convention: tuple[float, float, float]) -> np.ndarray:
    """(N, 4) [x1, y1, x2, y2] boxes scaled (sx, sy) about their centres, the centres moved down dy heights."""
    sx, sy, dy = convention
    size = boxes[:, 2:] - boxes[:, :2]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2 + np.stack([np.zeros(len(boxes)), dy * size[:, 1]], axis=1)
    half = size * np.array([sx, sy]) / 2
    return np.concatenate([centre - half, centre + half], axis=1)


def scored(truths: list, scores: list, boxes: list[np.ndarray], convention) -> tuple[float, float]:
    """(AP@0.5, mean IoU at the threshold) of one set's detections ((N, 4) arrays per image) redrawn by
    `convention`."""
    from facetracker.evaluate import metrics

    report = metrics(truths, scores, [redrawn(b, convention) for b in boxes], config.THRESHOLD)
    return report["ap50"] or 0.0, report["mean_iou"] or 0.0


def margin(ap: float, iou: float) -> float:
    """How far a set is past both targets (negative: short of the nearer-missed one)."""
    return min(ap - AP_TARGET, iou - IOU_TARGET)


def own_rank(ap: float, iou: float) -> tuple[float, float]:
    """A set's own convention: the one nearest to meeting both targets; among those meeting both, the best AP@0.5
    plus IoU (not the largest margin, which would give up IoU for a thousandth of AP)."""
    return min(margin(ap, iou), 0.0), ap + iou


def convention_grid() -> list[tuple[float, float, float]]:
    return [(float(sx), float(sy), float(dy)) for sx, sy, dy in itertools.product(SCALES, SCALES, SHIFTS)]


def score_grid(detections: dict[str, dict]) -> dict[str, dict[tuple, tuple[float, float]]]:
    """{set: {convention: (AP@0.5, mean IoU)}} over the whole grid."""
    grid = convention_grid()
    table = {}
    for name, found in detections.items():
        truths = [s.boxes for s in samples_of(name)]
        boxes = [as_boxes(b) for b in found["boxes"]]  # once a set, not once a convention
        table[name] = {c: scored(truths, found["scores"], boxes, c) for c in grid}
        print(f"  {name}: scored {len(grid)} conventions", flush=True)
    return table


def best_shared_convention(table: dict[str, dict]) -> tuple:
    """The convention meeting both targets on the most sets; ties go to the larger mean margin."""
    def rank(convention):
        margins = [margin(*table[n][convention]) for n in table]
        return sum(m >= 0 for m in margins), float(np.mean(margins))
    return max(next(iter(table.values())), key=rank)


def convention_text(convention) -> str:
    sx, sy, dy = convention
    return f"{sx:.2f} x {sy:.2f}, {dy:+.2f}"


def report(table: dict[str, dict]) -> str:
    shared = best_shared_convention(table)
    own = {n: max(scores, key=lambda c: own_rank(*scores[c])) for n, scores in table.items()}
    rows = ["| held-out set | as the model draws: AP@0.5 / IoU | own convention (w x h, shift) | with it | "
            f"shared convention {convention_text(shared)} |", "|---|---:|---|---:|---:|"]
    met = {"model": 0, "own": 0, "shared": 0}
    for name in sorted(table):
        figures = {"model": table[name][IDENTITY], "own": table[name][own[name]], "shared": table[name][shared]}
        for key, value in figures.items():
            met[key] += margin(*value) >= 0
        cells = {key: f"{fmt(ap)} / {fmt(iou)}" + ("" if margin(ap, iou) >= 0 else " *")
                 for key, (ap, iou) in figures.items()}
        rows.append(f"| {name} | {cells['model']} | {convention_text(own[name])} | {cells['own']} | "
                    f"{cells['shared']} |")
    rows.append(f"| sets meeting both targets | {met['model']} of {len(table)} | | {met['own']} of {len(table)} | "
                f"{met['shared']} of {len(table)} |")
    return "\n".join(rows) + f"\n\n`*`: under AP@0.5 {AP_TARGET} or mean IoU {IOU_TARGET}. Grid: width and height " \
        f"x{SCALES[0]:.2f}-{SCALES[-1]:.2f}, centre shift {SHIFTS[0]:+.2f} to {SHIFTS[-1]:+.2f} box heights.\n"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, required=True,
                        help="a benchmarks/quality.py run folder (results.json and its fold-K.keras files)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if not (args.results / "results.json").is_file():
        sys.exit(f"error: no results.json in {args.results}: give the folder of a benchmarks/quality.py run")
    print(report(score_grid(held_out_detections(args.results))))


if __name__ == "__main__":
    main()
