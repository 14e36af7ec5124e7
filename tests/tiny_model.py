"""A small FaceTracker really trained for a few hundred steps on real labelled images, for tests that compare outputs.

An untrained network gives nearly the same output for every input: its BatchNorm layers still hold their
initial moving statistics. A few hundred real training steps with a fast BatchNorm momentum give a model whose
scores and boxes follow the image, which is what export round-trips, runtime comparisons and predict/evaluate
checks need. It takes ~10 s on 2 cores, once per test session. The scores it gives its own training faces must
stand well clear of the tests' thresholds, whatever kernels TensorFlow runs (oneDNN's rounding or its own): with
the mirror images and 60 epochs the lowest is about 0.7.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TINY_SIZE = 64
TRAIN_FACES = 12
TRAIN_NEGATIVES = 4
EPOCHS = 60


def training_arrays(dataset: Path, size: int = TINY_SIZE):
    """(pixels (N, size, size, 3) RGB 0..255 letterboxed like Detector, boxes (N, MAX_BOXES, 4), samples)."""
    import cv2

    from facetracker.boxes import Letterbox
    from facetracker.data import pad_boxes
    from facetracker.labels import scan

    found = scan(dataset / "images", dataset / "labels")
    samples = [s for s in found.samples if s.has_face][:TRAIN_FACES]
    samples += [s for s in found.samples if not s.has_face][:TRAIN_NEGATIVES]
    pixels, boxes = [], []
    for sample in samples:
        layout = Letterbox(*sample.size, size)
        canvas = np.full((size, size, 3), 114, np.uint8)
        (w, h), (x, y) = layout.size, layout.pad
        canvas[y:y + h, x:x + w] = cv2.resize(cv2.imread(str(sample.image)), (w, h), interpolation=cv2.INTER_AREA)
        pixels.append(cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB))
        boxes.append(pad_boxes(layout.to_input(np.asarray(sample.boxes, np.float32).reshape(-1, 4))))
    return np.stack(pixels).astype(np.float32), np.stack(boxes), samples


def with_mirrors(pixels: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The images and their mirror images, boxes mirrored too (zero rows stay zero): predict and label look at
    every still image mirrored as well (Detector.detect_still), so the tiny model must know both views."""
    from facetracker.boxes import unmirror

    real = boxes.any(axis=-1)
    mirrored = np.zeros_like(boxes)
    mirrored[real] = unmirror(boxes[real], 1.0)  # boxes are fractions of the input: its width is 1
    return np.concatenate([pixels, pixels[:, :, ::-1]]), np.concatenate([boxes, mirrored])


def train_tiny_model(dataset: Path, out_path: Path, size: int = TINY_SIZE) -> Path:
    """Train a small dense FaceTracker (weights=None) for EPOCHS x 4 steps on real images and their mirror images,
    and save it as .keras."""
    import keras

    from facetracker.model import build_model

    keras.utils.set_random_seed(0)
    pixels, boxes = with_mirrors(*training_arrays(dataset, size)[:2])
    model = build_model(image_size=size, weights=None, width=8, neck_channels=16, bn_momentum=0.6)
    # BatchNorm momentum 0.6: the moving statistics catch up within these few steps (0.99 needs hundreds).
    # Plain focal loss: its scores rise within these few steps, where the default quality focal loss ties them to
    # a box IoU that a model this small and this briefly trained keeps low (the default is trained in test_train).
    model.compile(optimizer=keras.optimizers.Adam(3e-3), score_loss="focal")
    model.fit(pixels, boxes, batch_size=8, epochs=EPOCHS, shuffle=True, verbose=0)
    model.save(out_path)
    return out_path


class ExportCache:
    """Exports of the tiny model made with facetracker.export, each once per session (exports take 10-20 s)."""

    def __init__(self, model_path: Path, out_dir: Path, datasets_dir: Path):
        self.model_path, self.out_dir, self.datasets_dir = model_path, out_dir, datasets_dir
        self._done: dict = {}

    def __call__(self, fmt: str, quantize: str = "none"):
        from facetracker.export import default_out, export_model

        key = (fmt, quantize)
        if key not in self._done:
            out = self.out_dir / default_out(self.model_path, fmt, quantize).name
            # Calibrate int8 and check every export on real images the tiny model did not train on.
            data = self.datasets_dir / "webcam-b" / "images"
            self._done[key] = export_model(self.model_path, fmt, quantize, data=data, out=out)
        return self._done[key]
