"""A small FaceTracker really trained for a few steps on real labelled images, for tests that compare outputs.

An untrained MobileNet (weights=None) gives the same output for every input: its BatchNorm layers still hold
their initial moving statistics, so inference-mode activations saturate. A few dozen real training steps with a
fast BatchNorm momentum give a model whose scores and boxes follow the image, which is what export round-trips,
runtime comparisons and predict/evaluate checks need. It takes ~20 s on 2 cores, once per test session.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TINY_SIZE = 64
TRAIN_FACES = 12
TRAIN_NEGATIVES = 4
EPOCHS = 15


def training_arrays(dataset: Path, size: int = TINY_SIZE):
    """(pixels (N, size, size, 3) RGB 0..255, class (N, 1), box (N, 4) normalised) from real labelme data."""
    import cv2

    from facetracker.labels import scan

    found = scan(dataset / "images", dataset / "labels")
    samples = [s for s in found.samples if s.has_face][:TRAIN_FACES]
    samples += [s for s in found.samples if not s.has_face][:TRAIN_NEGATIVES]
    # INTER_AREA: the pixels of the real training pipeline (tf.image.resize method="area") and of Detector.
    pixels = np.stack([cv2.cvtColor(cv2.resize(cv2.imread(str(s.image)), (size, size),
                                               interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
                       for s in samples]).astype(np.float32)
    classes = np.array([[float(s.has_face)] for s in samples], np.float32)
    boxes = np.array([s.normalised_box() or (0.0, 0.0, 0.0, 0.0) for s in samples], np.float32)
    return pixels, classes, boxes, samples


def train_tiny_model(dataset: Path, out_path: Path, size: int = TINY_SIZE) -> Path:
    """Train a FaceTracker(weights=None) for EPOCHS x 2 steps on real images and save it as .keras."""
    import keras

    from facetracker.model import build_model

    keras.utils.set_random_seed(0)
    pixels, classes, boxes, _ = training_arrays(dataset, size)
    model = build_model(image_size=size, weights=None)
    for layer in model.backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.6  # moving statistics catch up within a few steps (default 0.99 needs hundreds)
    # The notebook's corner loss: its squared error pulls the boxes onto the faces within these few steps;
    # GIoU (the training default) gets there more slowly from boxes that barely overlap their face.
    model.compile(optimizer=keras.optimizers.Adam(1e-3), box_loss="corner")
    model.fit(pixels, (classes, boxes), batch_size=8, epochs=EPOCHS, shuffle=True, verbose=0)
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
