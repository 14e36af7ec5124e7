"""Turning per-frame detections into a steady track: box smoothing over time and an on/off decision with hysteresis.

Pure numpy/OpenCV and no model: the live loop feeds it one (score, box) per frame, and tests feed it synthetic
sequences. A per-frame detector jitters (the box wobbles by a few pixels on a still face) and flickers (a score
hovering around the threshold switches the box on and off every frame); a tracker should do neither, yet still
follow a real movement within a few frames and drop the box when the face really leaves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from facetracker import config

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels

SMOOTHERS = ("kalman", "ema", "none")


@dataclass(frozen=True)
class Track:
    """What the tracker shows for one frame: `visible` says whether to draw `box` (the smoothed box)."""

    visible: bool
    box: Box | None
    score: float
    raw_box: Box | None


class Smoother(Protocol):
    def update(self, box: Box) -> Box: ...

    def reset(self) -> None: ...


class NoSmoother:
    """--no-smooth: the raw detection, for comparison."""

    def update(self, box: Box) -> Box:
        return tuple(float(v) for v in box)

    def reset(self) -> None:
        pass


class EmaSmoother:
    """Exponential moving average of the corners: simple and cheap, but always lags a moving face a little."""

    def __init__(self, alpha: float = config.TRACK_EMA_ALPHA):
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"EMA alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self._box: np.ndarray | None = None

    def update(self, box: Box) -> Box:
        measured = np.asarray(box, dtype=np.float64)
        self._box = measured if self._box is None else self._box + self.alpha * (measured - self._box)
        return tuple(float(v) for v in self._box)

    def reset(self) -> None:
        self._box = None


class KalmanSmoother:
    """Constant-velocity Kalman filter (cv2.KalmanFilter) on the box centre and size.

    State [cx, cy, w, h, vcx, vcy, vw, vh], measurement [cx, cy, w, h]. Unlike an EMA it estimates the velocity, so a
    face moving steadily is followed without lag while still-face jitter is averaged away. Only the ratio of process
    to measurement noise matters for the gain (the measurement noise is 1), so the filter behaves the same at any
    resolution. A constant-velocity model overshoots a sudden jump; the Tracker restarts it on jumps instead."""

    def __init__(self, position_noise: float = config.TRACK_KALMAN_POSITION_NOISE,
                 velocity_noise: float = config.TRACK_KALMAN_VELOCITY_NOISE):
        self.position_noise, self.velocity_noise = position_noise, velocity_noise
        self._filter: cv2.KalmanFilter | None = None

    def _new_filter(self, measured: np.ndarray) -> cv2.KalmanFilter:
        kf = cv2.KalmanFilter(8, 4)
        kf.transitionMatrix = np.eye(8, dtype=np.float32)
        kf.transitionMatrix[:4, 4:] = np.eye(4, dtype=np.float32)  # position += velocity each frame
        kf.measurementMatrix = np.eye(4, 8, dtype=np.float32)
        kf.processNoiseCov = np.diag([self.position_noise] * 4 + [self.velocity_noise] * 4).astype(np.float32)
        kf.measurementNoiseCov = np.eye(4, dtype=np.float32)
        # Start at the first measurement with no velocity, trusted as much as one measurement.
        kf.errorCovPost = np.eye(8, dtype=np.float32)
        kf.statePost = np.concatenate([measured, np.zeros(4)]).astype(np.float32).reshape(8, 1)
        return kf

    def update(self, box: Box) -> Box:
        measured = _centre_size(box)
        if self._filter is None:
            self._filter = self._new_filter(measured)
            return _corners(measured)
        self._filter.predict()
        state = self._filter.correct(measured.astype(np.float32).reshape(4, 1))
        return _corners(state[:4, 0])

    def reset(self) -> None:
        self._filter = None


def make_smoother(kind: str) -> Smoother:
    if kind == "kalman":
        return KalmanSmoother()
    if kind == "ema":
        return EmaSmoother()
    if kind == "none":
        return NoSmoother()
    raise ValueError(f"unknown smoother {kind!r}: choose one of {', '.join(SMOOTHERS)}")


class Hysteresis:
    """Face/no-face decision that does not flicker.

    Switches on at score >= threshold. Once on, a frame only counts as a miss below threshold - margin, and the box
    switches off after `max_misses` consecutive misses, so a score wobbling around the threshold (or one bad frame)
    keeps the box, while a face that really leaves is dropped within a few frames."""

    def __init__(self, threshold: float = config.THRESHOLD, margin: float = config.TRACK_HYSTERESIS_MARGIN,
                 max_misses: int = config.TRACK_MAX_MISSES):
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self.on_threshold = threshold
        self.off_threshold = max(0.0, threshold - margin)
        self.max_misses = max(1, max_misses)
        self.visible = False
        self.misses = 0

    def update(self, score: float) -> bool:
        """Return whether the face counts as present after this frame's score."""
        if not self.visible:
            self.visible = score >= self.on_threshold
            self.misses = 0
        elif score >= self.off_threshold:
            self.misses = 0
        else:
            self.misses += 1
            self.visible = self.misses < self.max_misses
        return self.visible

    def reset(self) -> None:
        self.visible, self.misses = False, 0


class Tracker:
    """One face: hysteresis decides whether it is there, the smoother decides where.

    While the face is on but a frame misses, the last smoothed box is held (not extrapolated: a face that stops
    moving as the score drops should not drift away). When the face switches off, the smoother forgets it so the
    next face starts where it is found rather than sliding in from the old place; a detection that barely overlaps
    the track (IoU < reset_iou: a jump, or another face) also restarts the smoother there."""

    def __init__(self, threshold: float = config.THRESHOLD, smooth: str = config.TRACK_SMOOTHER,
                 margin: float = config.TRACK_HYSTERESIS_MARGIN, max_misses: int = config.TRACK_MAX_MISSES,
                 reset_iou: float = config.TRACK_RESET_IOU):
        self.hysteresis = Hysteresis(threshold, margin, max_misses)
        self.smoother = make_smoother(smooth)
        self.reset_iou = reset_iou
        self._box: Box | None = None

    def update(self, score: float, box: Box | None) -> Track:
        was_visible = self.hysteresis.visible
        visible = self.hysteresis.update(float(score))
        hit = box is not None and visible and self.hysteresis.misses == 0
        if hit:
            if was_visible and self._box is not None and _iou(self._box, box) < self.reset_iou:
                self.smoother.reset()
            self._box = self.smoother.update(box)
        elif not visible:
            self.smoother.reset()
            self._box = None
        raw = tuple(float(v) for v in box) if box is not None else None
        return Track(visible=visible, box=self._box if visible else None, score=float(score), raw_box=raw)

    def reset(self) -> None:
        self.hysteresis.reset()
        self.smoother.reset()
        self._box = None


def _centre_size(box: Box) -> np.ndarray:
    x1, y1, x2, y2 = (float(v) for v in box)
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dtype=np.float64)


def _corners(centre_size: np.ndarray) -> Box:
    cx, cy, w, h = (float(v) for v in centre_size)
    w, h = max(w, 0.0), max(h, 0.0)
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def _iou(a: Box, b: Box) -> float:
    # One pair of boxes per frame: plain arithmetic is clearer and cheaper than a tensor op here.
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
