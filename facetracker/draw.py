"""Drawing on frames (in place, OpenCV): a detection's box and score, a track's box with its id. Shared by predict,
evaluate and live."""

from __future__ import annotations

import functools

import cv2
import numpy as np

from facetracker import config

FACE_COLOUR = (0, 200, 0)  # BGR
TRUTH_COLOUR = (255, 160, 0)
MISS_COLOUR = (0, 0, 255)
# One colour per track id (cycled), bright enough for a black caption: an id switch shows as a change of colour.
TRACK_COLOURS = ((0, 200, 0), (0, 165, 255), (255, 200, 0), (230, 100, 255), (0, 230, 230), (255, 120, 120),
                 (120, 255, 180), (200, 200, 200))


def _thickness(frame: np.ndarray) -> int:
    return max(1, round(min(frame.shape[:2]) / 240))  # 2 px on a 480p frame, readable on any size


def draw_box(frame: np.ndarray, box, colour=FACE_COLOUR, caption: str | None = None) -> np.ndarray:
    """A rectangle at `box` (x1, y1, x2, y2 pixels) with an optional caption above it (below at the top edge)."""
    thick = _thickness(frame)
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    cv2.rectangle(frame, (x1, y1), (x2, y2), colour, thick)
    if caption:
        scale = 0.5 * thick
        (w, h), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        top = y1 - h - base - 2 if y1 - h - base - 2 >= 0 else y1  # no room above: draw inside the box
        cv2.rectangle(frame, (x1, top), (x1 + w + 4, top + h + base + 2), colour, cv2.FILLED)
        cv2.putText(frame, caption, (x1 + 2, top + h + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick,
                    cv2.LINE_AA)
    return frame


def draw_detection(frame: np.ndarray, detection, threshold: float = config.THRESHOLD, label: str = "face",
                   colour=FACE_COLOUR) -> np.ndarray:
    """Box and "<label> 0.97" when the score reaches the threshold, else a small "no <label> 0.12" note."""
    if detection.score >= threshold:
        return draw_box(frame, detection.box, colour, f"{label} {detection.score:.2f}")
    return _draw_miss(frame, detection.score, label)


def draw_detections(frame: np.ndarray, detections, threshold: float = config.THRESHOLD, label: str = "face",
                    colour=FACE_COLOUR) -> np.ndarray:
    """Every detection reaching the threshold as box and "<label> 0.97"; with none, the small "no <label> 0.12"
    note of the best score (0.00 when there was no detection at all)."""
    faces = [d for d in detections if d.score >= threshold]
    if not faces:
        return _draw_miss(frame, max((d.score for d in detections), default=0.0), label)
    for detection in sorted(faces, key=lambda d: d.score):  # best last: its caption stays on top where boxes overlap
        draw_box(frame, detection.box, colour, f"{label} {detection.score:.2f}")
    return frame


def _draw_miss(frame: np.ndarray, score: float, label: str) -> np.ndarray:
    thick = _thickness(frame)
    cv2.putText(frame, f"no {label} {score:.2f}", (8, 8 + 12 * thick), cv2.FONT_HERSHEY_SIMPLEX,
                0.5 * thick, MISS_COLOUR, thick, cv2.LINE_AA)
    return frame


STATUS_COLOUR = (255, 255, 255)
STATUS_BACKGROUND = (0, 0, 0)


@functools.lru_cache(maxsize=1024)
def label_patch(text: str, scale: float, thick: int, colour: tuple, background: tuple) -> np.ndarray:
    """`text` in `colour` on a filled `background` box, rendered once and reused.

    Anti-aliased putText costs ~0.2 ms a call, a tenth of a frame's budget at 400 FPS; live video draws the same
    few strings ("face 0.97", "FPS 412") over and over, so copying a cached patch (~5 us) is what keeps up."""
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    patch = np.empty((h + base + 3, w + 5, 3), np.uint8)
    patch[:] = background
    cv2.putText(patch, text, (2, h + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick, cv2.LINE_AA)
    patch.flags.writeable = False  # shared by every caller
    return patch


def paste(frame: np.ndarray, patch: np.ndarray, x: int, y: int) -> np.ndarray:
    """Copy `patch` with its top-left corner at (x, y), clipped to the frame."""
    height, width = frame.shape[:2]
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + patch.shape[1], width), min(y + patch.shape[0], height)
    if x1 > x0 and y1 > y0:
        frame[y0:y1, x0:x1] = patch[y0 - y:y1 - y, x0 - x:x1 - x]
    return frame


def draw_track_box(frame: np.ndarray, box, caption: str, colour=FACE_COLOUR) -> np.ndarray:
    """draw_box's look (rectangle, filled caption above it or inside at the top edge) with a cached caption."""
    thick = _thickness(frame)
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    cv2.rectangle(frame, (x1, y1), (x2, y2), colour, thick)
    patch = label_patch(caption, 0.5 * thick, thick, (0, 0, 0), tuple(colour))
    top = y1 - patch.shape[0] + 1  # the caption's bottom row overlaps the box's top edge, as in draw_box
    top = top if top >= 0 else y1
    return paste(frame, patch, x1, top)


def track_colour(track_id: int) -> tuple[int, int, int]:
    """The colour of track `track_id` (ids start at 1)."""
    return TRACK_COLOURS[(int(track_id) - 1) % len(TRACK_COLOURS)]


def track_caption(track_id: int, score: float) -> str:
    """"#2 0.97": the track's id and its detection's score (few distinct strings, so the patches stay cached)."""
    return f"#{track_id} {score:.2f}"


def draw_tracks(frame: np.ndarray, tracks, best_score: float = 0.0) -> np.ndarray:
    """Every track's box in its colour with "#id score"; with none, a small "no face 0.12" note (the frame's best
    detection score)."""
    for track in tracks:
        draw_track_box(frame, track.box, track_caption(track.id, track.score), track_colour(track.id))
    if not tracks:
        draw_note(frame, f"no face {best_score:.2f}")
    return frame


def draw_note(frame: np.ndarray, text: str, colour=MISS_COLOUR) -> np.ndarray:
    """A short note on a dark box in the top-left corner (e.g. "no face 0.12"), cached like the captions."""
    thick = _thickness(frame)
    return paste(frame, label_patch(text, 0.5 * thick, thick, tuple(colour), STATUS_BACKGROUND), 0, 0)


def draw_status(frame: np.ndarray, fps: float, dropped: int = 0, extra: str | None = None) -> np.ndarray:
    """"FPS 412" (plus dropped frames and `extra`) on a dark box in the bottom-left corner: readable on any picture.

    Whole frames per second: a changing decimal is unreadable, and fewer distinct strings keep the cache small."""
    text = f"FPS {fps:.0f}" + (f"  dropped {dropped}" if dropped else "") + (f"  {extra}" if extra else "")
    thick = _thickness(frame)
    patch = label_patch(text, 0.5 * thick, thick, STATUS_COLOUR, STATUS_BACKGROUND)
    return paste(frame, patch, 0, frame.shape[0] - patch.shape[0])
