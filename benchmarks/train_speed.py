"""Train-step time per backbone: the notebook's VGG16 at 120 px against the light MobileNets at 128 px.

    .venv/bin/python benchmarks/train_speed.py [--batch-size 8] [--steps 30] [--backbones vgg16,mobilenetv2]

Each model (weights=None: the figure does not depend on the weights) is compiled exactly as `facetracker train`
does, then trained on one in-memory batch repeated: the first epoch traces the graph (warm-up, not timed), the
second is timed. Data loading is left out on purpose: benchmarks/pipeline_speed.py measures the pipeline alone.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def measure_train_step(backbone: str, image_size: int | None = None, batch_size: int = 8, steps: int = 30) -> dict:
    """Seconds per training step (median over `steps`, after a traced warm-up epoch) and images/s."""
    import keras
    import tensorflow as tf

    from facetracker import config
    from facetracker.model import build_model
    from facetracker.train import learning_rate_schedule

    model = build_model(backbone, image_size=image_size, weights=None)
    model.compile(keras.optimizers.Adam(learning_rate_schedule(config.LEARNING_RATE["scratch"], 1, steps)))
    size = model.image_size
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch_size, size, size, 3)).astype("float32")
    classes = np.ones((batch_size, 1), "float32")
    boxes = np.tile(np.array([[0.3, 0.2, 0.7, 0.8]], "float32"), (batch_size, 1))
    ds = tf.data.Dataset.from_tensors((images, (classes, boxes))).repeat()

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter() - self._start)

    timer = StepTimer()
    model.fit(ds, epochs=1, steps_per_epoch=3, verbose=0)  # trace + first steps
    model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[timer])
    step = float(np.median(timer.times))
    return {"backbone": backbone, "image_size": size, "params": model.count_params(), "batch": batch_size,
            "step_s": step, "images_per_s": batch_size / step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--backbones", default="vgg16,mobilenetv2,mobilenetv3small")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")
    print("| backbone | input | parameters | batch | ms / step | images / s |")
    print("|---|---|---|---|---|---|")
    for backbone in args.backbones.split(","):
        r = measure_train_step(backbone, batch_size=args.batch_size, steps=args.steps)
        print(f"| {r['backbone']} | {r['image_size']} | {r['params']:,} | {r['batch']} | {r['step_s'] * 1000:.0f} "
              f"| {r['images_per_s']:.0f} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
