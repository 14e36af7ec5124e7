"""Reading labelme labels: every face box of an image, with the quirks of real hand-made data fixed or reported.

An image is paired with `<labels>/<image stem>.json`; `imagePath` inside the JSON is never followed
(it is often a Windows path, or points outside the data folder). An image without a label is a negative.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from facetracker import config
from facetracker.boxes import iou_matrix
from facetracker.config import FACE_LABELS
from facetracker.errors import FacetrackerError
from facetracker.files import list_images

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels of the real image, x1 < x2, y1 < y2

# Kinds of quirk counted by `scan` and printed by `facetracker label --check`.
REVERSED = "rectangles with reversed corners (normalised)"
CLIPPED = "boxes outside the image (clipped)"
NOT_RECTANGLE = "shapes that are not rectangles (bounding box used)"
UNUSABLE_SHAPE = "points or lines labelled as a face (ignored)"
OTHER_NAME = "label names other than the expected ones (ignored)"
SEVERAL = "labels with several faces (all kept)"
DUPLICATE = "faces boxed twice (the first box kept)"
SIZE_MISMATCH = "labels whose image size differs from the image (box rescaled)"
EMPTY_BOX = "boxes with no area after clipping (ignored)"
NO_FACE_NAME = "labels with shapes but no face label (image skipped)"
BAD_JSON = "label files that are not valid labelme JSON (image skipped)"
BAD_IMAGE = "corrupt or unreadable images (skipped)"
ORPHAN = "labels without an image"


@dataclass(frozen=True)
class Sample:
    """One usable image: `boxes` is empty for a negative (no face)."""

    image: Path
    label: Path | None
    size: tuple[int, int]  # width, height of the real image
    boxes: tuple[Box, ...] = ()

    @property
    def has_face(self) -> bool:
        return bool(self.boxes)

    @property
    def box(self) -> Box | None:
        """The largest face box (for single-face views such as the label table), None for a negative."""
        return max(self.boxes, key=box_area) if self.boxes else None

    def normalised_boxes(self) -> list[tuple[float, float, float, float]]:
        w, h = self.size
        return [(x1 / w, y1 / h, x2 / w, y2 / h) for x1, y1, x2, y2 in self.boxes]

    def normalised_box(self) -> tuple[float, float, float, float] | None:
        if self.box is None:
            return None
        w, h = self.size
        x1, y1, x2, y2 = self.box
        return (x1 / w, y1 / h, x2 / w, y2 / h)


def box_area(box: Box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


@dataclass
class Scan:
    """Everything found in an images/labels folder pair."""

    samples: list[Sample] = field(default_factory=list)
    quirks: Counter = field(default_factory=Counter)
    skipped: list[str] = field(default_factory=list)  # one line per skipped file: "<path>: <reason>"
    other_names: Counter = field(default_factory=Counter)
    images_found: int = 0

    @property
    def faces(self) -> int:
        return sum(s.has_face for s in self.samples)

    @property
    def negatives(self) -> int:
        return sum(not s.has_face for s in self.samples)


@dataclass
class ParsedLabel:
    boxes: list[Box]
    quirks: Counter
    other_names: Counter
    usable: bool = True  # False when the file has shapes but none named as a face


def read_label_json(label_path: Path) -> dict:
    """Load a labelme file, or raise FacetrackerError saying why it is not one."""
    try:
        data = json.loads(Path(label_path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FacetrackerError("label file not found", label_path) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FacetrackerError(f"label is not valid JSON ({exc.__class__.__name__})", label_path,
                               "re-save it in labelme or delete it") from None
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        raise FacetrackerError("label has no 'shapes' list, not a labelme file", label_path,
                               "re-save it in labelme or delete it")
    return data


def parse_label(label_path: Path, image_size: tuple[int, int],
                face_labels: tuple[str, ...] = FACE_LABELS) -> ParsedLabel:
    """The face boxes of one labelme file, in pixels of the real image of size (width, height)."""
    data = read_label_json(label_path)
    quirks: Counter = Counter()
    other_names: Counter = Counter()
    width, height = image_size
    sx, sy = _label_scale(data, image_size, quirks)
    boxes = []
    for shape in data["shapes"]:
        if not isinstance(shape, dict):
            raise FacetrackerError("label has a shape that is not an object", label_path,
                                   "re-save it in labelme or delete it")
        name = str(shape.get("label", ""))
        if name not in face_labels:
            other_names[name] += 1
            quirks[OTHER_NAME] += 1
            continue
        box = _shape_box(shape, label_path, quirks)
        if box is None:
            continue
        x1, y1, x2, y2 = box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy
        clipped = (max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2))
        if clipped != (x1, y1, x2, y2):
            quirks[CLIPPED] += 1
        if clipped[2] - clipped[0] < 1 or clipped[3] - clipped[1] < 1:
            quirks[EMPTY_BOX] += 1
            continue
        if boxes and iou_matrix([clipped], boxes).max() >= config.LABEL_DUPLICATE_IOU:
            # One face drawn twice: kept as two, it would train one face twice and count a face no detector can
            # find a second time (each detection matches one face).
            quirks[DUPLICATE] += 1
            continue
        boxes.append(clipped)
    if len(boxes) > 1:
        quirks[SEVERAL] += 1
    usable = bool(boxes) or not other_names
    if not usable:
        quirks[NO_FACE_NAME] += 1
    return ParsedLabel(boxes=boxes, quirks=quirks, other_names=other_names, usable=usable)


def _label_scale(data: dict, image_size: tuple[int, int], quirks: Counter) -> tuple[float, float]:
    # A label drawn on a differently sized copy of the image: scale its points to the real image.
    try:
        label_w, label_h = float(data["imageWidth"]), float(data["imageHeight"])
    except (KeyError, TypeError, ValueError):
        return 1.0, 1.0
    if label_w <= 0 or label_h <= 0 or (int(label_w), int(label_h)) == tuple(image_size):
        return 1.0, 1.0
    quirks[SIZE_MISMATCH] += 1
    return image_size[0] / label_w, image_size[1] / label_h


def _shape_box(shape: dict, label_path: Path, quirks: Counter) -> Box | None:
    try:
        points = [(float(x), float(y)) for x, y in shape.get("points", [])]
    except (TypeError, ValueError):
        raise FacetrackerError("label has a shape with malformed points", label_path,
                               "re-save it in labelme or delete it") from None
    kind = shape.get("shape_type") or "polygon"  # labelme omits shape_type for polygons in old files
    if kind == "rectangle" and len(points) == 2:
        (x1, y1), (x2, y2) = points
        if x1 > x2 or y1 > y2:
            quirks[REVERSED] += 1
        return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
    if kind == "circle" and len(points) == 2:
        (cx, cy), (px, py) = points
        r = ((px - cx) ** 2 + (py - cy) ** 2) ** 0.5
        quirks[NOT_RECTANGLE] += 1
        return (cx - r, cy - r, cx + r, cy + r)
    if kind in ("polygon", "rectangle") and len(points) >= 3:
        xs, ys = zip(*points)
        quirks[NOT_RECTANGLE] += 1
        return (min(xs), min(ys), max(xs), max(ys))
    quirks[UNUSABLE_SHAPE] += 1
    return None


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image, decoding it to be sure it is readable."""
    from facetracker.files import read_image

    image = read_image(path)
    return int(image.shape[1]), int(image.shape[0])


def scan(images_dir: Path, labels_dir: Path, face_labels: tuple[str, ...] = FACE_LABELS) -> Scan:
    """Pair every image with its label by file stem; skip (and report) what cannot be used."""
    images = list_images(images_dir)
    labels_dir = Path(labels_dir)
    label_files = {p.stem: p for p in labels_dir.glob("*.json")} if labels_dir.is_dir() else {}
    result = Scan(images_found=len(images))
    for image in images:
        label = label_files.pop(image.stem, None)
        try:
            size = image_size(image)
        except FacetrackerError as exc:
            result.quirks[BAD_IMAGE] += 1
            result.skipped.append(str(exc))
            continue
        if label is None:
            result.samples.append(Sample(image, None, size))
            continue
        try:
            parsed = parse_label(label, size, face_labels)
        except FacetrackerError as exc:
            result.quirks[BAD_JSON] += 1
            result.skipped.append(str(exc))
            continue
        result.quirks.update(parsed.quirks)
        result.other_names.update(parsed.other_names)
        if not parsed.usable:
            names = ", ".join(repr(n) for n in parsed.other_names)
            result.skipped.append(f"no face label in {label} (found {names}; add --label NAME to count it as a face)")
            continue
        result.samples.append(Sample(image, label, size, tuple(parsed.boxes)))
    result.quirks[ORPHAN] += len(label_files)
    result.skipped.extend(f"label without an image: {p}" for p in sorted(label_files.values()))
    return result


def resolve_face_labels(labels_dirs: Path | str | Iterable[Path | str], requested: tuple[str, ...] = FACE_LABELS,
                        explicit: bool = False) -> tuple[tuple[str, ...], str | None]:
    """The label names that count as a face in these label folders, and a one-line note when they were inferred.

    People name the face rectangle after themselves (`Semih`) or the class (`human face`); with the default
    `face` every such image would be skipped as unusable. So, unless --label was given (`explicit`, which always
    wins): a folder whose labels all share one name uses that name; several names with no face label among them
    stop with one line, because guessing which of them is the face would silently train on the wrong boxes.
    Only the shapes' `label` fields are read; files that are not labelme JSON are left for `scan` to report."""
    requested = tuple(requested)
    if explicit:
        return requested, None
    folders = [Path(labels_dirs)] if isinstance(labels_dirs, (str, Path)) else [Path(d) for d in labels_dirs]
    names: Counter = Counter()
    for folder in folders:
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
            try:
                shapes = read_label_json(path)["shapes"]
            except FacetrackerError:
                continue
            names.update(str(shape.get("label", "")) for shape in shapes if isinstance(shape, dict))
    if not names or any(name in names for name in requested):
        return requested, None
    if len(names) == 1:
        (name,) = names
        return (name,), f"note: every label is named {name!r}; using it as the face label (pass --label to choose)"
    from shlex import quote

    found = ", ".join(f"{name!r} ({count}x)" for name, count in names.most_common())
    where = ", ".join(str(folder) for folder in folders if folder.is_dir())
    raise FacetrackerError(f"no {' / '.join(map(repr, requested))} label, and the labels use several names: {found}",
                           where, "pass the face's name, e.g. " +
                           " or ".join(f"--label {quote(name)}" for name, _ in names.most_common(2)) +
                           " (repeat --label to count several names as faces)")
