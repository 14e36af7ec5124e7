"""Opening a frame source: a device index ("0"), a video file or a stream URL, all through cv2.VideoCapture."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from facetracker.errors import FacetrackerError

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


class SourceEnded(FacetrackerError):
    """A live source stopped delivering frames (unplugged camera, dropped stream)."""

    exit_code = 3


def parse_source(source: str | int | Path) -> int | str:
    """A device index as int, anything else (file path or URL) as str."""
    if isinstance(source, int):
        return source
    text = str(source).strip()
    return int(text) if text.isdigit() else text


def is_live(source: str | int | Path) -> bool:
    """Cameras and network streams are live (drop frames when slow); video files are not."""
    parsed = parse_source(source)
    return isinstance(parsed, int) or bool(_URL.match(parsed))


def describe(source: str | int | Path) -> str:
    parsed = parse_source(source)
    return f"camera {parsed}" if isinstance(parsed, int) else str(parsed)


def open_source(source: str | int | Path) -> cv2.VideoCapture:
    """Open a capture and read nothing yet; raise one clear error when it cannot be opened."""
    parsed = parse_source(source)
    if isinstance(parsed, str) and not _URL.match(parsed) and not Path(parsed).exists():
        raise FacetrackerError("video file not found", parsed, "give a device index like 0, a video file or a URL")
    capture = cv2.VideoCapture(parsed)
    if not capture.isOpened():
        capture.release()
        hint = ("check the camera is connected and not used by another program, or try another index"
                if isinstance(parsed, int) else "check the file plays and the URL is reachable")
        raise FacetrackerError("cannot open video source", describe(source), hint)
    return capture


def read_frames(capture: cv2.VideoCapture, source: str | int | Path) -> Iterator[np.ndarray]:
    """Yield BGR frames in order until the source ends.

    A video file simply ends; a camera or stream that stops delivering frames raises SourceEnded."""
    delivered = 0
    while True:
        ok, frame = capture.read()
        if not ok or frame is None:
            if is_live(source) or delivered == 0:
                what = "no frame could be read from" if delivered == 0 else "the source stopped delivering frames"
                raise SourceEnded(what, describe(source),
                                  "check the camera or stream; frames already saved were kept")
            return
        delivered += 1
        yield frame
