"""`facetracker evaluate`: how good a face detector is on a raw labelme folder (images/ + labels/).

A FaceTracker finds any number of faces per image, so this is ordinary object-detection scoring, one class. Each
image is seen as a still image (inference.still_faces: as it is and mirrored, and a big photo in tiles too), as
`predict` sees a photo:

- Every detection of every image (score >= config.MIN_SCORE) is ranked by score across the whole folder.
- Per image, detections are matched greedily in score order: each takes the still-unmatched labelled face it
  overlaps most, if that IoU is >= 0.5 (a true positive); otherwise it is a false positive — including a second
  detection of a face already matched. This is COCO's matching rule.
- AP@0.5 is the all-point interpolated area under that ranking's precision-recall curve (PASCAL VOC 2010+), recall
  counted over all labelled faces. AP@[.5:.95] is COCO's, computed by pycocotools (the reference implementation);
  its AP at 0.5 alone uses 101-point interpolation, so it differs slightly from ours.
- At the chosen threshold: recall (faces matched by a detection scoring >= threshold), precision, F1, false
  positives per image, the share of face-free images with any detection >= threshold, and the mean IoU of the
  faces found (each face with its best-overlapping detection at the threshold, counted when IoU >= 0.5).

The metric functions take plain arrays (per image: (M, 4) face boxes, (N,) scores, (N, 4) boxes), so they are
checked on hand-computed cases without any model, and benchmarks score other detectors through the same code.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facetracker import config
from facetracker.boxes import as_boxes, iou_matrix
from facetracker.errors import FacetrackerError
from facetracker.files import ensure_writable_dir, read_image, write_bytes_atomic, write_image_atomic, \
    write_json_atomic
from facetracker.inference import still_faces

REPORT_JSON = "evaluation.json"
CURVE_PNG = "precision_recall.png"
GRID_PNG = "predictions.png"
TRUTH_ORANGE = (0, 165, 255)  # BGR: labelled boxes in predictions.png (detections are green or red)


# ---------------------------------------------------------------- metrics on plain arrays


def match_detections(truth, scores, boxes, iou_threshold: float = config.IOU_THRESHOLD) -> np.ndarray:
    """Greedy matching of one image: which detections are true positives (bool (N,), in the input order).

    Detections are taken best score first (ties keep input order); each claims the still-unmatched face it
    overlaps most when that IoU reaches `iou_threshold`. A face is matched at most once, so a second detection
    of it is a false positive."""
    scores = np.asarray(scores, np.float64).reshape(-1)
    overlaps = iou_matrix(truth, boxes)  # (faces, detections)
    correct = np.zeros(len(scores), bool)
    taken = np.zeros(overlaps.shape[0], bool)
    for d in np.argsort(-scores, kind="stable"):
        free = np.where(taken, -1.0, overlaps[:, d]) if overlaps.shape[0] else np.zeros(0)
        if free.size and free.max() >= iou_threshold:
            taken[int(free.argmax())] = True
            correct[d] = True
    return correct


def best_face_ious(truth, scores, boxes, threshold: float) -> np.ndarray:
    """For each face of one image, its highest IoU with a detection scoring >= threshold (0 when there is none)."""
    flagged = np.asarray(scores, np.float64).reshape(-1) >= threshold
    overlaps = iou_matrix(truth, as_boxes(boxes)[flagged])
    return overlaps.max(axis=1) if overlaps.shape[1] else np.zeros(overlaps.shape[0])


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
    true_pos: int  # detections at/above threshold matched to a face (= faces found)
    false_pos: int  # detections at/above threshold not matched to a face
    faces: int
    images: int
    negatives: int  # images without a face
    negatives_flagged: int  # ... of which have a detection at/above threshold

    @property
    def false_neg(self) -> int:
        return self.faces - self.true_pos

    @property
    def precision(self) -> float | None:
        flagged = self.true_pos + self.false_pos
        return self.true_pos / flagged if flagged else None

    @property
    def recall(self) -> float | None:
        return self.true_pos / self.faces if self.faces else None

    @property
    def f1(self) -> float | None:
        if self.precision is None or self.recall is None:
            return None
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0

    @property
    def fp_per_image(self) -> float | None:
        return self.false_pos / self.images if self.images else None

    @property
    def fp_rate_negatives(self) -> float | None:
        return self.negatives_flagged / self.negatives if self.negatives else None


@dataclass(frozen=True)
class FolderMatch:
    """The matching of a whole folder, per image: what every summary number and the report rows come from."""

    truths: list[np.ndarray]  # (M, 4) faces
    scores: list[np.ndarray]  # (N,)
    boxes: list[np.ndarray]  # (N, 4)
    correct: list[np.ndarray]  # (N,) bool: greedy match at the IoU threshold, all detections
    face_ious: list[np.ndarray]  # (M,) best IoU of each face with a detection at/above the threshold
    threshold: float
    iou_threshold: float

    @property
    def faces(self) -> int:
        return sum(len(t) for t in self.truths)

    def ranking(self) -> tuple[np.ndarray, np.ndarray]:
        """(scores, correct) of every detection of every image, for the folder-wide precision-recall curve."""
        if not self.scores:
            return np.zeros(0), np.zeros(0, bool)
        return np.concatenate(self.scores), np.concatenate(self.correct)

    def counts(self) -> ThresholdCounts:
        flagged = [s >= self.threshold for s in self.scores]
        negative = [len(t) == 0 for t in self.truths]
        return ThresholdCounts(
            true_pos=int(sum((c & f).sum() for c, f in zip(self.correct, flagged))),
            false_pos=int(sum((~c & f).sum() for c, f in zip(self.correct, flagged))),
            faces=self.faces,
            images=len(self.truths),
            negatives=int(sum(negative)),
            negatives_flagged=int(sum(n and bool(f.any()) for n, f in zip(negative, flagged))),
        )

    def mean_iou(self) -> float | None:
        """Mean IoU of the faces found at the threshold (best-overlapping detection, IoU >= the IoU threshold)."""
        ious = np.concatenate(self.face_ious) if self.face_ious else np.zeros(0)
        found = ious[ious >= self.iou_threshold]
        return float(found.mean()) if found.size else None


def match_folder(truths, scores, boxes, threshold: float = config.THRESHOLD,
                 iou_threshold: float = config.IOU_THRESHOLD) -> FolderMatch:
    """Match every image: `truths`, `scores`, `boxes` are per-image lists of (M, 4), (N,) and (N, 4) arrays."""
    truths = [as_boxes(t) for t in truths]
    scores = [np.asarray(s, np.float64).reshape(-1) for s in scores]
    boxes = [as_boxes(b) for b in boxes]
    if not len(truths) == len(scores) == len(boxes):
        raise ValueError("truths, scores and boxes must have one entry per image")
    return FolderMatch(
        truths=truths, scores=scores, boxes=boxes,
        correct=[match_detections(t, s, b, iou_threshold) for t, s, b in zip(truths, scores, boxes)],
        face_ious=[best_face_ious(t, s, b, threshold) for t, s, b in zip(truths, scores, boxes)],
        threshold=threshold, iou_threshold=iou_threshold)


def summarise(match: FolderMatch) -> dict:
    """Every summary number of the report (JSON-ready) from a folder's matching."""
    counts = match.counts()
    ranked_scores, ranked_correct = match.ranking()
    return {
        "ap50": average_precision(ranked_scores, ranked_correct, match.faces),
        "mean_iou": match.mean_iou(),
        "recall": counts.recall,
        "precision": counts.precision,
        "f1": counts.f1,
        "fp_per_image": counts.fp_per_image,
        "fp_rate_negatives": counts.fp_rate_negatives,
        "faces": counts.faces,
        "images": counts.images,
        "negatives": counts.negatives,
        "detections": int(ranked_scores.size),
        "true_positives": counts.true_pos,
        "false_positives": counts.false_pos,
        "false_negatives": counts.false_neg,
        "negatives_flagged": counts.negatives_flagged,
    }


def metrics(truths, scores, boxes, threshold: float = config.THRESHOLD,
            iou_threshold: float = config.IOU_THRESHOLD) -> dict:
    """summarise(match_folder(...)): the report's numbers straight from per-image arrays."""
    return summarise(match_folder(truths, scores, boxes, threshold, iou_threshold))


def coco_average_precision(truths, scores, boxes) -> dict:
    """COCO AP of one class with pycocotools: {"ap50_95", "ap50", "ap75"}, None where there are no faces.

    The ground truth and the detections are built as COCO dicts in memory; pycocotools prints progress and a
    table to stdout, which is swallowed here (a CLI's output and JSON lines must stay clean)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    truths = [as_boxes(t) for t in truths]
    empty = {"ap50_95": None, "ap50": None, "ap75": None}
    if not any(len(t) for t in truths):
        return empty
    detections = [{"image_id": i, "category_id": 1, "score": float(s), "bbox": _xywh(b)}
                  for i, (image_scores, image_boxes) in enumerate(zip(scores, boxes))
                  for s, b in zip(np.asarray(image_scores).reshape(-1), as_boxes(image_boxes))]
    if not detections:  # pycocotools cannot load an empty result list; nothing found is AP 0
        return {key: 0.0 for key in empty}
    with contextlib.redirect_stdout(io.StringIO()):
        ground = COCO()
        ground.dataset = _coco_ground_truth(truths)
        ground.createIndex()
        evaluation = COCOeval(ground, ground.loadRes(detections), iouType="bbox")
        evaluation.params.maxDets = [1, 10, max(100, config.MAX_FACES)]  # stats use the last: every detection
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    ap50_95, ap50, ap75 = (float(v) for v in evaluation.stats[:3])
    return {"ap50_95": ap50_95, "ap50": ap50, "ap75": ap75}


def _xywh(box) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def _coco_ground_truth(truths: list[np.ndarray]) -> dict:
    # Annotation ids start at 1: COCOeval marks "no match" with id 0.
    annotations = []
    for image_id, faces in enumerate(truths):
        for box in faces:
            x, y, w, h = _xywh(box)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
    return {"images": [{"id": i} for i in range(len(truths))], "annotations": annotations,
            "categories": [{"id": 1, "name": "face"}]}


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
    report = evaluate_samples(detector, found.samples, threshold)
    report.update(images_dir=str(images_dir), labels_dir=str(labels_dir), face_labels=list(face_labels),
                  skipped=list(found.skipped))
    return report


def evaluate_samples(detector, samples, threshold: float = config.THRESHOLD) -> dict:
    """The report for a list of labels.Sample (benchmarks pick their own, e.g. without unreliable negatives)."""
    scores, boxes, latencies = detect_samples(detector, samples)
    report = score_detections(samples, [s.boxes for s in samples], scores, boxes, threshold)
    return {"model": str(detector.source), "runtime": detector.runtime_name, "image_size": detector.image_size,
            "resize": config.RESIZE_INTERPOLATION, **report, "latency_ms": 1000 * statistics.median(latencies)}


def detect_samples(detector, samples) -> tuple[list[list[float]], list[list], list[float]]:
    """Per image of `samples`: the scores and boxes of every detection (score >= config.MIN_SCORE, seen as a still
    image), and the seconds it took."""
    scores, boxes, latencies = [], [], []
    for index, sample in enumerate(samples):
        frame = read_image(sample.image)
        if index == 0:
            detector.detect(frame)  # warm-up: the first call allocates and plans, it is not typical latency
        start = time.perf_counter()
        detections = still_faces(detector, frame, min_score=config.MIN_SCORE)
        latencies.append(time.perf_counter() - start)
        scores.append([d.score for d in detections])
        boxes.append([d.box for d in detections])
    return scores, boxes, latencies


def score_detections(samples, truths, scores, boxes, threshold: float = config.THRESHOLD) -> dict:
    """Summary, COCO AP, curve and per-image rows for any detector's per-image detections of `samples`."""
    match = match_folder(truths, scores, boxes, threshold)
    ranked_scores, ranked_correct = match.ranking()
    curve = precision_recall_curve(ranked_scores, ranked_correct, match.faces)
    coco = coco_average_precision(match.truths, match.scores, match.boxes)
    return {
        "threshold": threshold,
        "iou_threshold": match.iou_threshold,
        "min_score": config.MIN_SCORE,
        "face_images": sum(1 for t in match.truths if len(t)),
        **summarise(match),
        "ap50_95": coco["ap50_95"],
        "coco_ap50": coco["ap50"],
        "curve": {"precision": curve.precision.round(4).tolist(), "recall": curve.recall.round(4).tolist(),
                  "score": curve.scores.round(4).tolist()},
        "images_dir": str(Path(samples[0].image).parent) if samples else None,
        "per_image": [image_row(sample, match, i) for i, sample in enumerate(samples)],
    }


def image_row(sample, match: FolderMatch, i: int) -> dict:
    """One image of the report: its faces, their best IoU at the threshold, and its detections (best first:
    every one at/above the threshold, at least the top EVAL_ROW_DETECTIONS so near misses show too)."""
    scores, boxes, correct = match.scores[i], match.boxes[i], match.correct[i]
    order = np.argsort(-scores, kind="stable")
    shown = order[:max(int((scores >= match.threshold).sum()), config.EVAL_ROW_DETECTIONS)]
    overlaps = iou_matrix(match.truths[i], boxes)
    best_iou = overlaps.max(axis=0) if overlaps.shape[0] else np.zeros(len(scores))
    return {
        "image": Path(sample.image).name,
        "truth": [[round(float(v), 1) for v in box] for box in match.truths[i]],
        "face_ious": [round(float(v), 4) for v in match.face_ious[i]],
        "faces_found": int((correct & (scores >= match.threshold)).sum()),
        "detections": [{"score": round(float(scores[d]), 4), "box": [round(float(v), 1) for v in boxes[d]],
                        "iou": round(float(best_iou[d]), 4), "matched": bool(correct[d])} for d in shown],
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
    ax.set_title(f"AP@0.5 = {ap:.3f} ({report['faces']} faces)" if ap is not None else "AP@0.5: no faces in the data")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def flagged_detections(row: dict, threshold: float) -> list[dict]:
    return [d for d in row["detections"] if d["score"] >= threshold]


def is_mistake(row: dict, threshold: float) -> bool:
    """A face not found at the threshold, or a detection at/above it that matches no face."""
    missed = row["faces_found"] < len(row["truth"])
    return missed or any(not d["matched"] for d in flagged_detections(row, threshold))


def _tile_order(report: dict) -> list[dict]:
    """Mistakes first (they are what a person wants to look at), then the rest, at most EVAL_GRID_IMAGES."""
    rows = sorted(report["per_image"], key=lambda row: not is_mistake(row, report["threshold"]))  # stable
    return rows[:config.EVAL_GRID_IMAGES]


def draw_row(frame: np.ndarray, row: dict, threshold: float) -> np.ndarray:
    """Every labelled face (orange), every detection at/above the threshold (green matched, red not)."""
    from facetracker.draw import FACE_COLOUR, MISS_COLOUR, draw_box, draw_note

    for box in row["truth"]:
        draw_box(frame, box, TRUTH_ORANGE)
    flagged = flagged_detections(row, threshold)
    for detection in reversed(flagged):  # best last, so its caption is on top
        draw_box(frame, detection["box"], FACE_COLOUR if detection["matched"] else MISS_COLOUR,
                 f"{detection['score']:.2f}")
    if not flagged:
        best = f" (best {row['detections'][0]['score']:.2f})" if row["detections"] else ""
        draw_note(frame, f"no face{best}", MISS_COLOUR if row["truth"] else FACE_COLOUR)
    return frame


def prediction_grid(report: dict):
    """A BGR image: tiles of the images with mistakes first, drawn by draw_row."""
    import cv2

    rows = _tile_order(report)
    frames = [draw_row(read_image(Path(report["images_dir"]) / row["image"]), row, report["threshold"])
              for row in rows]
    tile_w = config.EVAL_GRID_TILE
    tile_h = round(tile_w * frames[0].shape[0] / frames[0].shape[1])  # tiles shaped like the (first) images
    columns = min(4, len(rows))
    grid = np.full((tile_h * -(-len(rows) // columns), tile_w * columns, 3), 32, np.uint8)
    for i, frame in enumerate(frames):
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

    def num(value, fallback: str = "n/a") -> str:
        return fallback if value is None else f"{value:.3f}"

    fp_rate = "" if report["fp_rate_negatives"] is None else \
        f"; {report['negatives_flagged']} of {report['negatives']} negatives ({pct(report['fp_rate_negatives'])}) " \
        "with a detection"
    return [
        f"model {report['model']} ({report['runtime']}, {report['image_size']} px) on {report['images_dir']}: "
        f"{report['images']} images, {report['faces']} faces, {report['negatives']} negatives"
        + (f", {len(report['skipped'])} skipped" if report.get("skipped") else ""),
        f"AP@0.5          {num(report['ap50'], 'n/a (no faces)')}  (all faces, VOC all-point)",
        f"AP@[.5:.95]     {num(report['ap50_95'], 'n/a (no faces)')}  (COCO, pycocotools)",
        f"mean IoU        {num(report['mean_iou'])}  (faces found, IoU >= {report['iou_threshold']})",
        f"recall          {pct(report['recall'])}  at threshold {report['threshold']} "
        f"({report['true_positives']} of {report['faces']} faces)",
        f"precision       {pct(report['precision'])}",
        f"F1              {pct(report['f1'])}",
        f"false positives {num(report['fp_per_image'])} per image{fp_rate}",
        f"latency         {report['latency_ms']:.2f} ms median per image (incl. resize)",
    ]
