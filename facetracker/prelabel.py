"""Label with the model: pre-labels that labelme opens for review, and the model's opinion on existing labels.

`prelabel_folder` writes, for every image without a label file, a labelme JSON with one `face` rectangle per face
the model finds, each marked with the shape flag `"predicted": true` (labelme shows it as a ticked checkbox in the
label dialog; unticking it marks the box as reviewed). Images where no face is found get no file, so negatives
stay negatives, and an existing label file is never touched: files are written to a temporary name and linked to
their final name only if that name is still free.

`find_label_mistakes` compares a label folder with the model and returns one `Finding` per suspicious image,
worst first: unlabelled images the model is sure show a face, labels the model's best box misses, labelled
images where the model sees no face, and boxes still marked predicted. `facetracker label --check --model M`
prints them; benchmarks/prelabel_quality.py measures both on real data.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from facetracker import config, labels
from facetracker.boxes import iou_matrix
from facetracker.errors import FacetrackerError
from facetracker.files import ensure_writable_dir, list_images, read_image
from facetracker.inference import still_faces

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels of the image

LABELME_FORMAT_VERSION = "5.5.0"  # written when labelme itself is not installed (its files carry its version)
MIN_BOX_PIXELS = 2.0  # narrower or flatter model boxes are not written (labels.parse_label drops < 1 px)

# Kinds of finding, in the order `label --check` shows their rows.
MISSING_LABEL = "missing label"
MISPLACED = "misplaced box"
NO_FACE_SEEN = "no face seen"
UNREVIEWED = "not reviewed"
FINDING_KINDS = (MISSING_LABEL, MISPLACED, NO_FACE_SEEN, UNREVIEWED)


# ---------------------------------------------------------------------------------------------- pre-labels


@dataclass
class PrelabelSummary:
    images: int = 0  # image files in the folder
    prelabelled: list[Path] = field(default_factory=list)  # label files written
    boxes: int = 0  # rectangles in them
    negatives: list[Path] = field(default_factory=list)  # images where no face was found: no file written
    kept: list[Path] = field(default_factory=list)  # images that already had a label file (not touched)
    skipped: list[str] = field(default_factory=list)  # "<error>" per unreadable image
    seconds: float = 0.0  # wall time of the whole pass (decode, model, write)

    def describe(self, threshold: float) -> str:
        kept = f"; {len(self.kept)} already had a label (not touched)" if self.kept else ""
        skipped = f"; {len(self.skipped)} unreadable (skipped)" if self.skipped else ""
        per_image = self.seconds / max(1, self.images - len(self.kept))
        return (f"pre-labelled {len(self.prelabelled)} images ({self.boxes} face boxes, flagged "
                f"'{config.PREDICTED_FLAG}'), {len(self.negatives)} left as negatives (no face at score >= "
                f"{threshold:g}){kept}{skipped}; {per_image:.3f} s per image")


def prelabel_folder(detector, images_dir: Path, labels_dir: Path, face_label: str = config.FACE_LABELS[0],
                    threshold: float = config.PRELABEL_THRESHOLD,
                    progress: Callable[[int], None] | None = None) -> PrelabelSummary:
    """Write `<labels_dir>/<stem>.json` with the model's face boxes for every image of `images_dir` that has no
    label file yet; images without a face at `threshold` get none. Existing label files are never touched."""
    started = time.perf_counter()
    images = list_images(images_dir)
    labels_dir = ensure_writable_dir(labels_dir)
    version = labelme_version()
    summary = PrelabelSummary(images=len(images))
    for image in images:
        label = labels_dir / f"{image.stem}.json"
        if label.exists():
            summary.kept.append(image)
        else:
            try:
                frame = read_image(image)
            except FacetrackerError as exc:
                summary.skipped.append(str(exc))
            else:
                height, width = frame.shape[:2]
                found = [(d.score, d.box) for d in still_faces(detector, frame, threshold) if _big_enough(d.box)]
                if not found:
                    summary.negatives.append(image)
                elif write_new_json(label, labelme_json(image, labels_dir, (width, height), found, face_label,
                                                        version)):
                    summary.prelabelled.append(label)
                    summary.boxes += len(found)
                else:  # a label appeared meanwhile (labelme open on the folder): it wins
                    summary.kept.append(image)
        if progress:
            progress(1)
    summary.seconds = time.perf_counter() - started
    return summary


def labelme_json(image: Path, labels_dir: Path, size: tuple[int, int], faces: list[tuple[float, Box]],
                 face_label: str = config.FACE_LABELS[0], version: str | None = None) -> dict:
    """A labelme label file (what labelme itself writes with image data off) with one predicted rectangle per
    (score, box); `imagePath` is relative to the label folder, as labelme resolves it."""
    width, height = size
    shapes = [{"label": face_label,
               "points": [[round(x1, 2), round(y1, 2)], [round(x2, 2), round(y2, 2)]],
               "group_id": None,
               "description": f"facetracker score {score:.2f}",
               "shape_type": "rectangle",
               "flags": {config.PREDICTED_FLAG: True},
               "mask": None}
              for score, (x1, y1, x2, y2) in faces]
    return {"version": version or labelme_version(), "flags": {}, "shapes": shapes,
            "imagePath": _relative(image, labels_dir), "imageData": None,
            "imageHeight": int(height), "imageWidth": int(width)}


def labelme_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("labelme")
    except PackageNotFoundError:
        return LABELME_FORMAT_VERSION


def _relative(image: Path, labels_dir: Path) -> str:
    try:
        return Path(os.path.relpath(Path(image).resolve(), Path(labels_dir).resolve())).as_posix()
    except ValueError:  # Windows: another drive has no relative path
        return str(Path(image).resolve())


def _big_enough(box: Box) -> bool:
    return box[2] - box[0] >= MIN_BOX_PIXELS and box[3] - box[1] >= MIN_BOX_PIXELS


def write_new_json(path: Path, obj: object) -> bool:
    """Write `obj` to `path` only if no file is there, atomically: a temporary file beside it is hard-linked to the
    name (which fails when the name is taken, even by a file created a moment ago). False when a file was there."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False)
            f.write("\n")
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; labels get the usual permissions
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: check, then rename
            if path.exists():
                return False
            os.replace(tmp, path)
        return True
    finally:
        Path(tmp).unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------------------------------------- the check


@dataclass(frozen=True)
class Finding:
    """One image whose label the model doubts (or whose predicted boxes nobody reviewed yet)."""

    kind: str  # one of FINDING_KINDS
    image: Path
    label: Path | None
    severity: float  # 0..1, how sure the model is that the label is wrong; 0 for UNREVIEWED
    score: float | None = None  # the model's best face score on the image
    box: Box | None = None  # the model's best face box
    iou: float | None = None  # MISPLACED: the best box's largest IoU with the label's boxes
    count: int = 0  # UNREVIEWED: boxes still marked predicted

    def describe(self) -> str:
        name = self.image.name
        if self.kind == MISSING_LABEL:
            return (f"{name}: no face box, but the model sees a face (score {self.score:.2f}) at "
                    f"{_pixels(self.box)} — probably a missing label")
        if self.kind == MISPLACED:
            return (f"{name}: the model's best face (score {self.score:.2f}, at {_pixels(self.box)}) overlaps the "
                    f"label only at IoU {self.iou:.2f} — a misplaced box, or a label filed under another image's "
                    "name")
        if self.kind == NO_FACE_SEEN:
            return f"{name}: has a face box, but the model sees no face (best score {self.score or 0:.2f})"
        boxes = "box" if self.count == 1 else "boxes"
        return f"{name}: {self.count} {boxes} still marked {config.PREDICTED_FLAG}"


def _pixels(box: Box | None) -> str:
    return "[" + ", ".join(str(round(v)) for v in box) + "]" if box else "-"


def find_label_mistakes(detector, images_dir: Path, labels_dir: Path,
                        face_labels: tuple[str, ...] = config.FACE_LABELS,
                        threshold: float = config.PRELABEL_THRESHOLD,
                        missing_score: float = config.CHECK_MISSING_SCORE,
                        misplaced_iou: float = config.CHECK_MISPLACED_IOU,
                        scan: labels.Scan | None = None,
                        progress: Callable[[int], None] | None = None) -> list[Finding]:
    """What the model thinks of a label folder, worst first (then by file name); unreviewed boxes last.

    - an image without a face box where the model's best face scores >= `missing_score`: MISSING_LABEL
    - a labelled image whose best model face (>= `threshold`) overlaps every label box at IoU < `misplaced_iou`:
      MISPLACED (a box drawn elsewhere, or another image's label filed under this name)
    - a labelled image where no model face reaches `threshold`: NO_FACE_SEEN
    - predicted boxes (see `prelabel_folder`) nobody has unticked yet: UNREVIEWED, see `unreviewed_boxes`
    `detector` is None: only the unreviewed boxes. `scan` (labels.scan of the same folders) saves reading them again.
    """
    scan = scan if scan is not None else labels.scan(images_dir, labels_dir, tuple(face_labels))
    found: list[Finding] = []
    if detector is not None:
        floor = min(threshold, missing_score, config.MIN_SCORE)  # every face the model reports: the best score counts
        for sample in scan.samples:
            try:
                detections = still_faces(detector, read_image(sample.image), floor)
            except FacetrackerError:
                detections = []  # gone or damaged since the scan: the scan reports what it could not read
            finding = judge(sample, detections, threshold, missing_score, misplaced_iou)
            if finding:
                found.append(finding)
            if progress:
                progress(1)
    found.sort(key=lambda f: (-f.severity, f.image.name))
    return found + unreviewed_boxes(scan, face_labels)


def judge(sample: labels.Sample, detections, threshold: float = config.PRELABEL_THRESHOLD,
          missing_score: float = config.CHECK_MISSING_SCORE,
          misplaced_iou: float = config.CHECK_MISPLACED_IOU) -> Finding | None:
    """The model's verdict on one image from its detections (best first), or None when it agrees."""
    best = detections[0] if detections else None
    best_score = best.score if best else 0.0
    if not sample.has_face:
        if best is not None and best_score >= missing_score:
            return Finding(MISSING_LABEL, sample.image, sample.label, best_score, best_score, best.box)
        return None
    if best is None or best_score < threshold:
        return Finding(NO_FACE_SEEN, sample.image, sample.label, 1.0 - best_score, best_score,
                       best.box if best else None)
    iou = float(iou_matrix([best.box], sample.boxes).max())
    if iou < misplaced_iou:
        return Finding(MISPLACED, sample.image, sample.label, best_score * (1.0 - iou), best_score, best.box, iou)
    return None


def unreviewed_boxes(scan: labels.Scan, face_labels: tuple[str, ...] = config.FACE_LABELS) -> list[Finding]:
    """One UNREVIEWED finding per label file that still has face boxes flagged predicted, by file name."""
    found = []
    for sample in scan.samples:
        if sample.label is None or not sample.has_face:
            continue
        try:
            shapes = labels.read_label_json(sample.label)["shapes"]
        except FacetrackerError:
            continue
        count = sum(1 for s in shapes if isinstance(s, dict) and s.get("label") in face_labels
                    and isinstance(s.get("flags"), dict) and s["flags"].get(config.PREDICTED_FLAG) is True)
        if count:
            found.append(Finding(UNREVIEWED, sample.image, sample.label, 0.0, count=count))
    return sorted(found, key=lambda f: f.image.name)
