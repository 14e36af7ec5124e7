"""One source image -> its augmented variants, background crops and pasted faces on disk. Runs inside worker
processes.

Every face box of the label goes along: a variant's label lists the faces it still shows,
{"image": "<stem>.<k>.jpg", "bboxes": [[x1, y1, x2, y2], ...] normalised, "class": 1}, or "bboxes": [] and
"class": 0 when it shows none."""

from __future__ import annotations

import functools
import json
import signal
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facetracker import config
from facetracker.augment_pipeline import (background_pipeline, background_regions, canvas_pipeline, image_seed,
                                          paste_face, paste_pipeline, seed_pipeline, variant_pipeline)
from facetracker.errors import FacetrackerError
from facetracker.files import read_image
from facetracker.labels import Box, parse_label


@dataclass(frozen=True)
class ImageTask:
    """One source image: everything a worker process needs (picklable)."""

    part: str
    image: Path
    label: Path | None
    out_dir: Path  # <partial output>/<part>
    variants: int
    background_crops: int
    seed: int
    size: int
    face_labels: tuple[str, ...]
    pastes: int = 0  # faces pasted onto other images' backgrounds (needs a face and paste_sources)
    paste_sources: tuple[tuple[Path, Path | None], ...] = ()  # (image, label) of the other images of the part


@dataclass
class ImageResult:
    part: str
    image: str
    variants: int = 0  # augmented variants written (class 1 or 0)
    faces: int = 0  # of which still show a face (class 1)
    cut_out: int = 0  # of which crops cut every face out (class 0)
    dropped: int = 0  # face boxes left out of variants: too little of the face visible after the crop
    background: int = 0  # face-free background crops written (class 0)
    pasted: int = 0  # a face pasted onto another image's background (class 1)
    skipped: str | None = None  # why the image could not be used
    quirks: Counter = field(default_factory=Counter)


# Building a pipeline (argument validation, one generator per transform) costs ~10 ms: build one per output size
# and worker, and re-seed it for every image, which is all that makes an image's output reproducible.
_variant_pipeline = functools.lru_cache(maxsize=4)(variant_pipeline)
_background_pipeline = functools.lru_cache(maxsize=4)(background_pipeline)
_paste_pipeline = functools.lru_cache(maxsize=4)(paste_pipeline)
_canvas_pipeline = functools.lru_cache(maxsize=4)(canvas_pipeline)


def init_worker() -> None:
    # Ctrl-C reaches the whole process group: the parent alone handles it (stops the pool, deletes the partial
    # output), so workers ignore it instead of each printing a traceback. One OpenCV thread per worker process:
    # the pool already uses every core.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)


def augment_image(task: ImageTask) -> ImageResult:
    """Write task.variants augmented copies (+ background crops and pasted faces when there is a face); never raises
    for bad input."""
    result = ImageResult(part=task.part, image=task.image.name)
    try:
        image, boxes, result.quirks = load(task.image, task.label, task.face_labels)
    except FacetrackerError as exc:
        result.skipped = str(exc)
        return result
    _write_variants(task, image, boxes, result)
    if boxes and task.background_crops:
        _write_background(task, image, boxes, result)
    if boxes and task.pastes and task.paste_sources:
        _write_pastes(task, image, boxes, result)
    return result


def load(image_path: Path, label_path: Path | None, face_labels: tuple[str, ...]):
    """(RGB image, every face box in pixels (empty for a negative), label quirks); FacetrackerError when the image
    or label is unusable."""
    image = read_image(image_path)
    boxes, quirks = read_face_boxes(label_path, face_labels, image.shape[1], image.shape[0])
    # albumentations' colour transforms (RGB shift, hue, grayscale weights) expect RGB.
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), boxes, quirks


def read_face_boxes(label_path: Path | None, face_labels: tuple[str, ...], width: int,
                    height: int) -> tuple[tuple[Box, ...], Counter]:
    if label_path is None:
        return (), Counter()
    parsed = parse_label(label_path, (width, height), face_labels)
    if not parsed.usable:
        names = ", ".join(repr(n) for n in parsed.other_names)
        raise FacetrackerError(f"no face label (found {names})", label_path,
                               "add --label NAME to count that name as a face")
    return tuple(parsed.boxes), parsed.quirks


def _write_variants(task: ImageTask, image, boxes: tuple[Box, ...], result: ImageResult) -> None:
    pipeline = seed_pipeline(_variant_pipeline(task.size), image_seed(task.seed, task.image.stem))
    for k in range(task.variants):
        out = pipeline(image=image, bboxes=list(boxes), classes=[1] * len(boxes))
        shown = normalise_all(out["bboxes"], task.size)
        result.dropped += len(boxes) - len(shown)
        result.cut_out += bool(boxes) and not shown
        result.faces += bool(shown)
        write_sample(task.out_dir, f"{task.image.stem}.{k}", out["image"], shown)
        result.variants += 1


def _write_background(task: ImageTask, image, boxes: tuple[Box, ...], result: ImageResult) -> None:
    height, width = image.shape[:2]
    rng = np.random.default_rng(image_seed(task.seed, task.image.stem, "background"))
    regions = background_regions(width, height, boxes, task.background_crops, rng)
    pipeline = seed_pipeline(_background_pipeline(task.size),
                             image_seed(task.seed, task.image.stem, "bg-pixels"))
    for j, (x1, y1, x2, y2) in enumerate(regions):
        out = pipeline(image=np.ascontiguousarray(image[y1:y2, x1:x2]))
        write_sample(task.out_dir, f"{task.image.stem}.{task.variants + j}", out["image"], [])
        result.background += 1


def _write_pastes(task: ImageTask, image, boxes: tuple[Box, ...], result: ImageResult) -> None:
    """The faces pasted, one per picture and taking turns, onto face-free regions of other images of the same
    part (backgrounds of other rooms). The canvas shows no face, so the pasted face (and any other face its
    margin brought along) are the picture's boxes."""
    rng = np.random.default_rng(image_seed(task.seed, task.image.stem, "paste"))
    pipeline = seed_pipeline(_paste_pipeline(task.size), image_seed(task.seed, task.image.stem, "paste-pixels"))
    first = task.variants + result.background
    for j in range(task.pastes):
        canvas = _background_canvas(task, rng)
        if canvas is None:
            return
        composed, pasted = paste_face(canvas, image, boxes, j % len(boxes), rng)
        out = pipeline(image=composed, bboxes=pasted, classes=[1] * len(pasted))
        write_sample(task.out_dir, f"{task.image.stem}.{first + j}", out["image"],
                     normalise_all(out["bboxes"], task.size))
        result.pasted += 1


def _background_canvas(task: ImageTask, rng: np.random.Generator, tries: int = 5):
    """A size x size face-free picture: a region clear of every face of a random other image (a negative: all of
    it). None when no usable source turns up."""
    for _ in range(tries):
        image_path, label_path = task.paste_sources[int(rng.integers(len(task.paste_sources)))]
        try:
            other, other_boxes = _load_source(image_path, label_path, task.face_labels)
        except FacetrackerError:
            continue
        height, width = other.shape[:2]
        regions = background_regions(width, height, other_boxes, 1, rng) if other_boxes else [(0, 0, width, height)]
        if not regions:
            continue
        x1, y1, x2, y2 = regions[0]
        return _canvas_pipeline(task.size)(image=np.ascontiguousarray(other[y1:y2, x1:x2]))["image"]
    return None


@functools.lru_cache(maxsize=32)
def _load_source(image_path: Path, label_path: Path | None, face_labels: tuple[str, ...]):
    """(RGB image, face boxes) of another image, cached: the same few are drawn many times per worker."""
    image, boxes, _ = load(image_path, label_path, face_labels)
    return image, boxes


def normalise_all(boxes, size: int) -> list[list[float]]:
    """Pixel boxes of the size x size output -> the normalised ones that still have an area."""
    return [box for box in (normalise(b, size) for b in boxes) if box is not None]


def normalise(box, size: int) -> list[float] | None:
    """Pixel box of the size x size output -> [x1, y1, x2, y2] in [0, 1], or None if nothing is left of it."""
    x1, y1, x2, y2 = (min(max(float(v) / size, 0.0), 1.0) for v in box[:4])
    if x2 <= x1 or y2 <= y1:
        return None
    return [round(x1, 6), round(y1, 6), round(x2, 6), round(y2, 6)]


def write_sample(out_dir: Path, name: str, image_rgb, boxes: list[list[float]]) -> None:
    """Write one augmented image and its label (plain writes: the whole output folder is published atomically).

    class 1 when the picture shows at least one face, 0 with no boxes otherwise."""
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, config.JPEG_QUALITY])
    if not ok:
        raise FacetrackerError("could not encode image", out_dir / name)
    (out_dir / config.IMAGES / f"{name}.jpg").write_bytes(encoded.tobytes())
    label = {"image": f"{name}.jpg", "bboxes": boxes, "class": 1 if boxes else 0}
    (out_dir / config.LABELS / f"{name}.json").write_text(json.dumps(label) + "\n", encoding="utf-8")
