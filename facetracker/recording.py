"""Writing an annotated video that is always complete and playable, even when the run is cut short.

Frames go to a hidden temporary file beside the target (same suffix, so OpenCV picks the same container); closing
releases the writer (which writes the index an .mp4 needs to play) and renames the file into place. Whatever stops
the run, the caller closes the recorder in `finally`, so the user gets every frame recorded so far in a file that
plays, and never a half-written one under the real name.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import cv2
import numpy as np

from facetracker import config
from facetracker.errors import FacetrackerError
from facetracker.files import ensure_writable_dir


def check_record_path(path: Path, force: bool = False) -> Path:
    """Refuse early (before a camera or model is opened) what could not be recorded."""
    path = Path(path)
    if path.suffix.lower() not in config.RECORD_FOURCC:
        raise FacetrackerError(f"cannot record '{path.suffix or 'no suffix'}' videos", path,
                               f"name the file {' or '.join(sorted(set(config.RECORD_FOURCC)))} (.mp4 or .avi play everywhere)")
    if path.is_dir():
        raise FacetrackerError("recording path is a folder", path, "give a file name such as out.mp4")
    if path.exists() and not force:
        raise FacetrackerError("recording already exists", path, "choose another name or pass --force to overwrite it")
    ensure_writable_dir(path.parent if str(path.parent) else Path("."))
    return path


class VideoRecorder:
    """cv2.VideoWriter that opens on the first frame (its size) and publishes the file only on close()."""

    def __init__(self, path: Path, fps: float, force: bool = False):
        self.path = check_record_path(path, force)
        self.fps = fps
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None
        self._tmp: Path | None = None

    def __enter__(self) -> VideoRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _open(self, frame: np.ndarray) -> None:
        # A fresh name the writer creates itself (mkstemp would leave the video readable by its owner only).
        self._tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.tmp{self.path.suffix}")
        height, width = frame.shape[:2]
        fourcc = cv2.VideoWriter_fourcc(*config.RECORD_FOURCC[self.path.suffix.lower()])
        self._writer = cv2.VideoWriter(str(self._tmp), fourcc, self.fps, (width, height))
        if not self._writer.isOpened():
            self._tmp.unlink(missing_ok=True)
            self._writer = self._tmp = None
            raise FacetrackerError("cannot write video with OpenCV", self.path, "record to .avi (MJPG) instead")

    def write(self, frame: np.ndarray) -> None:
        if self._writer is None:
            self._open(frame)
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the file and move it into place; None (and no file) when no frame was written."""
        writer, tmp = self._writer, self._tmp
        self._writer = self._tmp = None
        if writer is None or tmp is None:
            return None
        writer.release()
        if self.frames == 0:
            tmp.unlink(missing_ok=True)
            return None
        os.replace(tmp, self.path)
        return self.path


def count_video_frames(path: Path) -> int:
    """Decode the whole file and count the frames: proof that it plays (container frame counts can lie)."""
    capture = cv2.VideoCapture(str(path))
    frames = 0
    try:
        while capture.isOpened() and capture.read()[0]:
            frames += 1
    finally:
        capture.release()
    return frames
