"""`facetracker live`: track every face on a camera, video file or stream, draw them, optionally record them.

The loop: a reader thread decodes frames (camera: newest frame only, so slow inference drops frames instead of
lagging; file: every frame in order) -> Detector (compiled runtime, never model.predict; every face; with a
TFLite or ONNX file, detection workers run it on the next frames while this one is tracked and drawn) -> Tracker
(ids, association, a Kalman filter and hysteresis per face; facetracker/tracking.py) -> boxes with id and score, and
the FPS, drawn on the frame -> recorder (encoding in its own thread), --tracks log and/or window. Everything that
can stop it — end of file, --max-frames, q/Esc, a closed window, Ctrl-C/SIGTERM, a camera that stops delivering —
ends the same way: the recording is finished and renamed into place, the tracks log holds one complete line per
frame processed, and `run_live` returns the stats with the reason.
"""

from __future__ import annotations

import inspect
import json
import math
import queue
import signal
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console

from facetracker import config
from facetracker.camera import FrameReader, SourceEnded, describe, is_live, open_source
from facetracker.display import HOW_TO_GET_ONE, display_problem
from facetracker.draw import draw_status, draw_tracks
from facetracker.errors import FacetrackerError
from facetracker.files import check_keras_archive
# Light imports: the runtimes import TensorFlow/onnxruntime only when a model is loaded.
from facetracker.inference import Detector, resolve_model_path
from facetracker.output import say
from facetracker.recording import TrackLog, VideoRecorder, check_record_path, check_tracks_path
from facetracker.tracking import SMOOTHERS, Track, Tracker

QUIT_KEYS = (ord("q"), ord("Q"), 27)  # q or Esc
STATUS_REFRESH_SECONDS = 0.25
FALLBACK_FPS = 30.0  # recording frame rate when the source does not say (cameras often report 0)

# How a run ended -> exit status of `facetracker live` (0: ended normally).
ENDED_NORMALLY = ("end of video", "max frames", "quit key", "window closed")


@dataclass
class LiveStats:
    source: str
    runtime: str
    model: str = ""  # the file the detector runs (for the bundled model, the one fitted to the source's frames)
    frames: int = 0  # frames processed (detected, tracked, drawn)
    dropped: int = 0  # live frames skipped because a newer one had arrived
    seconds: float = 0.0  # from the first frame in hand to the last one done
    fps: float = 0.0
    latency_p50_ms: float = 0.0  # per frame: frame in hand -> annotated frame recorded/shown
    latency_p95_ms: float = 0.0
    faces: int = 0  # processed frames with at least one shown (tracked) face
    tracks_seen: int = 0  # distinct track ids given out: faces that were shown, each counted once per track
    most_faces: int = 0  # most faces shown in one frame
    face_boxes: int = 0  # shown faces summed over the frames (/ frames: faces per frame)
    stop_reason: str = ""
    message: str | None = None  # one line about an abnormal stop (disconnect, signal)
    record: str | None = None
    recorded_frames: int = 0
    tracks_file: str | None = None  # --tracks: the JSON-lines file, one line per processed frame
    exit_code: int = 0
    workers: int = 1  # detection workers: model copies run on the frames ahead (1: the loop runs the model itself)
    tracks: list[list[Track]] = field(default_factory=list, repr=False)  # shown tracks per frame (keep_tracks=True)
    indices: list[int] = field(default_factory=list, repr=False)  # source frame index per processed frame

    def summary(self) -> dict:
        """The JSON-able part (--json), without the per-frame tracks."""
        data = asdict(self)
        del data["tracks"], data["indices"]
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in data.items()}

    def to_json(self) -> str:
        return json.dumps(self.summary())

    def describe(self) -> str:
        line = (f"{self.frames} frames from {self.source} ({self.runtime}): {self.fps:.1f} FPS mean, latency "
                f"p50 {self.latency_p50_ms:.1f} ms, p95 {self.latency_p95_ms:.1f} ms, {self.dropped} dropped, "
                f"a face in {self.faces}, {self.tracks_seen} track{'s' * (self.tracks_seen != 1)} seen "
                f"(at most {self.most_faces} at once) — {self.stop_reason}")
        if self.record:
            line += f"\nrecording: {self.record} ({self.recorded_frames} frames)"
        if self.tracks_file:
            line += f"\ntracks: {self.tracks_file} ({self.frames} lines)"
        return line


def run_live(source: str | int | Path = "0", model: Path | str | None = None, detector=None,
             threshold: float = config.TRACK_THRESHOLD, record: Path | None = None, show: bool | None = None,
             max_frames: int | None = None, mirror: bool = False, smooth: str = config.TRACK_SMOOTHER,
             force: bool = False, live: bool | None = None, keep_tracks: bool = False,
             pace: bool | None = None, stall_seconds: float = config.LIVE_STALL_SECONDS,
             max_faces: int = config.TRACK_MAX_FACES, tracks: Path | None = None,
             workers: int = config.LIVE_DETECT_WORKERS) -> LiveStats:
    """Track every face on `source` until it ends or is stopped; return the stats (also on Ctrl-C or disconnect).

    detector: anything with detect(frame_bgr) -> list of Detections (or one Detection); None loads `model` (None:
    your trained model if models/facetracker.keras exists, else the bundled one) with load_detector, fitted to the
    source's frames. show None: show when a display exists. live None: from the source (camera/URL live, file
    not); True treats a file like a camera (drops frames). pace None: a file shown in a window plays at its own frame
    rate, otherwise as fast as possible.
    stall_seconds: a live source that delivers nothing for this long counts as disconnected.
    max_faces: at most this many tracks at once. tracks: write one JSON line per processed frame there (TrackLog).
    workers: detection workers for a TFLite/ONNX detector (_DetectAhead); 1 runs the model in the loop itself."""
    _check_options(threshold, smooth, max_frames, max_faces, workers)
    show = _resolve_show(show)
    record, tracks = _checked_outputs(record, tracks, force)  # before loading a model or opening a camera
    capture = open_source(source)  # a missing camera fails in a second, before the model loads
    try:
        frame = _frame_size(capture)
        detector = detector or load_detector(model, frame)
        _warm_up(detector, frame)
        tracker = Tracker(threshold=threshold, smooth=smooth, max_faces=max_faces)
        ahead = _DetectAhead.start(detector, tracker.low_score, workers, frame)
    except BaseException:
        capture.release()
        raise
    live = is_live(source) if live is None else live
    source_fps = _source_fps(capture)
    pace = (show and not live) if pace is None else pace
    stats = LiveStats(source=describe(source), runtime=getattr(detector, "runtime_name", type(detector).__name__),
                      model=str(getattr(detector, "source", "")))
    reader = FrameReader(capture, source, live=live, queue_frames=config.LIVE_QUEUE_FRAMES,
                         stall_seconds=stall_seconds, prepare=_frame_preparer(detector, mirror))
    clock_fps = None if live else source_fps or FALLBACK_FPS
    stats.workers = ahead.workers if ahead is not None else 1
    loop = _Loop(detector, tracker, show, stats, keep_tracks, clock_fps=clock_fps, ahead=ahead)
    recorder = None
    with _GracefulStop() as stop:
        try:
            if record is not None:
                recorder = VideoRecorder(record, source_fps or FALLBACK_FPS, force=force, background=True)
            if tracks is not None:
                loop.log = TrackLog(tracks, force=force)
            with reader:
                stats.stop_reason = loop.run(reader, recorder, max_frames, stop, source_fps if pace else None)
        except SourceEnded as exc:
            if stats.frames == 0:
                raise
            stats.stop_reason, stats.message, stats.exit_code = "source stopped", str(exc), exc.exit_code
        except KeyboardInterrupt:  # a second Ctrl-C while stopping, or one outside the loop
            stats.stop_reason, stats.message, stats.exit_code = "interrupted", "stopped by Ctrl-C", 130
        finally:
            with _GracefulStop():  # a Ctrl-C now must not leave a half-finished recording
                reader.close()
                if ahead is not None:
                    ahead.close()
                _finish(recorder, stats)
                if loop.log is not None:
                    path = loop.log.close()
                    stats.tracks_file = str(path) if path else None
                if show:
                    _close_window()
    if stop.signal and not stats.message:
        _note_signal(stats, stop.signal)
    stats.dropped = reader.dropped
    stats.tracks_seen = tracker.tracks_seen
    return stats


def _checked_outputs(record, tracks, force: bool) -> tuple[Path | None, Path | None]:
    """--record and --tracks as paths, each checked as writable (or refused) before anything starts."""
    record = Path(record) if record is not None else None
    tracks = Path(tracks) if tracks is not None else None
    if record is not None:
        check_record_path(record, force)
    if tracks is not None:
        check_tracks_path(tracks, force)
        if record is not None and tracks.resolve() == record.resolve():
            raise FacetrackerError("--tracks and --record name the same file", tracks, "give them different names")
    return record, tracks


def _note_signal(stats: LiveStats, signum: int) -> None:
    """A run stopped by Ctrl-C or kill ends as a shell reports it: exit code 128 + the signal's number."""
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    stats.stop_reason, stats.exit_code, stats.message = "interrupted", 128 + signum, f"stopped by {name}"


class _DetectAhead:
    """Runs the model on the next frames while the loop tracks and draws this one.

    Each worker thread owns a copy of the detector with a one-thread interpreter (Detector.copy). The interpreter
    lets go of the GIL while it runs, so two copies keep both cores busy on two frames at once. That does more per
    second than one interpreter splitting every frame over two threads, which waits on its own threads at each
    layer and leaves the tracking and drawing to run after it (docs/benchmarks.md, "live": detection workers).
    Frames stay in order: the loop takes their detections oldest first."""

    def __init__(self, copies: list, low: float):
        self.workers = len(copies)
        self._free: queue.SimpleQueue = queue.SimpleQueue()  # copies not running: a worker takes one per frame
        for copy in copies:
            self._free.put(_detect_function(copy, low))
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="detect")

    @classmethod
    def start(cls, detector, low: float, workers: int, frame: tuple[int, int] | None) -> "_DetectAhead | None":
        """Workers for this detector, warmed up; None for one worker, or a detector that cannot be copied (a .keras
        model runs on TensorFlow's own thread pool; Haar and other stand-ins have no copies)."""
        copy = getattr(detector, "copy", None)
        if workers < 2 or copy is None:
            return None
        copies = [copy(threads=config.LIVE_WORKER_THREADS) for _ in range(workers)]
        if None in copies:
            return None
        for each in copies:
            _warm_up(each, frame)
        return cls(copies, low)

    def submit(self, frame) -> Future:
        return self._pool.submit(self._detect, frame)

    def _detect(self, frame) -> list:
        """The frame's detections, as the loop alone would find them (_detect_function, on a copy of its own)."""
        detect = self._free.get()
        try:
            return detect(frame)
        finally:
            self._free.put(detect)

    def close(self) -> None:
        """Drop the frames not started and wait for the running ones (their interpreters must outlive them)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


class _Loop:
    """One frame at a time, in order: detect, track, draw, record, log, show; collects the stats.

    clock_fps: a video file's frame rate, so a frame's "time" in the tracks log is its place in the video; None
    (live sources): seconds since the first frame was captured. ahead: detection workers that run the model on the
    next frames meanwhile (None: the loop runs the model itself)."""

    def __init__(self, detector, tracker: Tracker, show: bool, stats: LiveStats, keep_tracks: bool,
                 clock_fps: float | None = None, ahead: _DetectAhead | None = None):
        self.detector, self.tracker, self.show = detector, tracker, show
        self.ahead = ahead
        self.source_ended: SourceEnded | None = None  # a live source stopped while frames were still in hand
        self.stats, self.keep_tracks = stats, keep_tracks
        self.log: TrackLog | None = None
        self.clock_fps = clock_fps
        self.first_captured: float | None = None
        self._detect = _detect_function(detector, tracker.low_score) if detector is not None else None
        self.latencies: list[float] = []
        self.done_times: deque[float] = deque(maxlen=30)  # recent frame completions, for the on-screen FPS
        self.status = (0.0, 0)  # (FPS, dropped) on screen, refreshed a few times a second to stay readable
        self.status_time = 0.0

    def run(self, reader: FrameReader, recorder, max_frames: int | None, stop: _GracefulStop,
            pace_fps: float | None) -> str:
        stats, first = self.stats, None
        pending: deque = deque()  # (frame, when it was in hand, its detections' Future or None), oldest first
        try:
            while max_frames is None or stats.frames < max_frames:
                if stop.signal:
                    return "interrupted"
                self._read_ahead(reader, pending, max_frames)
                if not pending:
                    if self.source_ended is not None:
                        raise self.source_ended  # after the frames read before it stopped
                    return "end of video"
                frame, start, detected = pending.popleft()
                first = first or start
                image = frame.image  # mirrored by the reader when asked
                detections = detected.result() if detected is not None else self._detect(frame)
                tracks = self.tracker.update(detections, (image.shape[1], image.shape[0]))
                draw_tracks(image, tracks, _best_score(detections))
                draw_status(image, *self._status(start, reader.dropped))
                if recorder is not None:
                    recorder.write(image)  # handed over: the encoder thread owns it from here
                if self.log is not None:
                    self.log.write(frame.index, self._time(frame), tracks)
                if self.show:
                    cv2.imshow(config.LIVE_WINDOW, image)
                done = time.perf_counter()
                self._count(frame.index, tracks, done - start, done)
                if self.show:
                    reason = _handle_window(_pace_delay_ms(pace_fps, start))
                    if reason:
                        return reason
            return "max frames"
        finally:
            self._finish_stats(first)

    def _read_ahead(self, reader: FrameReader, pending: deque, max_frames: int | None) -> None:
        """Read the next frame; with detection workers, enough frames to keep every worker busy, but never wait for
        one while a frame is already in hand (a camera's next frame is tens of ms away: waiting would delay this
        one). Each frame read ahead goes to a worker at once. A live source that stops is raised once the frames
        already in hand are done."""
        wanted = 1 + (self.ahead.workers if self.ahead is not None else 0)
        if max_frames is not None:
            wanted = min(wanted, max_frames - self.stats.frames)
        while len(pending) < wanted and self.source_ended is None and (not pending or reader.ready()):
            try:
                frame = reader.read()
            except SourceEnded as exc:
                if not pending:
                    raise
                self.source_ended = exc
                return
            if frame is None:
                return
            detected = self.ahead.submit(frame) if self.ahead is not None else None
            pending.append((frame, time.perf_counter(), detected))

    def _count(self, index: int, tracks: list[Track], latency: float, done: float) -> None:
        self.latencies.append(latency)
        self.done_times.append(done)
        stats = self.stats
        stats.frames += 1
        stats.faces += bool(tracks)
        stats.most_faces = max(stats.most_faces, len(tracks))
        stats.face_boxes += len(tracks)
        if self.keep_tracks:
            stats.tracks.append(tracks)
            stats.indices.append(index)

    def _time(self, frame) -> float:
        """Seconds of the frame: its place in a video file, or since the first frame of a live source."""
        if self.clock_fps:
            return frame.index / self.clock_fps
        if self.first_captured is None:
            self.first_captured = frame.captured
        return frame.captured - self.first_captured

    def _status(self, now: float, dropped: int) -> tuple[float, int]:
        # Refreshed a few times a second so it is readable, but not latched at 0 before two frames are done.
        if now - self.status_time >= STATUS_REFRESH_SECONDS or not self.status[0]:
            times = self.done_times
            fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
            self.status, self.status_time = (fps, dropped), now
        return self.status

    def _finish_stats(self, first: float | None) -> None:
        stats = self.stats
        if first is not None and self.done_times:
            stats.seconds = self.done_times[-1] - first
            stats.fps = stats.frames / stats.seconds if stats.seconds > 0 else 0.0
        if self.latencies:
            p50, p95 = np.percentile(self.latencies, [50, 95]) * 1000.0
            stats.latency_p50_ms, stats.latency_p95_ms = float(p50), float(p95)


class _GracefulStop:
    """Turn SIGINT/SIGTERM into a flag the loop checks between frames, so a frame is never half-written.

    A second signal while the flag is set raises KeyboardInterrupt (the user insists). Signal handlers can only be
    installed from the main thread; elsewhere this does nothing and Ctrl-C behaves as usual."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, _frame) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _check_options(threshold: float, smooth: str, max_frames: int | None, max_faces: int = 1,
                   workers: int = 1) -> None:
    if not (0.0 <= threshold <= 1.0) or math.isnan(threshold):
        raise FacetrackerError(f"threshold must be between 0 and 1, got {threshold}", None, "try --threshold 0.5")
    if smooth not in SMOOTHERS:
        raise FacetrackerError(f"unknown smoothing '{smooth}'", None, f"choose one of: {', '.join(SMOOTHERS)}")
    if max_frames is not None and max_frames < 1:
        raise FacetrackerError(f"--max-frames must be at least 1, got {max_frames}")
    if max_faces < 1:
        raise FacetrackerError(f"--max-faces must be at least 1, got {max_faces}")
    if workers < 1:
        raise FacetrackerError(f"--workers must be at least 1, got {workers}", None,
                               f"try --workers {config.LIVE_DETECT_WORKERS} (1 runs the model in the loop itself)")


def _resolve_show(show: bool | None) -> bool:
    problem = display_problem(wayland_ok=False)  # OpenCV's Qt aborts the process without a display: ask first
    if show is None:
        return problem is None
    if show and problem:
        raise FacetrackerError(f"cannot show a window: {problem}", None,
                               f"use --no-show (add --record out.mp4 to keep the annotated video) or {HOW_TO_GET_ONE}")
    return show


def load_detector(model: Path | str | None, frame: tuple[int, int] | None) -> Detector:
    """The model fitted to the source's frames when it can be: the bundled one when no --model is given
    (resolve_model_path), a .keras model through its TFLite export (_exported_for_live)."""
    path = resolve_model_path(model, frame=frame)
    if path.suffix.lower() == ".keras" and path.is_file():  # a missing file gets Detector.load's own error
        path = _exported_for_live(path, frame)
    return Detector.load(path, frame=frame)


def _exported_for_live(path: Path, frame: tuple[int, int] | None) -> Path:
    """A .keras model's TFLite export fitted to the frames, so your own model runs as fast as the bundled one, in
    the detection workers: made once (export_model, checked against Keras like any export), then kept at
    export.live_export_path. If it cannot be made, the .keras file itself: it still runs, through tf.function, at
    about a quarter of the frame rate, and a warning says so."""
    from facetracker.export import export_model, live_export_path

    check_keras_archive(path)  # a broken file is an error of its own, not a reason to fall back
    target = live_export_path(path, frame)
    if target.is_file():
        return target
    console = Console(stderr=True)
    say(console, f"exporting {path} to TFLite for {_frame_text(frame)} frames, once: kept as {target}")
    try:
        export_model(path, "tflite", frame=frame, out=target, force=True)  # creates the folder
    except FacetrackerError as exc:  # its advice is for `facetracker export`: say what and where only
        problem = f"{exc.what}: {exc.where}" if exc.where is not None else exc.what
        say(console, f"warning: no TFLite export of {path} ({problem}); it runs through TensorFlow, about four times "
                     "slower")
        return path
    return target


def _frame_text(frame: tuple[int, int] | None) -> str:
    return f"{frame[0]}x{frame[1]}" if frame is not None else "any"


def _frame_size(capture: cv2.VideoCapture) -> tuple[int, int] | None:
    """(width, height) the source says its frames have; None when it does not say (some cameras and streams)."""
    width, height = (int(capture.get(prop)) for prop in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT))
    return (width, height) if width > 0 and height > 0 else None


def _warm_up(detector, frame: tuple[int, int] | None = None, calls: int = 3) -> None:
    """First calls allocate buffers and plan kernels (tens of ms): pay that before the first real frame."""
    width, height = frame or (640, 480)
    blank = np.zeros((height, width, 3), np.uint8)
    for _ in range(calls):
        detector.detect(blank)


def _source_fps(capture: cv2.VideoCapture) -> float | None:
    fps = capture.get(cv2.CAP_PROP_FPS)
    return float(fps) if math.isfinite(fps) and 1.0 <= fps <= 240.0 else None


def _pace_delay_ms(pace_fps: float | None, start: float) -> int:
    if not pace_fps:
        return 1
    remaining = 1.0 / pace_fps - (time.perf_counter() - start)
    return max(1, int(remaining * 1000))


def _handle_window(delay_ms: int) -> str | None:
    key = cv2.waitKey(delay_ms) & 0xFF
    if key in QUIT_KEYS:
        return "quit key"
    if cv2.getWindowProperty(config.LIVE_WINDOW, cv2.WND_PROP_VISIBLE) < 1:
        return "window closed"
    return None


def _close_window() -> None:
    try:
        cv2.destroyWindow(config.LIVE_WINDOW)
        cv2.waitKey(1)  # let the GUI loop actually remove it
    except cv2.error:
        pass  # the user already closed it


def _frame_preparer(detector, mirror: bool):
    """The reader thread's work on each frame: mirror it if asked and, for a Detector, letterbox it into the model
    input (a FramePreparer of its own), so resizing overlaps the model running on the previous frame."""
    preparer = detector.preparer() if hasattr(detector, "detect_prepared") else None
    if preparer is None and not mirror:
        return None

    def prepare(image: np.ndarray):
        if mirror:
            image = cv2.flip(image, 1)
        return image, preparer(image) if preparer is not None else None

    return prepare


def _detect_function(detector, low: float):
    """detector.detect as a function Frame -> list of detections.

    A Detector is asked only for what the tracker can use (score >= `low`), which saves building objects for the
    dozens of near-zero cells, and runs on the input the reader thread prepared; a detector giving one Detection
    (Haar, older code) is wrapped."""
    detect = detector.detect
    try:
        takes_min_score = "min_score" in inspect.signature(detect).parameters
    except (TypeError, ValueError):
        takes_min_score = False
    detect_prepared = getattr(detector, "detect_prepared", None)

    def run(frame) -> list:
        if detect_prepared is not None and frame.prepared is not None:
            return detect_prepared(*frame.prepared, min_score=low)
        found = detect(frame.image, min_score=low) if takes_min_score else detect(frame.image)
        return found if isinstance(found, list) else [found]

    return run


def _best_score(detections: list) -> float:
    return max((d.score for d in detections), default=0.0)


def _finish(recorder, stats: LiveStats) -> None:
    if recorder is None:
        return
    path = recorder.close()
    stats.record = str(path) if path else None
    stats.recorded_frames = recorder.frames
