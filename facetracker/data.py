"""The tf.data input pipeline over aug_data/<split>/{images,labels}.

Labels are tiny JSON files ({"image", "bboxes", "class"}). They are parsed ONCE, up front, in Python into three
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
    classes: np.ndarray  # (n,) float32, 1 = at least one face
    boxes: np.ndarray  # (n, MAX_BOXES, 4) float32, [x1, y1, x2, y2] in [0, 1], zero rows are padding

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
    boxes = np.stack([pad_boxes(parse_aug_label(labels_dir / f"{image.stem}.json")) for image in images])
    classes = (boxes[:, 0, 2] > 0).astype(np.float32)
    result = SplitLabels(split, [str(p) for p in images], classes, boxes)
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


def parse_aug_label(path: Path) -> list[tuple[float, float, float, float]]:
    """The face boxes of one augmented label (empty for a negative); a malformed file is an error naming it.

    Reads `"bboxes": [[x1, y1, x2, y2], ...]`, and the single `"bbox"` of labels written before multi-face."""
    try:
        data = json.loads(Path(path).read_text())
        cls = float(data["class"])
        raw = data["bboxes"] if "bboxes" in data else ([data["bbox"]] if cls == 1.0 else [])
        boxes = [tuple(float(v) for v in box) for box in raw]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FacetrackerError(f"unreadable augmented label ({exc.__class__.__name__})", path,
                               "rebuild with `facetracker augment --force`") from None
    if cls not in (0.0, 1.0) or any(len(b) != 4 or not all(math.isfinite(v) for v in b) for b in boxes):
        raise FacetrackerError("augmented label needs class 0/1 and boxes of 4 numbers", path,
                               "rebuild with `facetracker augment --force`")
    if cls == 0.0:
        return []
    clipped = [tuple(min(max(v, 0.0), 1.0) for v in box) for box in boxes]
    if not clipped or any(x2 <= x1 or y2 <= y1 for x1, y1, x2, y2 in clipped):
        raise FacetrackerError(f"face box missing or without area: {boxes}", path,
                               "rebuild with `facetracker augment --force`")
    return clipped


def pad_boxes(boxes, count: int = config.MAX_BOXES) -> np.ndarray:
    """(count, 4) float32: the boxes, largest first when there are too many, then zero rows."""
    ordered = sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)[:count]
    out = np.zeros((count, 4), np.float32)
    if ordered:
        out[:len(ordered)] = ordered
    return out


def cache_fits(count: int, image_size: int, limit: int = config.CACHE_LIMIT_BYTES) -> bool:
    """Decoded, resized uint8 images are cached in RAM when the split fits under `limit` bytes."""
    return count * image_size * image_size * 3 <= limit


def decode_image(path, image_size: int):
    """JPEG/PNG file -> uint8 RGB image_size x image_size (augment writes letterboxed squares, so nothing is squashed)."""
    import tensorflow as tf

    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image = tf.image.resize(image, (image_size, image_size), method="area")
    return tf.cast(tf.round(image), tf.uint8)


def make_dataset(labels: SplitLabels, image_size: int, batch_size: int, training: bool, cache: bool | None = None,
                 seed: int = config.SPLIT_SEED):
    """(images float32 0..255 (B, S, S, 3), boxes (B, MAX_BOXES, 4)) batches, prefetched.

    training: shuffled every epoch. cache None = cache decoded images in RAM when they fit (cache_fits)."""
    import tensorflow as tf

    order = np.random.default_rng(seed).permutation(len(labels)) if training else np.arange(len(labels))
    # Augmented variants of one photo sit next to each other on disk: shuffle the file list once up front so a
    # bounded shuffle buffer after the cache still mixes photos well.
    paths = tf.constant([labels.paths[i] for i in order])
    ds = tf.data.Dataset.from_tensor_slices((paths, tf.constant(labels.boxes[order])))
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


# ---- training straight from labelme folders (the bundled model's recipe) ------------------------------------
# The recipe trains on thousands of frames for many epochs, so instead of augment's fixed variants on disk it
# draws a new random view of every photo each time, in TF ops: photos decoded once and kept in RAM, then per
# example a random zoom (faces from tiny to close-up), place, flip and colour, letterboxed like inference; and
# mosaics of four photos, which turn single-face webcam sets into frames with several small faces.


@dataclass(frozen=True)
class Photo:
    """A decoded training photo: RGB uint8, its longest side at most config.PHOTO_SIDE, boxes as fractions."""

    pixels: np.ndarray
    boxes: np.ndarray  # (k, 4) float32, k = 0 for a negative


def load_photos(samples, max_side: int = config.PHOTO_SIDE) -> list[Photo]:
    """Photo for every labels.Sample, shrunk with INTER_AREA so later zooms start from clean pixels."""
    import cv2

    from facetracker.files import read_image

    photos = []
    for sample in samples:
        image = read_image(sample.image)
        height, width = image.shape[:2]
        scale = min(1.0, max_side / max(height, width))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        boxes = np.asarray(sample.normalised_boxes(), np.float32).reshape(-1, 4)
        photos.append(Photo(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), boxes))
    return photos


def random_view(pixels, boxes, side: int, zoom=config.VIEW_ZOOM):
    """One random training view of a photo: float32 (side, side, 3) and its visible boxes (n, 4) as fractions.

    The photo's longest side becomes `side` times a log-uniform zoom, then the photo is placed at a random
    position on a grey canvas (zoom < 1: the whole frame, smaller, as a far-away face) or cropped by it
    (zoom > 1: a close-up). Scaling keeps the aspect ratio, exactly like the letterbox at inference."""
    import tensorflow as tf

    shape = tf.shape(pixels)
    height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    z = tf.exp(tf.random.uniform((), np.log(zoom[0]), np.log(zoom[1])))
    scale = side * z / tf.maximum(height, width)
    new_h = tf.maximum(tf.cast(tf.round(height * scale), tf.int32), 1)
    new_w = tf.maximum(tf.cast(tf.round(width * scale), tf.int32), 1)
    image = tf.image.resize(tf.cast(pixels, tf.float32), (new_h, new_w), method="area")
    image = random_colour(image)
    off_x, off_y = _random_offset(new_w, side), _random_offset(new_h, side)
    image = _place(image, off_x, off_y, side)
    sizes = tf.cast(tf.stack([new_w, new_h, new_w, new_h]), tf.float32)
    offsets = tf.cast(tf.stack([off_x, off_y, off_x, off_y]), tf.float32)
    boxes = (boxes * sizes + offsets) / side
    if tf.random.uniform(()) < 0.5:
        image = image[:, ::-1]
        boxes = tf.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], axis=-1)
    return image, visible_boxes(boxes, side)


def _random_offset(size, side: int):
    """Where the scaled photo's left (top) edge goes: anywhere that keeps it overlapping the canvas fully
    (smaller than the canvas) or covering it fully (larger)."""
    import tensorflow as tf

    low, high = tf.minimum(0, side - size), tf.maximum(0, side - size)
    return tf.random.uniform((), low, high + 1, dtype=tf.int32)


def _place(image, off_x, off_y, side: int):
    """The side x side canvas (grey config.AUG_BORDER_FILL) with `image` at (off_x, off_y), cropped to it."""
    import tensorflow as tf

    shape = tf.shape(image)
    pad_left, pad_top = tf.maximum(off_x, 0), tf.maximum(off_y, 0)
    padded = tf.pad(image - config.AUG_BORDER_FILL,
                    [[pad_top, tf.maximum(side - shape[0] - off_y, 0)],
                     [pad_left, tf.maximum(side - shape[1] - off_x, 0)], [0, 0]]) + config.AUG_BORDER_FILL
    cropped = padded[tf.maximum(-off_y, 0):tf.maximum(-off_y, 0) + side, tf.maximum(-off_x, 0):tf.maximum(-off_x, 0) + side]
    return tf.ensure_shape(cropped, (side, side, 3))


def random_colour(image):
    """Brightness, contrast, saturation, hue, grey and sensor noise: other cameras, rooms and skin tones."""
    import tensorflow as tf

    image = image / 255.0
    image = tf.image.random_brightness(image, 0.2)
    image = tf.image.random_contrast(image, 0.6, 1.4)
    image = tf.image.random_saturation(tf.clip_by_value(image, 0, 1), 0.4, 1.6)
    image = tf.image.random_hue(image, 0.05)
    if config.VIEW_GAMMA[0] != config.VIEW_GAMMA[1]:
        low, high = np.log(config.VIEW_GAMMA[0]), np.log(config.VIEW_GAMMA[1])
        image = tf.clip_by_value(image, 0, 1) ** tf.exp(tf.random.uniform((), low, high))
    if tf.random.uniform(()) < config.AUG_GRAY_SHARE:
        image = tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(image))
    if tf.random.uniform(()) < 0.3:
        image += tf.random.normal(tf.shape(image), stddev=tf.random.uniform((), 0.0, 0.04))
    return tf.clip_by_value(image, 0, 1) * 255.0


def visible_boxes(boxes, side: int):
    """Boxes clipped to the view; those with less than AUG_MIN_VISIBILITY of their area in view, or under
    config.MIN_FACE_PIXELS a side, are dropped (too little of a face to learn from)."""
    import tensorflow as tf

    clipped = tf.clip_by_value(boxes, 0.0, 1.0)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    big_enough = tf.minimum(clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]) * side >= config.MIN_FACE_PIXELS
    keep = (kept >= config.AUG_MIN_VISIBILITY * tf.maximum(area, 1e-9)) & big_enough
    return tf.boolean_mask(clipped, keep)


def pad_box_tensor(boxes, count: int = config.MAX_BOXES):
    """(n, 4) -> (count, 4): the largest `count` boxes, then zero rows (the fixed shape batches need)."""
    import tensorflow as tf

    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = tf.argsort(area, direction="DESCENDING")[:count]
    boxes = tf.gather(boxes, order)
    return tf.ensure_shape(tf.pad(boxes, [[0, count - tf.shape(boxes)[0]], [0, 0]]), (count, 4))


def mosaic(images, boxes_list, side: int):
    """Four (side/2)-views (4, side/2, side/2, 3) with padded boxes (4, M, 4) -> one 2x2 mosaic and its boxes."""
    import tensorflow as tf

    top = tf.concat([images[0], images[1]], axis=1)
    bottom = tf.concat([images[2], images[3]], axis=1)
    offsets = tf.constant([[0, 0], [0.5, 0], [0, 0.5], [0.5, 0.5]], tf.float32)
    moved = boxes_list * 0.5 + tf.tile(offsets, [1, 2])[:, tf.newaxis, :]
    valid = boxes_list[..., 2] > 0
    return tf.concat([top, bottom], axis=0), pad_box_tensor(tf.boolean_mask(moved, valid))


def box_masks(boxes, margin, side: int):
    """(n, side, side) float32, one per real box of the padded `boxes` (rows of zeros are padding): 1 inside the
    box grown by `margin` of its size."""
    import tensorflow as tf

    boxes = tf.boolean_mask(boxes, boxes[:, 2] > 0)
    size = tf.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=-1)
    grown = (boxes + tf.constant([-1.0, -1.0, 1.0, 1.0]) * margin * size) * side
    centres = tf.range(side, dtype=tf.float32) + 0.5
    inside_x = (centres[None, :] >= grown[:, 0:1]) & (centres[None, :] < grown[:, 2:3])  # (n, side)
    inside_y = (centres[None, :] >= grown[:, 1:2]) & (centres[None, :] < grown[:, 3:4])
    return tf.cast(inside_y[:, :, None] & inside_x[:, None, :], tf.float32)


def busy_pattern(side: int):
    """A (side, side, 3) float32 0..255 made-up background: a few sinusoidal gratings per colour channel, at random
    frequencies, angles and phases, sharpened into stripes, checks and blobs (patterned curtains, wallpaper)."""
    import tensorflow as tf

    grid = (tf.range(side, dtype=tf.float32) + 0.5) / side
    y, x = tf.meshgrid(grid, grid, indexing="ij")
    waves = 4
    cycles = tf.exp(tf.random.uniform((3, waves, 1, 1), 0.0, math.log(16.0)))  # 1-16 per side: blobs to stripes
    direction = tf.random.uniform((3, waves, 1, 1), 0.0, math.pi)
    phase = tf.random.uniform((3, waves, 1, 1), 0.0, 2 * math.pi)
    angle = 2 * math.pi * cycles * (tf.cos(direction) * x + tf.sin(direction) * y) + phase  # (3, waves, side, side)
    sharpness = tf.random.uniform((), 1.0, 6.0)
    channels = tf.sigmoid(sharpness * tf.reduce_sum(tf.sin(angle), axis=1))  # (3, side, side) in 0..1
    mix = tf.random.uniform((3, 3), 0.0, 1.0)  # random colours: each output channel a mix of the three
    pattern = tf.einsum("chw,cd->hwd", channels, mix / tf.reduce_sum(mix, axis=0, keepdims=True))
    return 255.0 * pattern


def swap_background(images, boxes_list, side: int, pattern_share: float = config.BACKGROUND_PATTERN_SHARE):
    """Two views (2, side, side, 3) with padded boxes (2, M, 4) -> the first view's faces, each with a random
    margin of its own surroundings, pasted onto the second view; the boxes of the faces that show.

    Webcam sets show each face in front of one room, so the model partly learns faces by their rooms: a held-out
    man before a bright patterned curtain was found at AP 0.29, and at 0.88 with all but a quarter face-size of
    margin greyed out. Faces on other people's rooms teach the face itself. A face of the second view stays
    labelled when at most a quarter of it is covered and is dropped when three quarters are (what shows is hair
    or an ear); anything between, and a first view without a face, leave the first view as it was. A
    `pattern_share` of the time the faces go onto a busy_pattern instead of the second view."""
    import tensorflow as tf

    own, other = boxes_list[0], boxes_list[1]
    if pattern_share > 0:
        patterned = tf.random.uniform(()) < pattern_share
        images = tf.cond(patterned, lambda: tf.stack([images[0], busy_pattern(side)]), lambda: images)
        other = tf.cond(patterned, lambda: tf.zeros_like(other), lambda: other)
    margin = tf.random.uniform((), *config.SWAP_MARGIN)
    kept = tf.reduce_max(box_masks(own, margin, side), axis=0, keepdims=True)[..., None]  # (1, side, side, 1)
    kept = tf.nn.avg_pool2d(kept, 5, 1, "SAME")[0]  # a soft edge: a sharp rectangle would be a cue of its own
    other_masks = box_masks(other, 0.0, side)
    covered = tf.reduce_sum(other_masks * kept[..., 0], axis=[1, 2]) / tf.maximum(
        tf.reduce_sum(other_masks, axis=[1, 2]), 1.0)
    half_hidden = tf.reduce_any((covered > 0.25) & (covered < 0.75))
    has_face = tf.reduce_any(own[:, 2] > 0)

    def pasted():
        shown = tf.boolean_mask(tf.boolean_mask(other, other[:, 2] > 0), covered <= 0.25)
        merged = tf.concat([tf.boolean_mask(own, own[:, 2] > 0), shown], 0)
        return images[0] * kept + images[1] * (1 - kept), pad_box_tensor(merged)

    return tf.cond(has_face & ~half_hidden, pasted, lambda: (images[0], own))


def photo_dataset(photos: list[Photo], side: int, batch_size: int, seed: int = config.SPLIT_SEED,
                  mosaic_share: float = config.MOSAIC_SHARE, swap_share: float = config.BACKGROUND_SWAP_SHARE,
                  pattern_share: float = config.BACKGROUND_PATTERN_SHARE):
    """An endless, shuffled tf.data stream of (images (B, side, side, 3) float32, boxes (B, M, 4)) batches."""
    import tensorflow as tf

    def endless():
        rng = np.random.default_rng(seed)
        while True:
            for i in rng.permutation(len(photos)):
                yield photos[i].pixels, photos[i].boxes

    signature = (tf.TensorSpec((None, None, 3), tf.uint8), tf.TensorSpec((None, 4), tf.float32))

    def views(view_side):
        ds = tf.data.Dataset.from_generator(endless, output_signature=signature)
        return ds.map(lambda p, b: _padded_view(p, b, view_side), num_parallel_calls=tf.data.AUTOTUNE)

    singles = views(side)
    mosaics = views(side // 2).batch(4).map(lambda im, b: mosaic(im, b, side), num_parallel_calls=tf.data.AUTOTUNE)
    streams, weights = [singles, mosaics], [1 - mosaic_share - swap_share, mosaic_share]
    if swap_share > 0:
        streams.append(views(side).batch(2).map(lambda im, b: swap_background(im, b, side, pattern_share),
                                                num_parallel_calls=tf.data.AUTOTUNE))
        weights.append(swap_share)
    mixed = tf.data.Dataset.sample_from_datasets(streams, weights, seed=seed)
    return mixed.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _padded_view(pixels, boxes, side):
    image, visible = random_view(pixels, boxes, side)
    return image, pad_box_tensor(visible)
