"""`facetracker evaluate`: how good a model is on a raw labelme folder (images/ + labels/).

A FaceTracker makes exactly one detection per image (a score and a box), so the usual detection metrics
simplify: every image contributes one ranked detection. It is a true positive when the image has a face and
the box overlaps it with IoU >= 0.5; anything else is a false positive (a negative image, or a face image whose
box misses, whose face is then also a false negative). AP@0.5 is the all-point interpolated area under the
precision-recall curve over that ranking (PASCAL VOC 2010+ / COCO style), recall counted over all faces.
At the chosen threshold we also report precision, recall, F1 and the false-positive rate on negatives.

The metric functions take plain arrays, so they are checked on hand-computed cases without any model.
"""

from __future__ import annotations

import io
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facetracker import config
from facetracker.errors import FacetrackerError
from facetracker.files import ensure_writable_dir, read_image, write_bytes_atomic, write_image_atomic, \
    write_json_atomic

REPORT_JSON = "evaluation.json"
CURVE_PNG = "precision_recall.png"
GRID_PNG = "predictions.png"


# ---------------------------------------------------------------- metrics on plain arrays


def box_iou(true_boxes, pred_boxes) -> np.ndarray:
    """IoU of row i of each (N, 4) [x1, y1, x2, y2] array, with the same keras-ops IoU the training metric uses."""
    from facetracker.losses import box_iou as keras_box_iou

    true_boxes = np.asarray(true_boxes, np.float32).reshape(-1, 4)
    pred_boxes = np.asarray(pred_boxes, np.float32).reshape(-1, 4)
    if len(true_boxes) == 0:
        return np.zeros(0, np.float32)
    return np.asarray(keras_box_iou(true_boxes, pred_boxes), np.float32)


@dataclass(frozen=True)
class Curve:
    precision: np.ndarray  # after each ranked detection
    recall: np.ndarray
    scores: np.ndarray  # the ranked scores (the threshold at each point)


def precision_recall_curve(scores, correct, faces: int) -> Curve:
    """Precision and recall after each detection, ranked by score (highest first; ties keep input order)."""
    scores = np.asarray(scores, np.float64)
    correct = np.asarray(correct, bool)
    order = np.argsort(-scores, kind="stable")
    true_pos = np.cumsum(correct[order])
    false_pos = np.cumsum(~correct[order])
    precision = true_pos / np.maximum(true_pos + false_pos, 1)
    recall = true_pos / faces if faces else np.zeros_like(precision)
    return Curve(precision=precision, recall=recall, scores=scores[order])


def average_precision(scores, correct, faces: int) -> float | None:
    """All-point interpolated AP: sum over recall steps of the best precision at that recall or beyond.

    `correct[i]` says whether detection i is a true positive; `faces` is the number of ground-truth faces
    (recall's denominator, so faces never detected correctly cap recall below 1). None when there are no faces."""
    if faces == 0:
        return None
    curve = precision_recall_curve(scores, correct, faces)
    recall = np.concatenate([[0.0], curve.recall])
    # Precision envelope: at each point the highest precision reached at any later (higher-recall) point.
    envelope = np.maximum.accumulate(np.concatenate([curve.precision, [0.0]])[::-1])[::-1]
    return float(np.sum((recall[1:] - recall[:-1]) * envelope[:-1]))


@dataclass(frozen=True)
class ThresholdCounts:
    true_pos: int  # face images with score >= threshold and IoU >= 0.5
    false_pos: int  # detections at/above threshold that are not true positives
    false_neg: int  # face images that are not true positives
    negatives: int  # images without a face
    negatives_flagged: int  # ... of which scored at/above threshold

    @property
    def precision(self) -> float | None:
        flagged = self.true_pos + self.false_pos
        return self.true_pos / flagged if flagged else None

    @property
    def recall(self) -> float | None:
        faces = self.true_pos + self.false_neg
        return self.true_pos / faces if faces else None

    @property
    def f1(self) -> float | None:
        if self.precision is None or self.recall is None:
            return None
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0

    @property
    def false_positive_rate(self) -> float | None:
        return self.negatives_flagged / self.negatives if self.negatives else None


def threshold_counts(scores, has_face, ious, threshold: float, iou_threshold: float = config.IOU_THRESHOLD
                     ) -> ThresholdCounts:
    """Counts at one score threshold. `ious[i]` is ignored for images without a face."""
    scores = np.asarray(scores, np.float64)
    has_face = np.asarray(has_face, bool)
    ious = np.nan_to_num(np.asarray(ious, np.float64), nan=0.0)
    flagged = scores >= threshold
    true_pos = flagged & has_face & (ious >= iou_threshold)
    return ThresholdCounts(
        true_pos=int(true_pos.sum()),
        false_pos=int((flagged & ~true_pos).sum()),
        false_neg=int((has_face & ~true_pos).sum()),
        negatives=int((~has_face).sum()),
        negatives_flagged=int((flagged & ~has_face).sum()),
    )


def metrics(scores, has_face, ious, threshold: float, iou_threshold: float = config.IOU_THRESHOLD) -> dict:
    """Every summary number of the report from per-image scores, face flags and IoUs."""
    scores = np.asarray(scores, np.float64)
    has_face = np.asarray(has_face, bool)
    ious = np.asarray(ious, np.float64)
    correct = has_face & (np.nan_to_num(ious, nan=0.0) >= iou_threshold)
    counts = threshold_counts(scores, has_face, ious, threshold, iou_threshold)
    face_ious = ious[has_face]
    return {
        "ap50": average_precision(scores, correct, int(has_face.sum())),
        "mean_iou": float(face_ious.mean()) if face_ious.size else None,
        "precision": counts.precision,
        "recall": counts.recall,
        "f1": counts.f1,
        "false_positive_rate": counts.false_positive_rate,
        "true_positives": counts.true_pos,
        "false_positives": counts.false_pos,
        "false_negatives": counts.false_neg,
        "negatives_flagged": counts.negatives_flagged,
    }


# ---------------------------------------------------------------- running a detector on a folder


def evaluate_folder(detector, images_dir: Path, labels_dir: Path, face_labels: tuple[str, ...] = config.FACE_LABELS,
                    threshold: float = config.THRESHOLD) -> dict:
    """Run `detector` on every usable image of a labelme folder and return the report dict (JSON-ready)."""
    from facetracker.labels import scan

    images_dir, labels_dir = Path(images_dir), Path(labels_dir)
    found = scan(images_dir, labels_dir, face_labels)
    if not found.samples:
        raise FacetrackerError("no usable images to evaluate", images_dir,
                               "point --data at a folder with images/ and labels/ (e.g. data/test)")
    frames = (read_image(sample.image) for sample in found.samples)
    detections, latencies = [], []
    for index, frame in enumerate(frames):
        if index == 0:
            detector.detect(frame)  # warm-up: the first call allocates and plans, it is not typical latency
        start = time.perf_counter()
        detections.append(detector.detect(frame))
        latencies.append(time.perf_counter() - start)

    has_face = np.array([s.has_face for s in found.samples])
    truth = np.array([s.box if s.has_face else (0, 0, 0, 0) for s in found.samples], np.float32)
    ious = box_iou(truth, np.array([d.box for d in detections], np.float32))
    ious = np.where(has_face, ious, np.nan)
    scores = np.array([d.score for d in detections])
    curve = precision_recall_curve(scores, has_face & (np.nan_to_num(ious) >= config.IOU_THRESHOLD),
                                   int(has_face.sum()))
    return {
        "model": str(detector.source),
        "runtime": detector.runtime_name,
        "image_size": detector.image_size,
        "resize": config.RESIZE_INTERPOLATION,
        "images_dir": str(images_dir),
        "labels_dir": str(labels_dir),
        "face_labels": list(face_labels),
        "threshold": threshold,
        "iou_threshold": config.IOU_THRESHOLD,
        "images": len(found.samples),
        "faces": int(has_face.sum()),
        "negatives": int((~has_face).sum()),
        "skipped": list(found.skipped),
        **metrics(scores, has_face, ious, threshold),
        "latency_ms_median": 1000 * statistics.median(latencies),
        "curve": {"precision": curve.precision.round(5).tolist(), "recall": curve.recall.round(5).tolist(),
                  "score": curve.scores.round(5).tolist()},
        "per_image": [
            {"image": s.image.name, "has_face": s.has_face,
             "truth": [round(v, 1) for v in s.box] if s.box else None,
             "score": round(d.score, 5), "box": [round(v, 1) for v in d.box],
             "iou": None if np.isnan(iou) else round(float(iou), 4)}
            for s, d, iou in zip(found.samples, detections, ious)
        ],
    }


# ---------------------------------------------------------------- report files


def report_paths(out_dir: Path) -> dict[str, Path]:
    out_dir = Path(out_dir)
    return {"json": out_dir / REPORT_JSON, "curve": out_dir / CURVE_PNG, "grid": out_dir / GRID_PNG}


def check_report_paths(out_dir: Path, force: bool) -> dict[str, Path]:
    """Refuse (before any work) to replace an earlier report unless --force."""
    paths = report_paths(out_dir)
    existing = [p for p in paths.values() if p.exists()]
    if existing and not force:
        raise FacetrackerError("a report already exists", existing[0], "pass --force to replace it or choose --out")
    ensure_writable_dir(out_dir)
    return paths


def write_report(report: dict, out_dir: Path, force: bool = False) -> dict[str, Path]:
    """evaluation.json, precision_recall.png and predictions.png in out_dir, each written atomically."""
    paths = check_report_paths(out_dir, force)
    write_bytes_atomic(paths["curve"], curve_png(report))
    write_image_atomic(paths["grid"], prediction_grid(report))
    write_json_atomic(paths["json"], report)  # last: its presence means the whole report is there
    return paths


def curve_png(report: dict) -> bytes:
    import matplotlib

    matplotlib.use("Agg")  # no display needed, and never a GUI backend from a CLI
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    recall, precision = report["curve"]["recall"], report["curve"]["precision"]
    ax.step([0.0, *recall], [1.0, *precision], where="post", color="tab:blue")
    ap = report["ap50"]
    ax.set_title(f"AP@0.5 = {ap:.3f}" if ap is not None else "AP@0.5: no faces in the data")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _tile_order(report: dict) -> list[dict]:
    """Mistakes first (they are what a person wants to look at), then the rest, at most EVAL_GRID_IMAGES."""
    threshold = report["threshold"]

    def is_mistake(row: dict) -> bool:
        flagged = row["score"] >= threshold
        hit = row["has_face"] and flagged and (row["iou"] or 0.0) >= report["iou_threshold"]
        return (flagged or row["has_face"]) and not hit

    rows = sorted(report["per_image"], key=lambda row: not is_mistake(row))  # stable: keeps folder order
    return rows[:config.EVAL_GRID_IMAGES]


def prediction_grid(report: dict):
    """A BGR image: tiles with the labelled box (orange) and the prediction (green; red when wrong)."""
    import cv2

    from facetracker.draw import MISS_COLOUR, TRUTH_COLOUR, FACE_COLOUR, draw_box

    rows = _tile_order(report)
    frames = [read_image(Path(report["images_dir"]) / row["image"]) for row in rows]
    tile_w = config.EVAL_GRID_TILE
    tile_h = round(tile_w * frames[0].shape[0] / frames[0].shape[1])  # tiles shaped like the (first) images
    columns = min(4, len(rows))
    grid = np.full((tile_h * -(-len(rows) // columns), tile_w * columns, 3), 32, np.uint8)
    for i, (row, frame) in enumerate(zip(rows, frames)):
        if row["truth"]:
            draw_box(frame, row["truth"], TRUTH_COLOUR, "label")
        correct = row["has_face"] and (row["iou"] or 0.0) >= report["iou_threshold"]
        if row["score"] >= report["threshold"]:
            draw_box(frame, row["box"], FACE_COLOUR if correct else MISS_COLOUR, f"{row['score']:.2f}")
        else:
            cv2.putText(frame, f"no face {row['score']:.2f}", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7,
                        MISS_COLOUR if row["has_face"] else FACE_COLOUR, 2, cv2.LINE_AA)
        scale = min(tile_w / frame.shape[1], tile_h / frame.shape[0])  # other sizes fit, aspect kept
        small = cv2.resize(frame, (max(1, round(frame.shape[1] * scale)), max(1, round(frame.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
        top, left = (i // columns) * tile_h, (i % columns) * tile_w
        grid[top:top + small.shape[0], left:left + small.shape[1]] = small
    return grid


def summary_lines(report: dict) -> list[str]:
    """The report as short human-readable lines (printed by the CLI)."""

    def pct(value) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"

    ap = "n/a (no faces)" if report["ap50"] is None else f"{report['ap50']:.3f}"
    iou = "n/a" if report["mean_iou"] is None else f"{report['mean_iou']:.3f}"
    return [
        f"model {report['model']} ({report['runtime']}, {report['image_size']} px) on {report['images_dir']}: "
        f"{report['images']} images, {report['faces']} faces, {report['negatives']} negatives"
        + (f", {len(report['skipped'])} skipped" if report["skipped"] else ""),
        f"AP@0.5          {ap}",
        f"mean IoU        {iou}  (faces)",
        f"precision       {pct(report['precision'])}  at threshold {report['threshold']}",
        f"recall          {pct(report['recall'])}",
        f"F1              {pct(report['f1'])}",
        f"false positives {pct(report['false_positive_rate'])} of negatives",
        f"latency         {report['latency_ms_median']:.2f} ms median per image (incl. resize)",
    ]
