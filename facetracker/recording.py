"""Writing an annotated video (and the --tracks log) that is always complete and playable, even when the run is cut
short.

Frames go to a hidden temporary file beside the target (same suffix, so OpenCV picks the same container); closing
releases the writer (which writes the index an .mp4 needs to play) and renames the file into place. Whatever stops
the run, the caller closes the recorder in `finally`, so the user gets every frame recorded so far in a file that
plays, and never a half-written one under the real name.
"""

from __future__ import annotations

import json
import os
import queue
import threading
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
    """cv2.VideoWriter that opens on the first frame (its size) and publishes the file only on close().

    background=True encodes in a thread of its own: write() hands the frame over (it must not be changed
    afterwards) and returns at once, so encoding overlaps the next frame's detection on another core instead of
    adding to it. A bounded queue (config.RECORD_QUEUE_FRAMES) makes write() wait when the encoder falls behind, so
    memory stays bounded and a video file still gets every frame. close() encodes what is queued, then finishes and
    renames the file: a run cut short by Ctrl-C or a disconnect still leaves every frame written so far, playable."""

    def __init__(self, path: Path, fps: float, force: bool = False, background: bool = False,
                 queue_frames: int = config.RECORD_QUEUE_FRAMES):
        self.path = check_record_path(path, force)
        self.fps = fps
        self.frames = 0  # frames encoded into the file
        self.background = background
        self._writer: cv2.VideoWriter | None = None
        self._tmp: Path | None = None
        self._queue: queue.Queue | None = queue.Queue(maxsize=max(1, queue_frames)) if background else None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

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
        if self.background:
            self._thread = threading.Thread(target=self._encode, args=(self._writer,), name=f"encoder {self.path.name}",
                                            daemon=True)
            self._thread.start()

    def write(self, frame: np.ndarray) -> None:
        if self._writer is None:
            self._open(frame)  # in the caller's thread: a writer that cannot open is an error right here
        if self._thread is None:
            self._writer.write(frame)
            self.frames += 1
            return
        while True:  # cv2 releases the GIL while encoding, so the thread really runs beside the caller
            if self._error is not None or not self._thread.is_alive():
                raise FacetrackerError(f"the video encoder stopped ({self._error})", self.path,
                                       "check the disk has room, or record to .avi (MJPG)")
            try:
                self._queue.put(frame, timeout=0.5)
                return
            except queue.Full:
                continue

    def _encode(self, writer: cv2.VideoWriter) -> None:
        try:
            while (frame := self._queue.get()) is not None:
                writer.write(frame)
                self.frames += 1
        except BaseException as exc:  # kept for the caller's next write(); close() still publishes what was written
            self._error = exc

    def close(self) -> Path | None:
        """Encode what is queued, finish the file and move it into place; None (and no file) when no frame was
        written."""
        writer, tmp, thread = self._writer, self._tmp, self._thread
        self._writer = self._tmp = self._thread = None
        if writer is None or tmp is None:
            return None
        if thread is not None:
            while thread.is_alive():
                try:
                    self._queue.put(None, timeout=0.5)
                    break
                except queue.Full:
                    continue
            thread.join()
        writer.release()
        if self.frames == 0:
            tmp.unlink(missing_ok=True)
            return None
        os.replace(tmp, self.path)
        return self.path


def check_tracks_path(path: Path, force: bool = False) -> Path:
    """Refuse early (before a camera or model is opened) a --tracks file that could not be written."""
    path = Path(path)
    if path.is_dir():
        raise FacetrackerError("tracks path is a folder", path, "give a file name such as tracks.jsonl")
    if path.exists() and not force:
        raise FacetrackerError("tracks file already exists", path,
                               "choose another name or pass --force to overwrite it")
    ensure_writable_dir(path.parent if str(path.parent) else Path("."))
    return path


class TrackLog:
    """--tracks FILE.jsonl: one line per processed frame, in pixels of the frame (boxes clipped to it),

        {"frame": 12, "time": 0.4, "tracks": [{"id": 1, "score": 0.97, "box": [x1, y1, x2, y2]}]}

    written under its real name and flushed line by line as the run goes, so it can be followed while it grows
    and whatever stops the run (end of a video, Ctrl-C, a disconnect) leaves a file of complete lines, one per
    frame processed. Frames without a face have "tracks": []. The file is opened (and an existing one replaced, with
    --force) when the run starts; a run that processes no frame at all leaves no file."""

    def __init__(self, path: Path, force: bool = False):
        self.path = check_tracks_path(path, force)
        self.lines = 0
        try:
            self._file = open(self.path, "w", encoding="utf-8")
        except OSError as exc:
            raise FacetrackerError(f"cannot write the tracks file ({exc.strerror})", self.path,
                                   "choose another path") from None

    def __enter__(self) -> TrackLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(self, frame: int, seconds: float, tracks) -> None:
        line = json.dumps({"frame": int(frame), "time": round(float(seconds), 4),
                           "tracks": [t.to_json() for t in tracks]})
        self._file.write(line + "\n")
        self._file.flush()  # a whole line at a time reaches the file
        self.lines += 1

    def close(self) -> Path | None:
        """Close the file; None (and no file) when not a single frame was processed, like VideoRecorder."""
        if not self._file.closed:
            self._file.close()
            if self.lines == 0:
                self.path.unlink(missing_ok=True)
        return self.path if self.lines else None


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
