"""OpenCV's Haar cascade face detector behind the Detector interface: the classic model-free baseline.

The benchmark runs it as the reference the trained model must beat, and it works wherever run_live takes a
detector. It has no probability, so the score is 1.0 when a face is found and 0.0 otherwise.
"""

from __future__ import annotations

import cv2
import numpy as np

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

    def detect(self, frame_bgr: np.ndarray) -> Detection:
        gray = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        faces = self._cascade.detectMultiScale(gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors)
        if len(faces) == 0:
            return Detection(score=0.0, box=(0.0, 0.0, 0.0, 0.0))
        x, y, w, h = max(faces, key=lambda f: f[2] * f[3])  # the tracker follows one face: the largest
        return Detection(score=1.0, box=(float(x), float(y), float(x + w), float(y + h)))
