"""The bundled model's recipe: a FaceTracker trained from scratch on many people's labelme folders at once.

`make bundle` runs it on every shared data set to make facetracker/assets/facetracker.keras, and
benchmarks/quality.py runs the same recipe with some sets held out, to measure it on people it never saw.
Unlike `facetracker train` (one person's augment output), it draws fresh random views and mosaics of the photos
every step (facetracker/data.py: photo_dataset), because a detector for anyone needs far more variety in face
size, position and light than a fixed set of variants on disk.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import keras

from facetracker import config
from facetracker.errors import FacetrackerError


@dataclass
class RecipeOptions:
    out: Path
    epochs: int = config.RECIPE_EPOCHS
    batch_size: int = config.RECIPE_BATCH_SIZE
    image_size: int = config.IMAGE_SIZE[config.DEFAULT_BACKBONE]
    lr: float | None = None  # None: config.RECIPE_LR of the backbone
    seed: int = config.SPLIT_SEED
    negative_repeat: int = config.RECIPE_NEGATIVE_REPEAT  # face-free photos are drawn this many times as often
    background_swap: float = config.BACKGROUND_SWAP_SHARE  # share of views whose faces go onto another's room
    background_pattern: float = config.BACKGROUND_PATTERN_SHARE  # share of those onto a made-up busy pattern
    box_weight: float = config.RECIPE_BOX_WEIGHT  # the box loss's weight against the face-score loss's 1
    log: Path | None = None  # one JSON line per epoch, for long runs in the background
    backbone: str = config.RECIPE_BACKBONE  # compact (from scratch), blazeface (from BlazeFace's weights), blazeface-lite
    start: Path | None = None  # a FaceTracker .keras to go on from (rebuilt at image_size), instead of new weights
    # (backbone blazeface-lite: start is a trained blazeface model, whose stem the lite one is first taught)
    lite_epochs: int = config.LITE_EPOCHS  # blazeface-lite's second stage: passes of the recipe after the stem's
    distill_epochs: int = config.LITE_DISTILL_EPOCHS  # passes over the views that teach the lite stem its features


def add_recipe_arguments(parser) -> None:
    """The recipe's own flags (RecipeOptions), for the argparse scripts that train with it: benchmarks/quality.py
    and benchmarks/train_bundle.py. Check them with recipe_option_problem."""
    parser.add_argument("--seed", type=int, default=RecipeOptions.seed,
                        help="the recipe's random seed: another seed shows how much one training moves the figures")
    parser.add_argument("--negative-repeat", type=int, default=RecipeOptions.negative_repeat,
                        help="draw each face-free photo this many times as often as a face photo")
    parser.add_argument("--background-swap", type=float, default=RecipeOptions.background_swap,
                        help="share of views whose faces are pasted onto another photo's room")
    parser.add_argument("--background-pattern", type=float, default=RecipeOptions.background_pattern,
                        help="share of those pasted onto a made-up busy pattern instead (needs --background-swap)")
    parser.add_argument("--backbone", choices=tuple(config.RECIPE_LR), default=RecipeOptions.backbone,
                        help="compact: the network designed here, from scratch; blazeface: MediaPipe BlazeFace's "
                             "feature extractor, starting from its weights")
    parser.add_argument("--box-weight", type=float, default=RecipeOptions.box_weight,
                        help="weight of the box loss against the face-score loss's 1")
    parser.add_argument("--image-size", type=int, default=RecipeOptions.image_size,
                        help="side of the square input the model trains at (a multiple of 32; smaller runs faster "
                             "and sees every face smaller)")


def recipe_option_problem(negative_repeat: int, background_swap: float, background_pattern: float,
                          image_size: int = RecipeOptions.image_size,
                          box_weight: float = RecipeOptions.box_weight) -> str | None:
    """What is wrong with these RecipeOptions values, as one line for the benchmarks' flags; None when nothing is."""
    from facetracker.export import check_image_size

    try:
        check_image_size(image_size)
    except FacetrackerError as error:
        return f"--image-size: {error}"
    if not box_weight > 0:
        return f"--box-weight must be above 0, got {box_weight}"
    if negative_repeat < 1:
        return f"--negative-repeat must be at least 1 (1: every photo as often), got {negative_repeat}"
    if not 0 <= background_swap <= 1 - config.MOSAIC_SHARE:
        return (f"--background-swap must be between 0 and {1 - config.MOSAIC_SHARE} (the rest are mosaics), "
                f"got {background_swap}")
    if not 0 <= background_pattern <= 1 or (background_pattern and not background_swap):
        return (f"--background-pattern must be between 0 and 1, and needs a --background-swap share to act on, "
                f"got {background_pattern}")
    return None


def set_samples(set_dir: Path) -> list:
    """Usable labels.Sample of one labelme folder (images/ + labels/), its face label name found by itself.

    Sets known to leave faces unlabelled (config.SETS_WITH_MISSING_LABELS) give no negatives: teaching a face
    as background does more harm than the few real negatives do good."""
    from facetracker.labels import resolve_face_labels, scan

    set_dir = Path(set_dir)
    face_labels, _ = resolve_face_labels(set_dir / config.LABELS)
    samples = scan(set_dir / config.IMAGES, set_dir / config.LABELS, face_labels).samples
    if set_dir.name in config.SETS_WITH_MISSING_LABELS:
        samples = [s for s in samples if s.has_face]
    if not any(s.has_face for s in samples):
        raise FacetrackerError("no labelled face in data set", set_dir, "check its labels/ folder and label names")
    return samples


def recipe_photos(set_dirs: list[Path], negative_repeat: int = config.RECIPE_NEGATIVE_REPEAT) -> list:
    """The decoded photos of `set_dirs` that one epoch draws from: every usable photo once, and each face-free one
    `negative_repeat` times (the same array again, not a copy)."""
    from facetracker.data import load_photos

    photos = load_photos([s for d in set_dirs for s in set_samples(d)])
    return photos + [photo for photo in photos if not len(photo.boxes)] * (negative_repeat - 1)


def build_recipe_model(opts: RecipeOptions):
    """The recipe's untrained FaceTracker: the compact network from scratch (per-image standardisation), or the
    blazeface backbone starting from BlazeFace's own weights (its [-1, 1] pixels); or opts.start's trained one."""
    from facetracker.model import BLAZEFACE_WEIGHTS, build_model, load_model, rebuilt

    if opts.start is not None:
        return rebuilt(load_model(opts.start), opts.image_size)
    if opts.backbone == "blazeface":
        return build_model("blazeface", image_size=opts.image_size, weights=BLAZEFACE_WEIGHTS, preprocessing="tf")
    return build_model(opts.backbone, image_size=opts.image_size, weights=None, preprocessing="standardize")


def train_on_sets(set_dirs: list[Path], opts: RecipeOptions):
    """Train a new FaceTracker on all photos of `set_dirs` for opts.epochs passes; save it to opts.out.

    blazeface-lite without a start trains in two stages: a blazeface model first (saved as `<out>-blazeface.keras`,
    opts.epochs passes), then the lite one made from it (opts.lite_epochs passes)."""
    if opts.backbone == "blazeface-lite" and opts.start is None:
        teacher = opts.out.with_name(f"{opts.out.stem}-blazeface.keras")
        train_on_sets(set_dirs, replace(opts, backbone="blazeface", out=teacher))
        return train_on_sets(set_dirs, replace(opts, start=teacher, epochs=opts.lite_epochs, lr=None))
    from facetracker.data import photo_dataset
    from facetracker.train import learning_rate_schedule, save_inference_model

    keras.utils.set_random_seed(opts.seed)
    photos = recipe_photos(set_dirs, opts.negative_repeat)
    steps = max(1, len(photos) // opts.batch_size)
    dataset = photo_dataset(photos, opts.image_size, opts.batch_size, seed=opts.seed, swap_share=opts.background_swap,
                            pattern_share=opts.background_pattern)
    model = build_recipe_model(opts)
    if opts.backbone == "blazeface-lite" and model.backbone_name != "blazeface-lite":
        from facetracker.model import lightened

        teacher, model = model, lightened(model)
        distill_stem(model, teacher, dataset, steps * opts.distill_epochs, opts.log)
    lr = opts.lr or config.RECIPE_LR[opts.backbone]
    model.compile(keras.optimizers.Adam(learning_rate_schedule(lr, opts.epochs, steps)), box_weight=opts.box_weight)
    callbacks = [EpochLog(opts.log, len(photos), opts.out)] if opts.log else []
    model.fit(dataset, epochs=opts.epochs, steps_per_epoch=steps, callbacks=callbacks, verbose=0 if opts.log else "auto")
    save_inference_model(model, opts.out)
    return model


def distill_stem(lite, teacher, dataset, steps: int, log: Path | None = None) -> float:
    """Teach blazeface-lite's new stem to give the stride-4 features that the teacher's BlazeFace stem gives, on the
    recipe's own views (mean squared error; nothing else trains), so the trained layers after it see what they
    were trained on. Returns the mean loss of the last tenth of the steps."""
    import tensorflow as tf

    from facetracker.model import lite_stem_output
    from facetracker.train import learning_rate_schedule

    student = keras.Model(lite.backbone.input, lite_stem_output(lite.backbone))
    wanted = keras.Model(teacher.backbone.input, lite_stem_output(teacher.backbone))
    optimizer = keras.optimizers.Adam(learning_rate_schedule(config.LITE_DISTILL_LR, 1, steps))

    @tf.function
    def step(images):
        pixels = lite.preprocess(images)
        target = wanted(pixels, training=False)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(student(pixels, training=True) - target))
        optimizer.apply_gradients(zip(tape.gradient(loss, student.trainable_variables), student.trainable_variables))
        return loss

    started, losses = time.monotonic(), []
    for images, _ in dataset.take(steps):
        losses.append(float(step(images)))
    tail = losses[-max(1, len(losses) // 10):]
    last = sum(tail) / len(tail)
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"distill_steps": steps, "minutes": round((time.monotonic() - started) / 60, 2),
                                "first_loss": round(losses[0], 4), "last_loss": round(last, 4)}) + "\n")
    return last


class EpochLog(keras.callbacks.Callback):
    """Appends {"epoch", "minutes", "photos", losses...} per epoch to a JSONL file (flushed: readable mid-run),
    and saves the model so far beside `out` (`<out stem>.last.keras`): a long run that is stopped keeps it."""

    def __init__(self, path: Path, photos: int, out: Path):
        super().__init__()
        self.path, self.photos, self.started = Path(path), photos, time.monotonic()
        self.last = Path(out).with_suffix(".last.keras")

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, "minutes": round((time.monotonic() - self.started) / 60, 2), "photos": self.photos}
        row.update({k: round(float(v), 4) for k, v in (logs or {}).items() if math.isfinite(float(v))})
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        from facetracker.train import save_inference_model

        save_inference_model(self.model, self.last)
