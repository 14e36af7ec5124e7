"""OpenCV's Haar cascade face detector behind the Detector interface: the classic model-free baseline.

The benchmark runs it as the reference the trained model must beat, and it works wherever run_live takes a
detector. Like `Detector.detect` it returns every face in the frame; it has no probability, so each face scores
1.0, and the largest face comes first (the ranking the cascade's hits have closest to "best").
"""

from __future__ import annotations

import cv2
import numpy as np

from facetracker import config
from facetracker.errors import FacetrackerError
from facetracker.inference import Detection

CASCADE = "haarcascade_frontalface_default.xml"


class HaarDetector:
    runtime_name = "haar"

    def __init__(self, cascade: str = CASCADE, scale_factor: float = 1.1, min_neighbors: int = 5):
        path = cv2.data.haarcascades + cascade
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise FacetrackerError("cannot load the Haar cascade", path, "reinstall opencv-python (<5 ships them)")
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors

    def detect(self, frame_bgr: np.ndarray, min_score: float = config.MIN_SCORE) -> list[Detection]:
        """Every face the cascade finds, largest first, boxes in pixels of the frame. Each face scores 1.0, so
        `min_score` (kept for the Detector API) only matters above 1."""
        if min_score > 1.0:
            return []
        gray = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        faces = self._cascade.detectMultiScale(gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors)
        largest_first = sorted((tuple(int(v) for v in face) for face in faces), key=lambda f: f[2] * f[3],
                               reverse=True)
        return [Detection(score=1.0, box=(float(x), float(y), float(x + w), float(y + h)))
                for x, y, w, h in largest_first]

    def detect_batch(self, frames: list[np.ndarray], min_score: float = config.MIN_SCORE) -> list[list[Detection]]:
        return [self.detect(frame, min_score) for frame in frames]
