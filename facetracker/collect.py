"""`facetracker collect`: save frames from a camera, video file or stream as <uuid1>.jpg images.

Timing: for a live source (camera, stream URL) `interval` is wall-clock seconds between saved frames.
For a video file it is measured on the file's own timeline (frame index / fps), so collecting from a
file is as fast as decoding and always picks the same frames.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from facetracker import config
from facetracker.camera import SourceEnded, describe, is_live, open_source, read_frames
from facetracker.display import display_problem
from facetracker.errors import FacetrackerError
from facetracker.files import ensure_writable_dir, write_image_atomic
from facetracker.output import say

PREVIEW_WINDOW = "facetracker collect (q quits)"
FALLBACK_FPS = 30.0  # some containers do not say their frame rate
# A container's frame count can be an estimate (duration x fps); only a clear shortfall means damage.
TRUNCATION_SLACK = 2


@dataclass
class CollectResult:
    source: str
    requested: int
    saved: list[Path] = field(default_factory=list)
    quit_by_user: bool = False
    video_ended: bool = False  # a video file had fewer frames than needed (not an error)


def collect_frames(camera: str | int = "0", count: int = config.COLLECT_COUNT,
                   interval: float = config.COLLECT_INTERVAL, out_dir: Path = config.DATA_DIR / config.IMAGES,
                   preview: bool = True, console: Console | None = None) -> CollectResult:
    """Save `count` frames from `camera` into `out_dir`, one every `interval` seconds; return what was saved."""
    if count < 1 or not math.isfinite(interval) or interval < 0:
        raise FacetrackerError("count must be at least 1 and interval a number of seconds >= 0",
                               f"count={count}, interval={interval}")
    console = console or Console()
    out_dir = ensure_writable_dir(out_dir)
    capture = open_source(camera)
    result = CollectResult(source=describe(camera), requested=count)
    window = None
    started = time.monotonic()
    try:
        window = _PreviewWindow.open(console) if preview else None
        with _progress(console) as progress:
            task = progress.add_task(f"saving frames from {result.source}", total=count)
            for frame in _frames_to_save(capture, camera, interval, result, window):
                result.saved.append(_save_frame(frame, out_dir, result))
                progress.advance(task)
                if len(result.saved) == count:
                    break
    except SourceEnded as exc:
        raise SourceEnded(f"{exc.what} (saved {len(result.saved)} of {count})", exc.where, exc.fix) from None
    finally:
        capture.release()
        if window:
            window.close()
    _report(result, out_dir, time.monotonic() - started, console)
    return result


def _frames_to_save(capture: cv2.VideoCapture, camera, interval: float, result: CollectResult,
                    window: _PreviewWindow | None) -> Iterator[np.ndarray]:
    """Yield the frames that are due, showing every frame in the preview; stop on q or end of file."""
    live = is_live(camera)
    fps = _file_fps(capture)
    first = last = None
    delivered = 0
    for index, frame in enumerate(read_frames(capture, camera)):
        delivered += 1
        if window and not window.show(frame, len(result.saved), result.requested):
            result.quit_by_user = True
            return
        now = time.monotonic() if live else index / fps
        if first is None:
            due = True
        elif live:  # relative to the last save, so a camera stall does not cause a burst of saves
            due = now - last >= interval
        else:  # anchored to the start, so the average spacing is exact whatever the fps
            due = now - first + 1e-6 >= len(result.saved) * interval
        if due:
            first = now if first is None else first
            last = now
            yield frame
    if not live:
        _check_not_truncated(capture, camera, delivered)
        result.video_ended = True


def _file_fps(capture: cv2.VideoCapture) -> float:
    fps = capture.get(cv2.CAP_PROP_FPS)
    return fps if math.isfinite(fps) and 0 < fps < 1000 else FALLBACK_FPS


def _check_not_truncated(capture: cv2.VideoCapture, camera, delivered: int) -> None:
    # A cut-off download or a file still being written ends early: OpenCV just stops, the header still
    # promises the full length. Treat that as a source that died, not as a short video.
    expected = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    if math.isfinite(expected) and delivered + TRUNCATION_SLACK < expected:
        raise SourceEnded(f"the video stopped at frame {delivered} of the {int(expected)} its header promises "
                          "(truncated or damaged file)", describe(camera),
                          "re-copy or re-export the video; frames already saved were kept")


def _save_frame(frame: np.ndarray, out_dir: Path, result: CollectResult) -> Path:
    path = out_dir / f"{uuid.uuid1()}.jpg"
    try:
        write_image_atomic(path, frame)
    except OSError as exc:
        raise FacetrackerError(f"cannot write frame ({exc.strerror or exc})", path,
                               f"free some space or fix permissions; the {len(result.saved)} frames "
                               "already saved were kept") from None
    return path


def _progress(console: Console) -> Progress:
    # Only on a terminal: in a log file or a pipe a progress bar is noise.
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True, disable=not console.is_terminal)


def _report(result: CollectResult, out_dir: Path, seconds: float, console: Console) -> None:
    saved = len(result.saved)
    if result.video_ended and saved < result.requested:
        say(Console(stderr=True), f"warning: {result.source} ended after {saved} of {result.requested} frames; "
             "kept them (use a longer video or a smaller --interval)")
    how = " (stopped with q)" if result.quit_by_user else ""
    say(console, f"saved {saved} frame{'s' * (saved != 1)} from {result.source} to {out_dir} in {seconds:.1f} s{how}"
         " — next: facetracker label")



class _PreviewWindow:
    """An OpenCV window showing every frame read, with the save count; q or closing it stops early."""

    def __init__(self):
        cv2.namedWindow(PREVIEW_WINDOW, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)  # no Qt toolbar

    @classmethod
    def open(cls, console: Console) -> _PreviewWindow | None:
        problem = display_problem(wayland_ok=False)
        if not problem:
            try:
                return cls()
            except cv2.error as exc:  # e.g. the opencv-python-headless build has no GUI
                problem = f"OpenCV cannot open windows ({exc.err or exc})"
        say(console, f"note: no preview window: {problem}")  # stdout: stderr is kept for the one error line
        return None

    def show(self, frame: np.ndarray, saved: int, requested: int) -> bool:
        """Show the frame; False when the user pressed q / Esc or closed the window."""
        shown = frame.copy()
        cv2.putText(shown, f"saved {saved}/{requested}  (q quits)", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8,
                    (0, 255, 0), 2, cv2.LINE_AA)
        cv2.imshow(PREVIEW_WINDOW, shown)
        key = cv2.waitKey(1) & 0xFF
        closed = cv2.getWindowProperty(PREVIEW_WINDOW, cv2.WND_PROP_VISIBLE) < 1
        return key not in (ord("q"), ord("Q"), 27) and not closed

    def close(self) -> None:
        cv2.destroyWindow(PREVIEW_WINDOW)
        cv2.waitKey(1)  # lets the GUI thread actually remove the window
