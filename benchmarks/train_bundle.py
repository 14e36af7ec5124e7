"""`make bundle`: retrain the bundled model on every shared data set, with the recipe of facetracker/recipe.py.

    .venv/bin/python benchmarks/train_bundle.py [--epochs 60] [--datasets DIR] [--out DIR]
                                                [--negative-repeat N] [--background-swap SHARE]
                                                [--background-pattern SHARE] [--seed S]
                                                [--backbone B] [--start BLAZEFACE.keras]

With --backbone blazeface-lite (not the shipped recipe; docs/quality.md, "A cheaper stem") it trains a blazeface model
for --epochs (DIR/facetracker-blazeface.keras), then makes the lite one from it; --start takes an already trained
blazeface model instead of that first stage.
--datasets defaults to $FACETRACKER_DATASETS, else ../shared/datasets beside the repository.
Writes DIR/facetracker.keras and its TFLite exports, DIR/facetracker.tflite and the ones fitted to common cameras'
frames (config.BUNDLED_FITTED_FRAMES: DIR/facetracker-192x160.tflite for 640x480, ...), each checked against Keras
by `facetracker export`, plus DIR/facetracker.log.jsonl with one line per epoch. DIR defaults to
benchmarks/results/bundle/; copy the model files into facetracker/assets/ to ship them. The log is written as
training goes, so a run in the background can be followed with `tail -f`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(REPO / "benchmarks"))

from facetracker import config  # noqa: E402
from facetracker.recipe import RecipeOptions, add_recipe_arguments, recipe_option_problem, train_on_sets  # noqa: E402
from shared_data import DATASETS  # noqa: E402  (benchmarks/shared_data.py)


def shared_sets(root: Path) -> list[Path]:
    if not root.is_dir():
        sys.exit(f"error: no data set folder at {root}: pass --datasets, or set FACETRACKER_DATASETS")
    sets = sorted(p for p in root.iterdir() if (p / config.IMAGES).is_dir())
    if not sets:
        sys.exit(f"error: no labelme data sets (folders with images/) in {root} — pass --datasets")
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=DATASETS,
                        help="the labelme sets to train on (default: $FACETRACKER_DATASETS or ../shared/datasets)")
    parser.add_argument("--epochs", type=int, default=config.RECIPE_EPOCHS)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bundle")
    parser.add_argument("--start", type=Path, help="with --backbone blazeface-lite: a trained blazeface FaceTracker to "
                                                    "make the lite model from, instead of training one first")
    add_recipe_arguments(parser)
    args = parser.parse_args()
    if args.start is not None and args.backbone != "blazeface-lite":
        sys.exit("error: --start is for --backbone blazeface-lite (the model its stem is taught from); drop it")
    if args.start is not None and not args.start.is_file():
        sys.exit(f"error: no model file at {args.start}: pass a trained blazeface FaceTracker .keras to --start")
    if problem := recipe_option_problem(args.negative_repeat, args.background_swap, args.background_pattern,
                                        args.image_size, args.box_weight):
        sys.exit(f"error: {problem}")

    sets = shared_sets(args.datasets)
    args.out.mkdir(parents=True, exist_ok=True)
    model_path, log = args.out / "facetracker.keras", args.out / "facetracker.log.jsonl"
    log.unlink(missing_ok=True)
    started = time.monotonic()
    epochs = config.LITE_EPOCHS if args.start else args.epochs
    print(f"training on {len(sets)} sets for {epochs} epochs{' from ' + str(args.start) if args.start else ''}; "
          f"progress in {log}", flush=True)
    train_on_sets(sets, RecipeOptions(out=model_path, epochs=epochs, log=log, start=args.start,
                                      negative_repeat=args.negative_repeat, seed=args.seed,
                                      background_swap=args.background_swap,
                                      background_pattern=args.background_pattern, backbone=args.backbone,
                                      image_size=args.image_size, box_weight=args.box_weight))
    print(f"trained in {(time.monotonic() - started) / 60:.1f} min: {model_path}", flush=True)

    from facetracker.boxes import fitted_input
    from facetracker.export import export_model
    from facetracker.model import load_model

    check_images = args.datasets / "webcam-a" / config.IMAGES
    exports = [export_model(model_path, "tflite", data=check_images, out=args.out / "facetracker.tflite", force=True)]
    side = load_model(model_path).image_size
    for frame in config.BUNDLED_FITTED_FRAMES:  # what `live` runs for these cameras' frames
        width, height = fitted_input(*frame, side)
        out = args.out / config.BUNDLED_FITTED_MODEL_NAME.format(width=width, height=height)
        exports.append(export_model(model_path, "tflite", data=check_images, out=out, force=True, frame=frame))
    for result in exports:
        print(f"exported {result.path} (largest score difference {result.score_diff:.1e})")
    print(f"to ship: cp {model_path} {' '.join(str(r.path) for r in exports)} {REPO / 'facetracker' / 'assets'}/")


if __name__ == "__main__":
    main()
