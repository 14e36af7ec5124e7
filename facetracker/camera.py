"""Opening a frame source: a device index ("0"), a video file or a stream URL, all through cv2.VideoCapture."""

from __future__ import annotations

import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from facetracker.errors import FacetrackerError

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def _quiet_opencv() -> None:
    # A missing camera or a refused URL makes OpenCV and FFmpeg print several WARN/ERROR lines of their own
    # around our one-line error; keep them for FACETRACKER_DEBUG=1 or when the user chose a level.
    if os.environ.get("FACETRACKER_DEBUG"):
        return
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET, read when FFmpeg first opens
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


_quiet_opencv()


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


class Frame(NamedTuple):
    image: np.ndarray  # BGR
    index: int  # position in the source (0-based); gaps mean dropped frames
    captured: float  # time.perf_counter() right after decoding
    prepared: object = None  # what the reader's `prepare` made of the image (e.g. the model input), if any


class FrameReader:
    """Decode a source in its own thread so reading overlaps the work done on the previous frame.

    Live (camera, stream, or `live=True`): only the newest frame is kept; one the consumer never took is dropped and
    counted, so slow inference shows the present instead of falling further and further behind.
    Not live (a video file): every frame, in order, through a small bounded queue (the thread waits for the consumer).

    prepare: an optional function image -> (image, prepared) run in the reader thread on every frame, so work
    that needs only the frame (mirroring, resizing it for the model) overlaps the model running on the previous one.

    read() returns the next Frame, None at the end of a file, or raises SourceEnded when a live source stops
    delivering (read fails, or nothing arrives for `stall_seconds`). An error raised by `prepare` is raised by
    read(). The reader owns the capture and releases it."""

    def __init__(self, capture: cv2.VideoCapture, source: str | int | Path, live: bool | None = None,
                 queue_frames: int = 8, stall_seconds: float = 5.0,
                 prepare: Callable[[np.ndarray], tuple[np.ndarray, object]] | None = None):
        self.capture, self.source, self.prepare = capture, source, prepare
        self.live = is_live(source) if live is None else live
        self.queue_frames, self.stall_seconds = max(1, queue_frames), stall_seconds
        self.delivered = 0  # frames decoded from the source
        self.dropped = 0  # live frames replaced by a newer one before anyone read them
        self._frames: deque[Frame] = deque()
        self._ended: BaseException | None = None  # SourceEnded, or _END for a file that finished
        self._stop = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"reader {describe(source)}", daemon=True)

    def __enter__(self) -> FrameReader:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self) -> None:
        while not self._stop:
            ok, image = self.capture.read()
            captured, prepared = time.perf_counter(), None
            if ok and image is not None and self.prepare is not None:
                try:
                    image, prepared = self.prepare(image)
                except Exception as exc:  # handed to the consumer: read() raises it
                    self._finish(exc)
                    return
            with self._changed:
                if not ok or image is None:
                    self._ended = self._end_of_source()
                    self._changed.notify_all()
                    return
                self._store(Frame(image, self.delivered, captured, prepared))
                self.delivered += 1
                self._changed.notify_all()

    def _finish(self, ended: BaseException) -> None:
        with self._changed:
            self._ended = ended
            self._changed.notify_all()

    def _end_of_source(self) -> BaseException:
        if self.live or self.delivered == 0:
            what = "no frame could be read from" if self.delivered == 0 else "the source stopped delivering frames"
            return SourceEnded(what, describe(self.source), "check the camera or stream; frames already saved were kept")
        return _END

    def _store(self, frame: Frame) -> None:  # called with the lock held
        if self.live:
            self.dropped += len(self._frames)
            self._frames.clear()
        else:
            while len(self._frames) >= self.queue_frames and not self._stop:
                self._changed.wait()
        self._frames.append(frame)

    def ready(self) -> bool:
        """A frame can be read without waiting (or the source has ended, and read() says so at once)."""
        with self._changed:
            return bool(self._frames) or self._ended is not None

    def read(self) -> Frame | None:
        with self._changed:
            arrived = self._changed.wait_for(lambda: self._frames or self._ended, timeout=self.stall_seconds)
            if self._frames:
                frame = self._frames.popleft()
                self._changed.notify_all()  # room in the queue for the decoding thread
                return frame
            if not arrived:
                raise SourceEnded(f"no frame for {self.stall_seconds:g} s from", describe(self.source),
                                  "check the camera or stream; frames already saved were kept")
            if self._ended is _END:
                return None
            raise self._ended

    def close(self) -> None:
        with self._changed:
            self._stop = True
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)
        if not self._thread.is_alive():  # a camera stuck inside read() keeps its capture; the process exit frees it
            self.capture.release()


_END = StopIteration("end of video file")
