"""`facetracker demo` / `make demo`: the real-time pipeline on a built-in clip, with no camera and no data download.

The clip is synthesised from the astronaut portrait that scikit-image ships (skimage.data.astronaut): a virtual
camera pans and zooms over the photograph, so the face moves, grows and shrinks like a person in front of a webcam.
It is tracked by the bundled model exactly as `facetracker live` would track a video file, and the annotated result
is written beside it.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from facetracker import config
from facetracker.files import ensure_writable_dir
from facetracker.live import LiveStats, run_live
from facetracker.recording import VideoRecorder, count_video_frames

CLIP_NAME = "astronaut-input.avi"  # MJPG: lossless enough that the model sees a clean picture
RESULT_NAME = "demo.mp4"
FACE_CENTRE = (225.0, 105.0)  # the astronaut's head in the 512x512 photograph (x, y)


def camera_path(t: float, photo_size: int = 512, aspect: float = 4 / 3) -> tuple[float, float, float]:
    """Virtual camera at time t in [0, 1]: view centre (x, y) and view width, in photograph pixels.

    One slow loop: the face drifts left-right and up-down through the frame while the view zooms from a head about
    half the frame high (a person at a webcam, as in the training data) to a close-up and back."""
    zoom = 0.5 - 0.5 * math.cos(2 * math.pi * t)  # 0 -> 1 -> 0
    width = photo_size * (0.85 - 0.35 * zoom)
    height = width / aspect
    cx = FACE_CENTRE[0] + 0.22 * width * math.sin(2 * math.pi * t)
    cy = FACE_CENTRE[1] + 0.15 * height * math.sin(4 * math.pi * t)
    # Keep the view inside the photograph: beyond its edges there is nothing real to show.
    cx = min(max(cx, width / 2), photo_size - width / 2)
    cy = min(max(cy, height / 2), photo_size - height / 2)
    return cx, cy, width


def synthesise_clip(path: Path, seconds: float = config.DEMO_SECONDS, fps: float = config.DEMO_FPS,
                    size: tuple[int, int] = config.DEMO_SIZE) -> Path:
    """Write the pan-and-zoom clip (BGR frames of `size`) to `path` with cv2.VideoWriter; return the path."""
    from skimage import data

    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    out_w, out_h = size
    frames = max(2, round(seconds * fps))
    with VideoRecorder(path, fps, force=True) as recorder:
        for i in range(frames):
            cx, cy, view_w = camera_path(i / frames, photo.shape[1], out_w / out_h)
            scale = out_w / view_w
            # Affine map photograph -> frame: scale about the view centre, which lands in the frame centre.
            matrix = np.array([[scale, 0, out_w / 2 - scale * cx], [0, scale, out_h / 2 - scale * cy]])
            recorder.write(cv2.warpAffine(photo, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR,
                                          borderMode=cv2.BORDER_REPLICATE))
    return path


def run_demo(out_dir: Path = config.DEMO_DIR, model: Path | str | None = None, show: bool = False,
             detector=None) -> tuple[LiveStats, Path]:
    """Synthesise the clip into out_dir, track it with the bundled model (or `model`), record demo.mp4.

    The demo's own outputs are replaced on every run. Returns the stats (with the per-frame tracks: the clip is
    short) and the clip's path."""
    from facetracker.inference import Detector

    out_dir = ensure_writable_dir(out_dir)
    clip = synthesise_clip(out_dir / CLIP_NAME)
    detector = detector or Detector.load(model)  # None: the model bundled in the package
    stats = run_live(clip, detector=detector, record=out_dir / RESULT_NAME, show=show, force=True, keep_tracks=True)
    if stats.record:
        stats.recorded_frames = count_video_frames(Path(stats.record))  # what a player will really see
    return stats, clip
