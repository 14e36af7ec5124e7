"""Train-step time of the dense FaceTracker per backbone, from scratch and fine-tuned (BatchNorm frozen).

    .venv/bin/python benchmarks/train_speed.py [--batch-sizes 8,16] [--steps 30] [--backbones compact,mobilenetv2]

Each model (random weights: the step time does not depend on them) is compiled exactly as `facetracker train`
does, then trained on one in-memory batch of random pixels with a face box per image, repeated: a first short
fit traces the graph (warm-up, not timed), the second is timed per step. `finetune` freezes the BatchNorm layers as
`facetracker train` does when it starts from a FaceTracker (the bundled model by default). Data loading is left
out on purpose: benchmarks/pipeline_speed.py measures the pipeline alone. The last column is what an epoch of
config.STEPS_PER_EPOCH steps costs, which is how the default epoch was chosen (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def measure_train_step(backbone: str, image_size: int | None = None, batch_size: int = 8, steps: int = 30,
                       finetune: bool = False) -> dict:
    """Seconds per training step (median over `steps`, after a traced warm-up) and images/s."""
    import keras
    import tensorflow as tf

    from facetracker import config
    from facetracker.model import build_model
    from facetracker.train import freeze_batchnorm, learning_rate_schedule

    model = build_model(backbone, image_size=image_size, weights=None,
                        preprocessing="standardize" if backbone == "compact" else None)
    if finetune:
        freeze_batchnorm(model)
    model.compile(keras.optimizers.Adam(learning_rate_schedule(config.LEARNING_RATE["finetune"], 1, steps)))
    size = model.image_size
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch_size, size, size, 3)).astype("float32")
    boxes = np.zeros((batch_size, config.MAX_BOXES, 4), "float32")
    boxes[:, 0] = [0.3, 0.2, 0.7, 0.8]
    ds = tf.data.Dataset.from_tensors((images, boxes)).repeat()

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
            "finetune": finetune, "step_s": step, "images_per_s": batch_size / step}


def main() -> None:
    from facetracker import config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default=f"8,{config.BATCH_SIZE}")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--backbones", default="compact")
    parser.add_argument("--modes", default="scratch,finetune")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")
    print(f"| backbone | input | parameters | mode | batch | ms / step | images / s | s per epoch of "
          f"{config.STEPS_PER_EPOCH} steps |")
    print("|---|---|---|---|---|---|---|---|")
    for backbone in args.backbones.split(","):
        for mode in args.modes.split(","):
            for batch in (int(b) for b in args.batch_sizes.split(",")):
                r = measure_train_step(backbone, batch_size=batch, steps=args.steps, finetune=mode == "finetune")
                print(f"| {r['backbone']} | {r['image_size']} | {r['params']:,} | {mode} | {r['batch']} "
                      f"| {r['step_s'] * 1000:.0f} | {r['images_per_s']:.0f} "
                      f"| {r['step_s'] * config.STEPS_PER_EPOCH:.0f} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
