"""Input pipeline speed: facetracker's tf.data pipeline vs the notebook's, against what a training step consumes.

    .venv/bin/python benchmarks/pipeline_speed.py --data aug_data [--batch-size 8] [--backbones compact,vgg16]

For the train split of --data (made by `facetracker augment`) it times, in images (or labels) per second:
  labels     facetracker parses every JSON once up front (data.read_split) vs the notebook's tf.py_function
             label loader, which runs Python (open + json.load) for every example inside the tf.data graph;
  pipeline   one full pass of facetracker's pipeline (images and every face box, padded to MAX_BOXES), decoding
             (first epoch, cache=False) and from the RAM cache (later epochs), vs one pass of the notebook's
             pipeline (decode, resize, /255, py_function labels, zip, shuffle(5000), batch, prefetch), at each
             backbone's input size;
  train step what one training step of that backbone consumes (benchmarks/train_speed.py), so the pipeline
             is fast enough when its rate is well above this one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_speed import measure_train_step  # noqa: E402


def images_per_second(ds, count: int) -> float:
    start = time.perf_counter()
    for _ in ds:
        pass
    return count / (time.perf_counter() - start)


def notebook_labels(split_dir: Path):
    """The notebook's label loader, verbatim apart from paths and reading the first of several "bboxes" (its
    one-face model had a single "bbox"): the cost measured is the Python call per example."""
    import tensorflow as tf

    def load_labels(label_path):
        with open(label_path.numpy(), "r", encoding="utf-8") as f:
            label = json.load(f)
        bbox = label["bbox"] if "bbox" in label else (label["bboxes"] or [[0, 0, 0, 0]])[0]
        return [label["class"]], bbox

    labels = tf.data.Dataset.list_files(str(split_dir / "labels" / "*.json"), shuffle=False)
    return labels.map(lambda x: tf.py_function(load_labels, [x], [tf.uint8, tf.float16]))


def notebook_pipeline(split_dir: Path, image_size: int, batch_size: int):
    import tensorflow as tf

    def load_image(x):
        return tf.io.decode_jpeg(tf.io.read_file(x))

    images = tf.data.Dataset.list_files(str(split_dir / "images" / "*.jpg"), shuffle=False)
    def resize(x):
        return tf.image.resize(x, (image_size, image_size))

    def scale(x):
        return x / 255

    images = images.map(load_image).map(resize).map(scale)
    data = tf.data.Dataset.zip((images, notebook_labels(split_dir)))
    return data.shuffle(5000).batch(batch_size).prefetch(4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("aug_data"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--backbones", default="compact,mobilenetv2,vgg16")
    args = parser.parse_args()

    from facetracker.data import make_dataset, read_split
    from facetracker.model import default_image_size

    split_dir = args.data / "train"
    start = time.perf_counter()
    labels = read_split(args.data, "train")
    ours_labels = len(labels) / (time.perf_counter() - start)
    n = len(labels)
    print(f"{n} train images in {split_dir}; cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
    print(f"labels: facetracker (JSON parsed once) {ours_labels:,.0f}/s, "
          f"notebook (tf.py_function) {images_per_second(notebook_labels(split_dir), n):,.0f}/s")
    print("| backbone | input | facetracker, decoding (images/s) | facetracker, cached | notebook pipeline "
          "| train step consumes |")
    print("|---|---|---|---|---|---|")
    for backbone in args.backbones.split(","):
        size = default_image_size(backbone)
        decoding = images_per_second(make_dataset(labels, size, args.batch_size, training=True, cache=False), n)
        cached_ds = make_dataset(labels, size, args.batch_size, training=True, cache=True)
        images_per_second(cached_ds, n)  # first epoch fills the cache
        cached = images_per_second(cached_ds, n)
        notebook = images_per_second(notebook_pipeline(split_dir, size, args.batch_size), n)
        step = measure_train_step(backbone, batch_size=args.batch_size, steps=20)
        print(f"| {backbone} | {size} | {decoding:,.0f} | {cached:,.0f} | {notebook:,.0f} "
              f"| {step['images_per_s']:,.0f} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
