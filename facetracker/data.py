"""The tf.data input pipeline over aug_data/<split>/{images,labels}.

Labels are tiny JSON files ({"image", "bbox", "class"}). They are parsed ONCE, up front, in Python into three
arrays (paths, classes, boxes): 20k files take about a second, TensorFlow has no JSON op, and regex parsing in
tf.strings would be brittle. From then on every step is a TF op in the graph (read, JPEG decode, resize, cast,
shuffle, batch, prefetch), so no Python runs per example and tf.data can parallelise it, unlike the notebook's
tf.py_function label loader, which holds the GIL for every example.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facetracker import config
from facetracker.errors import FacetrackerError
from facetracker.files import list_images

SHUFFLE_BUFFER = 4096
AUGMENT_FIX = "run `facetracker augment` (or pass --data to the augmented folder)"


@dataclass(frozen=True)
class SplitLabels:
    """Everything tf.data needs about one split, as flat arrays in file-name order."""

    name: str
    paths: list[str]
    classes: np.ndarray  # (n,) float32, 1 = face
    boxes: np.ndarray  # (n, 4) float32, [x1, y1, x2, y2] in [0, 1], zeros for negatives

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def faces(self) -> int:
        return int(self.classes.sum())


def read_split(aug_dir: Path, split: str, require_faces: bool = True) -> SplitLabels:
    """Pair every image of aug_dir/split/images with its label; refuse missing, unpaired or faceless data."""
    aug_dir = Path(aug_dir)
    images_dir, labels_dir = aug_dir / split / config.IMAGES, aug_dir / split / config.LABELS
    if not aug_dir.is_dir():
        raise FacetrackerError("augmented data folder not found", aug_dir, AUGMENT_FIX)
    if not images_dir.is_dir() or not labels_dir.is_dir():
        raise FacetrackerError(f"no {split} split in the augmented data (need images/ and labels/)",
                               aug_dir / split, AUGMENT_FIX)
    images = list_images(images_dir)
    labels = sorted(labels_dir.glob("*.json"))
    if not images:
        raise FacetrackerError(f"the {split} split has no images", images_dir, AUGMENT_FIX)
    _check_pairs(images, labels, images_dir, labels_dir)
    classes, boxes = zip(*(parse_aug_label(labels_dir / f"{image.stem}.json") for image in images))
    result = SplitLabels(split, [str(p) for p in images], np.asarray(classes, np.float32),
                         np.asarray(boxes, np.float32).reshape(-1, 4))
    if require_faces and result.faces == 0:
        raise FacetrackerError(f"the {split} split has no face images ({len(result)} negatives only)",
                               images_dir, "label faces in more images, then split and augment again")
    return result


def _check_pairs(images: list[Path], labels: list[Path], images_dir: Path, labels_dir: Path) -> None:
    image_stems, label_stems = {p.stem for p in images}, {p.stem for p in labels}
    unlabelled = sorted(image_stems - label_stems)
    if unlabelled:
        raise FacetrackerError(f"{len(unlabelled)} augmented image(s) have no label, e.g. {unlabelled[0]}",
                               images_dir, f"rebuild with `facetracker augment --force` ({labels_dir} is incomplete)")
    orphans = sorted(label_stems - image_stems)
    if orphans:
        raise FacetrackerError(f"{len(orphans)} label(s) have no image, e.g. {orphans[0]}.json", labels_dir,
                               "rebuild with `facetracker augment --force`")


def parse_aug_label(path: Path) -> tuple[float, tuple[float, float, float, float]]:
    """(class, box) from one augmented label; a malformed file is an error naming the file."""
    try:
        data = json.loads(Path(path).read_text())
        cls = float(data["class"])
        box = tuple(float(v) for v in data["bbox"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FacetrackerError(f"unreadable augmented label ({exc.__class__.__name__})", path,
                               "rebuild with `facetracker augment --force`") from None
    if cls not in (0.0, 1.0) or len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise FacetrackerError("augmented label needs class 0/1 and a bbox of 4 numbers", path,
                               "rebuild with `facetracker augment --force`")
    if cls == 0.0:
        return 0.0, (0.0, 0.0, 0.0, 0.0)
    x1, y1, x2, y2 = (min(max(v, 0.0), 1.0) for v in box)
    if x2 <= x1 or y2 <= y1:
        raise FacetrackerError(f"face box has no area: {list(box)}", path, "rebuild with `facetracker augment --force`")
    return 1.0, (x1, y1, x2, y2)


def cache_fits(count: int, image_size: int, limit: int = config.CACHE_LIMIT_BYTES) -> bool:
    """Decoded, resized uint8 images are cached in RAM when the split fits under `limit` bytes."""
    return count * image_size * image_size * 3 <= limit


def decode_image(path, image_size: int):
    """JPEG/PNG file -> uint8 RGB image_size x image_size, the whole image squashed (what inference does)."""
    import tensorflow as tf

    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image = tf.image.resize(image, (image_size, image_size), method="area")
    return tf.cast(tf.round(image), tf.uint8)


def make_dataset(labels: SplitLabels, image_size: int, batch_size: int, training: bool, cache: bool | None = None,
                 seed: int = config.SPLIT_SEED):
    """(images float32 0..255 (B, S, S, 3), (class (B, 1), box (B, 4))) batches, prefetched.

    training: shuffled every epoch. cache None = cache decoded images in RAM when they fit (cache_fits)."""
    import tensorflow as tf

    order = np.random.default_rng(seed).permutation(len(labels)) if training else np.arange(len(labels))
    # Augmented variants of one photo sit next to each other on disk: shuffle the file list once up front so a
    # bounded shuffle buffer after the cache still mixes photos well.
    paths = tf.constant([labels.paths[i] for i in order])
    classes = tf.constant(labels.classes[order].reshape(-1, 1))
    boxes = tf.constant(labels.boxes[order])
    ds = tf.data.Dataset.from_tensor_slices((paths, (classes, boxes)))
    cache = cache_fits(len(labels), image_size) if cache is None else cache
    if training and not cache:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)  # cheap: paths only
    ds = ds.map(lambda p, y: (decode_image(p, image_size), y), num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=not training)
    if cache:
        ds = ds.cache()
        if training:
            ds = ds.shuffle(min(len(labels), SHUFFLE_BUFFER), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(lambda image, y: (tf.cast(image, tf.float32), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def load_splits(aug_dir: Path, image_size: int, batch_size: int, cache: bool | None = None):
    """(train_ds, val_ds, train_labels, val_labels) for `facetracker train`."""
    train_labels = read_split(aug_dir, "train")
    val_labels = read_split(aug_dir, "val")
    train_ds = make_dataset(train_labels, image_size, batch_size, training=True, cache=cache)
    val_ds = make_dataset(val_labels, image_size, batch_size, training=False, cache=cache)
    return train_ds, val_ds, train_labels, val_labels
