"""`facetracker predict`: every face in images, folders of images and video files, as annotated copies and JSONL.

One JSON line per image or video frame: "faces" lists every face at or above the threshold, best first, and
"score"/"box" repeat the best one (its score even below the threshold) so readers of the single-face format keep
working. An image is seen as a still image (inference.still_faces: as it is and mirrored, and a big photo in tiles
too, for the small faces of a group); video frames are detected one by one, each seen once, without track ids.

Every SOURCE is checked before any work starts (a missing one is one clear error), and so is every output
name (nothing is overwritten without --force). A corrupt or unreadable file is skipped with a warning and
counted, never a reason to stop. Outputs are written atomically: annotated images one by one, the JSONL file
once at the end, each annotated video when it is complete.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from facetracker import config
from facetracker.errors import FacetrackerError
from facetracker.files import atomic_path, ensure_writable_dir, list_images, read_image, write_image_atomic
from facetracker.inference import still_faces

VIDEO_OUT_SUFFIX = ".avi"  # MJPG in AVI: OpenCV writes it everywhere, every player reads it


@dataclass
class Item:
    """One input file and where its annotated copy goes."""

    path: Path
    kind: str  # "image" | "video" | "unknown"
    out: Path | None = None


@dataclass
class PredictSummary:
    images: int = 0
    frames: int = 0  # video frames
    faces: int = 0  # images/frames with at least one face at or above the threshold
    face_boxes: int = 0  # faces at or above the threshold, over all images and frames
    skipped: list[str] = field(default_factory=list)  # "<path>: <reason>"
    written: list[Path] = field(default_factory=list)
    jsonl: Path | None = None


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in config.IMAGE_SUFFIXES:
        return "image"
    if suffix in config.VIDEO_SUFFIXES:
        return "video"
    return "unknown"


def collect_items(sources: list[Path]) -> list[Item]:
    """Expand sources (image, video, folder of images) in order; a missing source is an error."""
    if not sources:
        raise FacetrackerError("no SOURCE given", None, "pass images, folders of images or video files")
    missing = [s for s in map(Path, sources) if not s.exists()]
    if missing:
        raise FacetrackerError("source not found", missing[0], "check the path (images, folders or videos)")
    items: list[Item] = []
    for source in map(Path, sources):
        if source.is_dir():
            images = list_images(source)
            if not images:
                raise FacetrackerError("no images in folder", source, "pass a folder containing .jpg/.png images")
            items.extend(Item(path, "image") for path in images)
        else:
            items.append(Item(source, _kind(source)))
    return items


def plan_outputs(items: list[Item], out_dir: Path | None, force: bool) -> None:
    """Give every item a unique output name in out_dir; refuse up front to overwrite anything."""
    if out_dir is None:
        return
    used: set[str] = set()
    for item in items:
        if item.kind == "unknown":
            continue
        stem, suffix = item.path.stem, item.path.suffix if item.kind == "image" else VIDEO_OUT_SUFFIX
        name, n = f"{stem}{suffix}", 1
        while name.lower() in used:  # same file name from two folders: keep both
            n += 1
            name = f"{stem}-{n}{suffix}"
        used.add(name.lower())
        item.out = Path(out_dir) / name
    inputs = {item.path.resolve() for item in items}
    clash = next((item.out for item in items if item.out is not None and item.out.resolve() in inputs), None)
    if clash is not None:  # even --force must never replace an original with its annotated copy
        raise FacetrackerError("annotated copy would replace an input file", clash, "choose another --out folder")
    existing = [item.out for item in items if item.out is not None and item.out.exists()]
    if existing and not force:
        raise FacetrackerError(f"{len(existing)} output file(s) already exist, e.g.", existing[0],
                               "pass --force to replace them or choose another --out")
    ensure_writable_dir(out_dir)


def predict(sources: list[Path], detector, threshold: float = config.THRESHOLD, out_dir: Path | None = None,
            jsonl: Path | None = None, force: bool = False,
            warn: Callable[[str], None] | None = None, progress: Callable[[int], None] | None = None
            ) -> PredictSummary:
    """Detect every face in every image and video frame of `sources`."""
    warn = warn or (lambda line: print(f"warning: {line}", file=sys.stderr))
    items = collect_items(sources)
    if jsonl is not None:
        jsonl = Path(jsonl)
        if jsonl.exists() and not force:
            raise FacetrackerError("JSONL file already exists", jsonl, "pass --force to replace it or choose another")
        ensure_writable_dir(jsonl.parent)
    plan_outputs(items, out_dir, force)

    summary = PredictSummary()
    lines: list[str] = []
    for item in items:
        try:
            for record in _run_item(item, detector, threshold, summary):
                lines.append(json.dumps(record))
        except FacetrackerError as exc:
            summary.skipped.append(str(exc))
            warn(f"skipped {exc}")
        if progress:
            progress(1)
    if jsonl is not None:
        with atomic_path(jsonl) as tmp:
            tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        summary.jsonl = jsonl
    return summary


def _run_item(item: Item, detector, threshold: float, summary: PredictSummary) -> Iterator[dict]:
    if item.kind == "image":
        yield _run_image(item, detector, threshold, summary)
    elif item.kind == "video":
        yield from _run_video(item, detector, threshold, summary)
    else:
        raise FacetrackerError("not an image or video file", item.path,
                               f"use {', '.join(config.IMAGE_SUFFIXES + config.VIDEO_SUFFIXES)}")


def frame_record(detections, threshold: float) -> dict:
    """The JSON fields of one image or frame: "score" and "box" of the best face (the score even below the
    threshold, 0.0 when nothing was detected; the box null below the threshold) and "faces", every face at or
    above the threshold, best first, boxes in pixels of the original image."""
    ranked = sorted(detections, key=lambda d: d.score, reverse=True)
    best = ranked[0].to_json(threshold) if ranked else {"score": 0.0, "box": None}
    return {**best, "faces": [d.to_json(threshold) for d in ranked if d.is_face(threshold)]}


def _count(summary: PredictSummary, record: dict) -> None:
    summary.faces += bool(record["faces"])
    summary.face_boxes += len(record["faces"])


def _run_image(item: Item, detector, threshold: float, summary: PredictSummary) -> dict:
    from facetracker.draw import draw_detections

    frame = read_image(item.path)  # raises FacetrackerError for a corrupt file: skipped and counted
    detections = still_faces(detector, frame)  # a photo: mirrored, and tiles when big (a group's small faces)
    record = {"image": item.path.name, **frame_record(detections, threshold)}
    summary.images += 1
    _count(summary, record)
    if item.out is not None:
        write_image_atomic(item.out, draw_detections(frame, detections, threshold))
        summary.written.append(item.out)
    return record


def _run_video(item: Item, detector, threshold: float, summary: PredictSummary) -> Iterator[dict]:
    import cv2

    from facetracker.camera import open_source, read_frames
    from facetracker.draw import draw_detections
    from facetracker.recording import VideoRecorder

    capture = open_source(item.path)
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    recorder = VideoRecorder(item.out, fps, force=True) if item.out is not None else None  # checked in plan
    records = []
    try:
        for index, frame in enumerate(read_frames(capture, item.path)):
            detections = detector.detect(frame)
            records.append({"image": item.path.name, "frame": index, **frame_record(detections, threshold)})
            _count(summary, records[-1])
            if recorder is not None:
                recorder.write(draw_detections(frame, detections, threshold))
    except BaseException:
        if recorder is not None and recorder.close() is not None:
            item.out.unlink(missing_ok=True)  # interrupted or unreadable part-way: no partial annotated video
        raise
    finally:
        capture.release()
    summary.frames += len(records)
    if recorder is not None and recorder.close() is not None:
        summary.written.append(item.out)
    yield from records
