"""Turning per-frame detections into tracks: every face gets a stable id, its own smoothed box and an on/off decision
with hysteresis.

Pure numpy/OpenCV/scipy and no model: the live loop feeds `Tracker.update` the frame's detections (score and box in
pixels, any number), tests feed it synthetic or ground-truth sequences. The design is SORT's (a Kalman filter per
track, Hungarian assignment on a box-overlap cost) with ByteTrack's use of low-score detections:

1. Every track predicts where its face is now (constant-velocity Kalman filter on centre and size).
2. Detections scoring at least `threshold - margin` are matched to the shown and the lost tracks, minimising the
   total cost 1 - DIoU (IoU minus the squared centre distance over the squared diagonal of the enclosing box: an
   IoU cost that still ranks boxes that do not overlap by how far apart they are), with
   `scipy.optimize.linear_sum_assignment`. A pair only matches with DIoU >= `match_diou`; a lost track only comes
   back on a detection that reaches `threshold`. Each frame a track went unseen adds `miss_penalty` to its costs
   (DeepSORT's matching cascade, as a bias), so when two faces cross, the hidden one's coasting track does not take
   the detection of the face in front from that face's own track.
3. Shown tracks still unmatched may take a low-score detection (`low_score` up to `threshold - margin`) that
   overlaps their prediction closely (DIoU >= `low_match_diou`): a face turning away, blurred or half hidden keeps
   its track instead of blinking off (ByteTrack's second association).
4. Tracks being born are matched to what is left scoring at least `threshold`; every detection still unmatched at
   that score starts a new one, best first, while there is room under `max_faces`.

Life of a track: born (not shown yet) on a detection >= threshold; shown, with the next id, after `birth_hits`
consecutive hits (a one-frame false positive never gets an id); while shown, a frame without a matched detection
is a miss and the box is held where it was; after `max_misses` consecutive misses it is hidden (lost). A lost track
keeps predicting for `max_lost` frames and takes its id back if a detection >= threshold matches it in that time
(a face that went behind another one, or left and came back near where its track expected it); after that it is
forgotten, and the face, when it comes back, is a new track with a new id. Ids are never reused within a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from facetracker import config

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels

SMOOTHERS = ("kalman", "ema", "none")
_NO_MATCH = 1e6  # cost of a forbidden pair in the assignment


@dataclass(frozen=True)
class Track:
    """One shown face in one frame: its id, the smoothed box to draw, and the detection behind it."""

    id: int
    box: Box  # smoothed, pixels of the frame
    score: float  # of the detection matched this frame; the last matched one while the track coasts over a miss
    raw_box: Box | None  # the detection matched this frame, None on a missed frame

    @property
    def missed(self) -> bool:
        return self.raw_box is None

    def to_json(self) -> dict:
        """{"id": 1, "score": 0.97, "box": [x1, y1, x2, y2]} with rounded numbers (pixels)."""
        return {"id": self.id, "score": round(self.score, 4), "box": [round(v, 1) for v in self.box]}


# ---------------------------------------------------------------- smoothing one box over time


class Smoother(Protocol):
    """Where one face is: start at a box, predict the next frame, correct with a measured box."""

    def start(self, box: Box) -> Box: ...

    def predict(self) -> Box: ...

    def correct(self, box: Box) -> Box: ...

    def coast(self) -> None: ...


class NoSmoother:
    """--smooth none: the raw detection, for comparison."""

    def __init__(self):
        self._box: Box | None = None

    def start(self, box: Box) -> Box:
        self._box = tuple(float(v) for v in box)
        return self._box

    def predict(self) -> Box:
        return self._box

    def correct(self, box: Box) -> Box:
        return self.start(box)

    def coast(self) -> None:
        pass

    def update(self, box: Box) -> Box:
        return self.start(box)


class EmaSmoother:
    """Exponential moving average of the corners: simple and cheap, but always lags a moving face a little."""

    def __init__(self, alpha: float = config.TRACK_EMA_ALPHA):
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"EMA alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self._box: np.ndarray | None = None

    def start(self, box: Box) -> Box:
        self._box = np.asarray(box, dtype=np.float64)
        return _as_box(self._box)

    def predict(self) -> Box:
        return _as_box(self._box)

    def correct(self, box: Box) -> Box:
        self._box = self._box + self.alpha * (np.asarray(box, dtype=np.float64) - self._box)
        return _as_box(self._box)

    def coast(self) -> None:
        pass

    def update(self, box: Box) -> Box:
        return self.start(box) if self._box is None else self.correct(box)


class KalmanSmoother:
    """Constant-velocity Kalman filter (cv2.KalmanFilter) on the box centre and size.

    State [cx, cy, w, h, vcx, vcy, vw, vh], measurement [cx, cy, w, h]. Unlike an EMA it estimates the velocity, so a
    face moving steadily is followed without lag while still-face jitter is averaged away, and the prediction is
    where the next detection of this face is looked for. Only the ratio of process to measurement noise matters for
    the gain (the measurement noise is 1), so the filter behaves the same at any resolution."""

    def __init__(self, position_noise: float = config.TRACK_KALMAN_POSITION_NOISE,
                 velocity_noise: float = config.TRACK_KALMAN_VELOCITY_NOISE):
        self.position_noise, self.velocity_noise = position_noise, velocity_noise
        self._filter: cv2.KalmanFilter | None = None

    def start(self, box: Box) -> Box:
        measured = _centre_size(box)
        kf = cv2.KalmanFilter(8, 4)
        kf.transitionMatrix = np.eye(8, dtype=np.float32)
        kf.transitionMatrix[:4, 4:] = np.eye(4, dtype=np.float32)  # position += velocity each frame
        kf.measurementMatrix = np.eye(4, 8, dtype=np.float32)
        kf.processNoiseCov = np.diag([self.position_noise] * 4 + [self.velocity_noise] * 4).astype(np.float32)
        kf.measurementNoiseCov = np.eye(4, dtype=np.float32)
        # Start at the first measurement with no velocity, trusted as much as one measurement.
        kf.errorCovPost = np.eye(8, dtype=np.float32)
        kf.statePost = np.concatenate([measured, np.zeros((4, 1), np.float32)])
        self._filter = kf
        return _corners(measured)

    def predict(self) -> Box:
        # OpenCV copies the prediction into the posterior too, so a frame without a measurement just moves on.
        return _corners(self._filter.predict())

    def correct(self, box: Box) -> Box:
        return _corners(self._filter.correct(_centre_size(box)))

    def coast(self) -> None:
        """The face is no longer seen: keep its motion but stop its size from drifting (as ByteTrack does)."""
        state = self._filter.statePost
        state[6:, 0] = 0.0
        self._filter.statePost = state

    def update(self, box: Box) -> Box:
        """predict + correct in one call (start on the first box): smoothing a single box sequence."""
        if self._filter is None:
            return self.start(box)
        self.predict()
        return self.correct(box)


def make_smoother(kind: str) -> Smoother:
    if kind == "kalman":
        return KalmanSmoother()
    if kind == "ema":
        return EmaSmoother()
    if kind == "none":
        return NoSmoother()
    raise ValueError(f"unknown smoother {kind!r}: choose one of {', '.join(SMOOTHERS)}")


# ---------------------------------------------------------------- many faces


BORN, SHOWN, LOST = "born", "shown", "lost"


class _Face:
    """One track's state between frames (the Tracker's own; callers see `Track` snapshots)."""

    __slots__ = ("smoother", "state", "id", "hits", "misses", "lost_frames", "box", "predicted", "score", "raw")

    def __init__(self, smoother: Smoother, box: Box, score: float):
        self.smoother = smoother
        self.state, self.id = BORN, 0
        self.hits, self.misses, self.lost_frames = 1, 0, 0
        self.box = self.predicted = smoother.start(box)
        self.score, self.raw = score, box


class Tracker:
    """Every face in the stream, each with a stable id (see the module docstring for the rules).

    update(detections, frame_size) takes one frame's detections — objects with `.score` and `.box` (x1, y1, x2, y2
    pixels), such as inference.Detection, or (score, box) pairs — and returns the shown tracks, ordered by id."""

    def __init__(self, threshold: float = config.TRACK_THRESHOLD, smooth: str = config.TRACK_SMOOTHER,
                 margin: float = config.TRACK_HYSTERESIS_MARGIN, max_misses: int = config.TRACK_MAX_MISSES,
                 birth_hits: int = config.TRACK_BIRTH_HITS, max_lost: int = config.TRACK_MAX_LOST,
                 max_faces: int = config.TRACK_MAX_FACES, low_score: float = config.TRACK_LOW_SCORE,
                 match_diou: float = config.TRACK_MATCH_DIOU, low_match_diou: float = config.TRACK_LOW_MATCH_DIOU,
                 miss_penalty: float = config.TRACK_MISS_PENALTY):
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if max_faces < 1:
            raise ValueError(f"max_faces must be at least 1, got {max_faces}")
        make_smoother(smooth)  # refuse an unknown kind now, not at the first face
        self.smooth = smooth
        self.on_threshold = threshold
        self.keep_threshold = max(0.0, threshold - margin)
        self.low_score = min(low_score, self.keep_threshold)
        self.max_misses, self.birth_hits = max(1, max_misses), max(1, birth_hits)
        self.max_lost, self.max_faces = max(0, max_lost), max_faces
        self.max_cost, self.low_max_cost = 1.0 - match_diou, 1.0 - low_match_diou
        self.miss_penalty = miss_penalty
        self.faces: list[_Face] = []
        self.next_id = 1
        self.frames = 0

    @property
    def tracks_seen(self) -> int:
        """How many ids have been given out (faces shown at least once)."""
        return self.next_id - 1

    def reset(self) -> None:
        self.faces.clear()

    def update(self, detections: Iterable, frame_size: tuple[int, int] | None = None) -> list[Track]:
        """One frame: the shown tracks after these detections. With the frame's (width, height), every shown box
        lies inside the frame: the Kalman filter carries a face's velocity, so the smoothed box of a face leaving
        the picture would overshoot its edge (a negative x1 slices the wrong pixels in a reader of --tracks)."""
        self.frames += 1
        dets = _as_list(detections, self.low_score)  # [(score, box)], best first
        faces = self.faces
        for face in faces:
            face.predicted = face.smoother.predict()
        free = [True] * len(dets)
        hit = [False] * len(faces)

        # 1. shown and lost tracks <- detections that may keep a face (>= threshold - margin)
        known = [i for i, f in enumerate(faces) if f.state != BORN]
        strong = [j for j, (score, _) in enumerate(dets) if score >= self.keep_threshold]
        self._associate(known, strong, dets, self.max_cost, free, hit, revive=True)
        # 2. shown tracks still unmatched <- low-score detections that sit right where they are expected
        waiting = [i for i in known if not hit[i] and faces[i].state == SHOWN]
        weak = [j for j, (score, _) in enumerate(dets) if free[j] and score < self.keep_threshold]
        self._associate(waiting, weak, dets, self.low_max_cost, free, hit)
        # 3. tracks being born <- what is left >= threshold
        born = [i for i, f in enumerate(faces) if f.state == BORN]
        births = [j for j, (score, _) in enumerate(dets) if free[j] and score >= self.on_threshold]
        self._associate(born, births, dets, self.max_cost, free, hit)

        self.faces = [f for i, f in enumerate(faces) if hit[i] or self._miss(f)]
        for j, (score, box) in enumerate(dets):  # best first
            if free[j] and score >= self.on_threshold and self._make_room():
                face = _Face(make_smoother(self.smooth), box, score)
                self.faces.append(face)
                self._promote(face)
        shown = sorted((f for f in self.faces if f.state == SHOWN), key=lambda f: f.id)
        return [Track(f.id, _inside(f.box, frame_size), f.score, f.raw) for f in shown]

    # -------------------------------------------------------------- steps

    def _associate(self, tracks: list[int], candidates: list[int], dets: list, max_cost: float, free: list[bool],
                   hit: list[bool], revive: bool = False) -> None:
        """Match `tracks` (indices into self.faces) to detections `candidates` (indices into dets) within max_cost,
        with the Hungarian algorithm when a track or a detection has more than one possible partner."""
        if not tracks or not candidates:
            return
        cost = [[_NO_MATCH] * len(candidates) for _ in tracks]
        options = 0
        for r, i in enumerate(tracks):
            face = self.faces[i]
            lost = revive and face.state == LOST
            # DeepSORT's matching cascade, as a bias: of two tracks that could take a detection, the one seen more
            # recently does (when two faces cross, the hidden one's track must not take the other's detection).
            unseen = self.miss_penalty * (face.misses + face.lost_frames)
            for c, j in enumerate(candidates):
                score, box = dets[j]
                if lost and score < self.on_threshold:
                    continue  # a lost track only comes back on a detection that could start a face
                value = 1.0 - diou(face.predicted, box)
                if value <= max_cost:
                    cost[r][c] = value + unseen
                    options += 1
        if not options:
            return
        if options == 1 or _unambiguous(cost):
            pairs = [(r, c) for r, row in enumerate(cost) for c, value in enumerate(row) if value < _NO_MATCH]
        else:
            matrix = np.array(cost)
            pairs = [(r, c) for r, c in zip(*linear_sum_assignment(matrix)) if matrix[r, c] < _NO_MATCH]
        for r, c in pairs:
            j = candidates[c]
            self._hit(self.faces[tracks[r]], dets[j][1], dets[j][0])
            free[j] = False
            hit[tracks[r]] = True

    def _hit(self, face: _Face, box: Box, score: float) -> None:
        # Never restarted at the new box, even after a big step: a false detection that wins a track for one frame
        # (while its face is missed) only pulls it part of the way, and the face's next detection still matches.
        # A real jump beyond the matching gate is a new track, not a slide.
        face.box = face.smoother.correct(box)
        face.score, face.raw = score, box
        face.misses, face.lost_frames = 0, 0
        face.hits += 1
        if face.state == LOST:
            face.state = SHOWN  # its old id back
        else:
            self._promote(face)

    def _promote(self, face: _Face) -> None:
        if face.state == BORN and face.hits >= self.birth_hits:
            face.state, face.id = SHOWN, self.next_id
            self.next_id += 1

    def _miss(self, face: _Face) -> bool:
        """A frame without a detection for this track; False when the track is over."""
        face.raw = None
        if face.state == BORN:
            return False  # births need consecutive hits
        if face.state == SHOWN:
            face.misses += 1
            if face.misses < self.max_misses:
                return True  # shown where it was last seen
            face.state, face.lost_frames = LOST, 0
            face.smoother.coast()
            return self.max_lost > 0
        face.lost_frames += 1
        return face.lost_frames <= self.max_lost

    def _make_room(self) -> bool:
        """Room for one more track under max_faces, forgetting the longest-lost track if need be."""
        if len(self.faces) < self.max_faces:
            return True
        lost = [f for f in self.faces if f.state == LOST]
        if not lost:
            return False
        self.faces.remove(max(lost, key=lambda f: f.lost_frames))
        return True


# ---------------------------------------------------------------- geometry


def diou(a: Box, b: Box) -> float:
    """Distance-IoU of two boxes: IoU - d^2 / c^2, in [-1, 1] (Zheng et al., 2020).

    d is the distance between the centres, c the diagonal of the smallest box enclosing both: 1 for the same box,
    about 0 for same-size boxes 3/4 of a width apart, below 0 when they do not touch. Plain arithmetic: a tracker
    compares a few boxes per frame, where numpy's per-call overhead would cost more than the sums."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    inter = iw * ih if iw > 0 and ih > 0 else 0.0
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    dx = (a[0] + a[2] - b[0] - b[2]) / 2
    dy = (a[1] + a[3] - b[1] - b[3]) / 2
    cw = max(a[2], b[2]) - min(a[0], b[0])
    ch = max(a[3], b[3]) - min(a[1], b[1])
    return inter / max(union, 1e-9) - (dx * dx + dy * dy) / max(cw * cw + ch * ch, 1e-9)


def _unambiguous(cost: list[list[float]]) -> bool:
    """Every track and every detection has at most one possible partner: the assignment is just those pairs."""
    if any(sum(v < _NO_MATCH for v in row) > 1 for row in cost):
        return False
    return all(sum(row[c] < _NO_MATCH for row in cost) <= 1 for c in range(len(cost[0])))


def _as_list(detections: Iterable, low_score: float) -> list[tuple[float, Box]]:
    """[(score, box)] of the usable detections (score >= low_score, a box with an area), best first."""
    out = []
    for d in detections:
        score, box = (d.score, d.box) if hasattr(d, "score") else d
        if box is None or score < low_score:
            continue
        box = (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
        if box[2] > box[0] and box[3] > box[1]:
            out.append((float(score), box))
    out.sort(key=lambda d: -d[0])
    return out


def _inside(box: Box, frame_size: tuple[int, int] | None) -> Box:
    """The box clipped to a width x height frame (as it is without a frame size)."""
    if frame_size is None:
        return box
    width, height = frame_size
    x1, y1, x2, y2 = box
    return (min(max(x1, 0.0), width), min(max(y1, 0.0), height), min(max(x2, 0.0), width), min(max(y2, 0.0), height))


def _as_box(values) -> Box:
    return tuple(float(v) for v in values)


def _centre_size(box: Box) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.array([[(x1 + x2) / 2], [(y1 + y2) / 2], [x2 - x1], [y2 - y1]], dtype=np.float32)


def _corners(state: np.ndarray) -> Box:
    cx, cy, w, h = state[:4, 0].tolist()
    w, h = max(w, 0.0), max(h, 0.0)
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
