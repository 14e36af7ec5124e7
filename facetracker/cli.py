"""The `facetracker` command: a thin Typer layer over the modules, which tests call directly.

Heavy imports (TensorFlow, OpenCV, albumentations) happen inside each command so `--help` stays fast.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from facetracker import __version__, config
from facetracker.errors import FacetrackerError
from facetracker.output import import_tensorflow_quietly

# TensorFlow's C++ start-up notes (absl, cpu_feature_guard) would break "one clear line" on stderr;
# read when TensorFlow is first imported, so set before any command imports it. Override by setting it yourself.
# (What this no longer silences in TF 2.21 is muted by import_tensorflow_quietly, called by the TF commands.)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

app = typer.Typer(
    help="From an empty folder to a real-time face tracker on your own webcam.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def friendly(func):
    """Turn expected failures into one line on stderr and a non-zero exit, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except FacetrackerError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted: stopped by the user, finished files were kept", err=True)
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:  # a bug or an environment problem we did not foresee
            if os.environ.get("FACETRACKER_DEBUG"):
                raise
            typer.echo(f"error: unexpected {exc.__class__.__name__}: {exc} — "
                       "rerun with FACETRACKER_DEBUG=1 for details and report it", err=True)
            raise typer.Exit(1) from None

    return wrapper


def _version(value: bool):
    if value:
        typer.echo(f"facetracker {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")):
    """From an empty folder to a real-time face tracker on your own webcam."""


CAMERA_HELP = "Device index (0), video file or stream URL."
LABEL_HELP = ("labelme label name that counts as a face (repeatable; default 'face', or the one name every label "
              "uses).")


def face_labels(label_names: Optional[List[str]], *labels_dirs: Path) -> tuple[str, ...]:
    """The face label names for a command that reads these label folders: --label when given, else the default
    or the one name all labels share (printed as a note); see labels.resolve_face_labels."""
    from facetracker.labels import resolve_face_labels

    names, note = resolve_face_labels(labels_dirs, tuple(label_names or config.FACE_LABELS), bool(label_names))
    if note:
        typer.echo(note, err=True)
    return names


def split_label_dirs(data: Path) -> list[Path]:
    return [data / part / config.LABELS for part in config.SPLITS]


def model_path(model: Optional[Path], fast: bool = True) -> Path:
    """--model, or the default model when it is left out. A cut-off .keras file is one clear error here, before
    seconds of importing TensorFlow (load_model checks again for callers that skip the CLI)."""
    from facetracker.files import check_keras_archive
    from facetracker.inference import resolve_model_path

    return check_keras_archive(resolve_model_path(model, fast))


@app.command()
@friendly
def collect(
    camera: str = typer.Option("0", help=CAMERA_HELP),
    count: int = typer.Option(config.COLLECT_COUNT, min=1, help="Frames to save."),
    interval: float = typer.Option(config.COLLECT_INTERVAL, min=0.0, help="Seconds between saved frames."),
    out: Path = typer.Option(config.DATA_DIR / config.IMAGES, help="Folder for the <uuid>.jpg frames."),
    preview: bool = typer.Option(True, help="Show a live preview window when a display exists (q quits)."),
):
    """Save frames from a camera, video file or stream as <uuid1>.jpg images."""
    from facetracker.collect import collect_frames

    collect_frames(camera, count=count, interval=interval, out_dir=out, preview=preview)


@app.command()
@friendly
def label(
    images: Path = typer.Option(config.DATA_DIR / config.IMAGES, help="Folder of images to label."),
    labels: Path = typer.Option(config.DATA_DIR / config.LABELS, help="Folder for labelme JSON files."),
    check: bool = typer.Option(False, "--check", help="Validate the labels and print a table instead "
                                                      "(with --model: also the model's opinion on every label)."),
    label_names: Optional[List[str]] = typer.Option(None, "--label", help=LABEL_HELP),
    prelabel: bool = typer.Option(False, "--prelabel", help="First write the model's face boxes, flagged predicted, "
                                                            "for every image without a label file."),
    model: Optional[Path] = typer.Option(None, help="Model for --prelabel (default: models/facetracker.keras if it "
                                                    "exists, else the bundled model) or --check."),
    threshold: float = typer.Option(config.PRELABEL_THRESHOLD, min=0.0, max=1.0,
                                    help="Face score from which the model's box is a pre-label, or (--check) a face "
                                         "the model sees."),
    missing_score: float = typer.Option(config.CHECK_MISSING_SCORE, "--missing-score", min=0.0, max=1.0,
                                        help="--check --model: an image without a face box where the model scores "
                                             "this is a probable missing label."),
    open_labelme: bool = typer.Option(True, "--open/--no-open", help="--prelabel: open labelme afterwards."),
):
    """Draw one `face` rectangle per face in labelme (--prelabel: the model draws first), or --check a label
    folder."""
    if check and prelabel:
        raise FacetrackerError("--check and --prelabel do different things", None,
                               "run facetracker label --prelabel first, then facetracker label --check")
    if not open_labelme and not prelabel:
        raise FacetrackerError("--no-open only applies to --prelabel", None,
                               "facetracker label --prelabel --no-open writes the pre-labels without labelme")
    if model is not None and not (check or prelabel):
        raise FacetrackerError("--model is used by --prelabel and --check", None,
                               "facetracker label --prelabel --model M, or facetracker label --check --model M")
    names = face_labels(label_names, labels)
    if check:
        from facetracker.annotate import check_labels

        detector = None
        if model is not None:
            from facetracker.inference import Detector

            detector = Detector.load(model_path(model))
        check_labels(images, labels, names, detector=detector, threshold=threshold, missing_score=missing_score)
    elif prelabel:
        from facetracker.annotate import prelabel_and_launch

        raise typer.Exit(prelabel_and_launch(images, labels, names, model_path(model), threshold, open_labelme))
    else:
        from facetracker.annotate import launch_labelme

        raise typer.Exit(launch_labelme(images, labels, names))


@app.command()
@friendly
def split(
    data: Path = typer.Option(config.DATA_DIR, help="Folder holding images/ and labels/."),
    ratios: tuple[float, float, float] = typer.Option(config.SPLIT_RATIOS, help="train val test fractions."),
    seed: int = typer.Option(config.SPLIT_SEED, help="Random seed (the split is deterministic for a seed)."),
    force: bool = typer.Option(False, "--force", help="Redo an existing split from scratch."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan, move nothing."),
    label_names: Optional[List[str]] = typer.Option(None, "--label", help=LABEL_HELP),
    labelled_only: bool = typer.Option(False, "--labelled-only", help="Leave images without a label file in "
                                       "images/ (to pre-label them later) instead of splitting them as negatives."),
):
    """Move images and their labels into train/val/test, negatives in every part."""
    from facetracker.split import split_dataset

    split_dataset(data, ratios=ratios, seed=seed, force=force, dry_run=dry_run, labelled_only=labelled_only,
                  face_labels=face_labels(label_names, data / config.LABELS, *split_label_dirs(data)))


@app.command()
@friendly
def augment(
    data: Path = typer.Option(config.DATA_DIR, help="Split data folder (train/val/test)."),
    out: Path = typer.Option(config.AUG_DIR, help="Output folder for augmented images and labels."),
    variants: int = typer.Option(config.AUG_VARIANTS, min=1, help="Augmented copies per image."),
    seed: int = typer.Option(config.AUG_SEED, help="Random seed (output is reproducible for a seed)."),
    workers: int = typer.Option(0, min=0, help="Worker processes (0 = all cores)."),
    force: bool = typer.Option(False, "--force", help="Rebuild an existing output folder."),
    label_names: Optional[List[str]] = typer.Option(None, "--label", help=LABEL_HELP),
    background_crops: int = typer.Option(config.AUG_BACKGROUND_CROPS, min=0,
                                         help="Face-free crops cut from each labelled image as extra negatives."),
    pastes: int = typer.Option(config.AUG_PASTES, min=0,
                               help="Copies of each face pasted onto other images' backgrounds (class 1)."),
):
    """Write augmented copies of every image with boxes kept consistent."""
    from facetracker.augment import augment_dataset

    augment_dataset(data, out, variants=variants, seed=seed, workers=workers or os.cpu_count() or 1,
                    force=force, face_labels=face_labels(label_names, *split_label_dirs(data)),
                    background_crops=background_crops, pastes=pastes)


@app.command()
@friendly
def live(
    camera: str = typer.Option("0", help=CAMERA_HELP),
    model: Optional[Path] = typer.Option(None, help="Model .keras/.tflite/.onnx (default: models/facetracker.keras "
                                                    "if it exists, else the bundled model)."),
    threshold: float = typer.Option(config.TRACK_THRESHOLD, help="Face score that starts a track (a shown face is kept "
                                                           f"down to threshold - {config.TRACK_HYSTERESIS_MARGIN:g})."),
    max_faces: int = typer.Option(config.TRACK_MAX_FACES, "--max-faces", help="Track at most this many faces at once."),
    record: Optional[Path] = typer.Option(None, help="Also write the annotated video here (.mp4 or .avi)."),
    tracks: Optional[Path] = typer.Option(None, "--tracks", help="Write every frame's tracks here, one JSON line per "
                                                                 "frame (ids, scores, boxes in pixels)."),
    show: Optional[bool] = typer.Option(None, "--show/--no-show",
                                        help="Show a window, q or Esc quits (default: show when a display exists)."),
    max_frames: Optional[int] = typer.Option(None, min=1, help="Stop after this many frames."),
    mirror: bool = typer.Option(False, "--mirror", help="Flip the picture left-right (selfie view)."),
    smooth: str = typer.Option(config.TRACK_SMOOTHER, help="Box smoothing over time: kalman, ema or none."),
    no_smooth: bool = typer.Option(False, "--no-smooth", help="Same as --smooth none: the raw per-frame box."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --record or --tracks file."),
    workers: int = typer.Option(config.LIVE_DETECT_WORKERS, "--workers",
                                help="Model copies run on the next frames meanwhile (TFLite/ONNX models; 1: none)."),
    json_out: bool = typer.Option(False, "--json", help="Print the run's stats as one JSON line."),
):
    """Track every face on a camera, video file or stream: box, id, score and FPS drawn on every frame."""
    from facetracker.live import run_live

    # Without --model or a model of yours, run_live picks the bundled file fitted to the camera's frames.
    model = model_path(model) if model is not None or config.DEFAULT_MODEL.exists() else None
    stats = run_live(camera, model=model, threshold=threshold, record=record, show=show,
                     max_frames=max_frames, mirror=mirror, smooth="none" if no_smooth else smooth, force=force,
                     max_faces=max_faces, tracks=tracks, workers=workers)
    _print_live_stats(stats, json_out)


@app.command()
@friendly
def demo(
    out: Path = typer.Option(config.DEMO_DIR, help="Folder for the synthesised clip and the annotated demo.mp4."),
    model: Optional[Path] = typer.Option(None, help="Model to run (default: the bundled model)."),
    show: bool = typer.Option(False, "--show/--no-show", help="Also play it in a window (needs a display)."),
    json_out: bool = typer.Option(False, "--json", help="Print the run's stats as one JSON line."),
):
    """Track two faces on a built-in clip (no camera, no download) and write an annotated video."""
    from facetracker.demo import run_demo

    stats, clip = run_demo(out, model=model and model_path(model), show=show)
    if not json_out:
        typer.echo(f"clip: {clip} (scikit-image's astronaut photograph, and a smaller mirrored copy of her moving "
                   "on its own path)")
    _print_live_stats(stats, json_out)


def _print_live_stats(stats, json_out: bool) -> None:
    typer.echo(stats.to_json() if json_out else stats.describe())
    if stats.message:
        saved = f"; recording kept: {stats.record} ({stats.recorded_frames} frames)" if stats.record else ""
        typer.echo(f"stopped: {stats.message}{saved}", err=True)
    if stats.exit_code:
        raise typer.Exit(stats.exit_code)


@app.command()
@friendly
def train(
    data: Path = typer.Option(config.AUG_DIR, help="Augmented data folder (train/ and val/)."),
    epochs: int = typer.Option(config.EPOCHS, min=1, help="Epochs to train (in total, also with --resume)."),
    batch_size: int = typer.Option(config.BATCH_SIZE, min=1, help="Images per step (over all devices)."),
    steps_per_epoch: int = typer.Option(config.STEPS_PER_EPOCH, min=0,
                                        help="Steps per epoch, drawn from the shuffled, repeated train split "
                                             "(never more than one full pass; 0: always a full pass)."),
    weights: str = typer.Option(config.WEIGHTS, help="Where training starts: bundled (fine-tune the bundled face "
                                "model) | none (from scratch) | imagenet (backbone only) | blazeface (the blazeface "
                                "backbone from MediaPipe BlazeFace's weights) | PATH to a FaceTracker .keras file "
                                "(fine-tuned) or a keras.applications weights file."),
    backbone: Optional[str] = typer.Option(None, help="compact (default, designed for CPUs) | blazeface | "
                                           "blazeface-lite | mobilenetv2 | vgg16; a FaceTracker start keeps its "
                                           "own."),
    image_size: Optional[int] = typer.Option(None, min=32, help="Square input side, a multiple of 32 (default: 192; "
                                             "a FaceTracker start keeps its own)."),
    alpha: Optional[float] = typer.Option(None, help=f"MobileNet width multiplier (default {config.ALPHA})."),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate, warm-up then cosine decay (default: "
                                       f"{config.LEARNING_RATE['finetune']:g} fine-tuning a FaceTracker, "
                                       f"{config.LEARNING_RATE['scratch']:g} from scratch, "
                                       f"{config.LEARNING_RATE['pretrained']:g} from backbone weights)."),
    train_batchnorm: bool = typer.Option(not config.FREEZE_BATCHNORM, "--train-batchnorm/--freeze-batchnorm",
                                         help="Fine-tuning a FaceTracker: also update its BatchNorm statistics "
                                              "(default: kept, it then forgets less of other people)."),
    freeze_backbone: bool = typer.Option(config.FREEZE_BACKBONE, "--freeze-backbone/--train-backbone",
                                         help="Fine-tuning a FaceTracker: train only its neck and head (default: "
                                              "the whole network, BatchNorm aside)."),
    blend: Optional[float] = typer.Option(None, min=0.0, max=1.0,
                                          help="Fine-tuning a FaceTracker: the saved model goes this share of the way "
                                               "from the starting weights to the fine-tuned ones (1: fine-tuned only; "
                                               "less forgets less of other people and learns less of yours). Default: "
                                               "the smallest share that does as well on your validation images."),
    logdir: Path = typer.Option(config.LOGS_DIR, help="TensorBoard folder (view with: tensorboard --logdir logs)."),
    out: Path = typer.Option(config.DEFAULT_MODEL, help="Where the best model (.keras) is saved."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run saved beside --out."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --out and its checkpoint."),
    unsafe: bool = typer.Option(False, "--unsafe", help="Allow loading a legacy .h5 checkpoint (can run code)."),
    patience: int = typer.Option(config.PATIENCE, min=0, help="Stop after N epochs without a better val loss (0: never)."),
    strategy: str = typer.Option("auto", help="auto | mirrored | multiworker (tf.distribute; multiworker reads "
                                 "TF_CONFIG)."),
    run_name: Optional[str] = typer.Option(None, help="TensorBoard run name (default: date-time)."),
    class_weight: float = typer.Option(config.CLASS_WEIGHT, min=0.0, help="Weight of the face-score loss."),
    box_weight: float = typer.Option(config.BOX_WEIGHT, min=0.0, help="Weight of the box loss."),
    box_loss: str = typer.Option(config.BOX_LOSS, help="giou (default) | giou_l1 | ciou | corner (the notebook's)."),
    preprocessing: str = typer.Option(config.PREPROCESSING, help="auto (a FaceTracker start's own; backbone's own "
                                      "with backbone weights; per-image standardisation from scratch) | tf | caffe | "
                                      "standardize."),
):
    """Fine-tune the bundled face model on your augmented data (or train from scratch), with an ETA, TensorBoard
    logs and resumable checkpoints."""
    import_tensorflow_quietly()
    from rich.console import Console

    from facetracker.train import TrainOptions, summary_table, train as run_training

    result = run_training(TrainOptions(
        data=data, out=out, epochs=epochs, batch_size=batch_size, backbone=backbone, image_size=image_size,
        alpha=alpha, lr=lr, weights=weights, logdir=logdir, run_name=run_name, resume=resume, force=force,
        unsafe=unsafe, patience=patience, strategy=strategy, class_weight=class_weight, box_weight=box_weight,
        box_loss=box_loss, preprocessing=preprocessing, steps_per_epoch=steps_per_epoch,
        freeze_batchnorm=not train_batchnorm, freeze_backbone=freeze_backbone, blend=blend))
    Console().print(summary_table(result))


MODEL_HELP = ("Model: .keras, or an exported .tflite/.onnx/SavedModel folder "
              "(default: models/facetracker.keras if it exists, else the bundled model).")


@app.command()
@friendly
def evaluate(
    model: Optional[Path] = typer.Option(None, help=MODEL_HELP),
    data: Path = typer.Option(config.EVAL_DATA, help="labelme folder with images/ and labels/ (raw, not augmented)."),
    threshold: float = typer.Option(config.THRESHOLD, min=0.0, max=1.0, help="Face score that counts as a face."),
    label_names: Optional[List[str]] = typer.Option(None, "--label", help=LABEL_HELP),
    out: Path = typer.Option(config.REPORTS_DIR, help="Folder for evaluation.json and the PNG plots."),
    force: bool = typer.Option(False, "--force", help="Replace an existing report in --out."),
    unsafe: bool = typer.Option(False, "--unsafe", help="Allow loading a legacy .h5 model (can run code)."),
):
    """AP@0.5 and AP@[.5:.95] over every face, mean IoU, recall/precision/F1, false positives, latency."""
    import_tensorflow_quietly()
    from facetracker.evaluate import check_report_paths, evaluate_folder, summary_lines, write_report
    from facetracker.inference import Detector

    check_report_paths(out, force)
    names = face_labels(label_names, data / config.LABELS)  # a label problem stops before the slow model load
    detector = Detector.load(model_path(model), unsafe=unsafe)
    report = evaluate_folder(detector, data / config.IMAGES, data / config.LABELS, names, threshold)
    paths = write_report(report, out, force=force)
    for line in summary_lines(report):
        typer.echo(line)
    typer.echo(f"report: {paths['json']}, {paths['curve']}, {paths['grid']}")


@app.command()
@friendly
def predict(
    sources: List[Path] = typer.Argument(..., help="Images, folders of images or video files."),
    model: Optional[Path] = typer.Option(None, help=MODEL_HELP),
    threshold: float = typer.Option(config.THRESHOLD, min=0.0, max=1.0, help="Face score that counts as a face."),
    out: Path = typer.Option(config.PREDICT_OUT, help="Folder for the annotated copies."),
    jsonl: Optional[Path] = typer.Option(None, help="Also write one JSON line per image / video frame here."),
    force: bool = typer.Option(False, "--force", help="Replace existing outputs."),
    unsafe: bool = typer.Option(False, "--unsafe", help="Allow loading a legacy .h5 model (can run code)."),
):
    """Find every face in images and videos: annotated copies in --out, boxes in pixels in --jsonl."""
    from rich.progress import Progress

    from facetracker.inference import Detector
    from facetracker.predict import collect_items, predict as run_predict

    items = collect_items(sources)  # a missing SOURCE fails before the model is loaded
    detector = Detector.load(model_path(model), unsafe=unsafe)
    with Progress(transient=True) as bar:
        task = bar.add_task("predicting", total=len(items))
        summary = run_predict(sources, detector, threshold, out, jsonl, force,
                              warn=lambda line: bar.console.print(f"warning: {line}", markup=False, highlight=False,
                                                                  soft_wrap=True),
                              progress=lambda n: bar.advance(task, n))
    frames = f" and {summary.frames} video frames" if summary.frames else ""
    if summary.skipped and not summary.images and not summary.frames:
        raise FacetrackerError(f"none of the {len(summary.skipped)} inputs could be read (warnings above)", None,
                               "check that the images open and the videos play")
    typer.echo(f"{summary.images} images{frames}: {summary.face_boxes} faces in {summary.faces} (score >= {threshold}); "
               f"{len(summary.skipped)} skipped; annotated copies in {out}"
               + (f"; JSONL: {summary.jsonl}" if summary.jsonl else ""))


@app.command()
@friendly
def export(
    model: Optional[Path] = typer.Option(None, help="Trained .keras model to export (default: "
                                                    "models/facetracker.keras if it exists, else the bundled model)."),
    format: str = typer.Option(..., "--format", help="tflite | onnx | savedmodel."),
    quantize: str = typer.Option("none", help="none | dynamic (int8 weights) | int8 (needs --data; TFLite only)."),
    data: Optional[Path] = typer.Option(None, help="Folder of real images: int8 calibration and the output check."),
    out: Optional[Path] = typer.Option(None, help="Output file/folder (default: beside --model)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing export."),
    unsafe: bool = typer.Option(False, "--unsafe", help="Allow loading a legacy .h5 model (can run code)."),
    image_size: Optional[int] = typer.Option(None, help="Square input side of the export, a multiple of 32 "
                                             "(default: the model's own; 160 runs the bundled model ~1.5x faster "
                                             "and sees small faces smaller)."),
    frame: Optional[str] = typer.Option(None, help="WIDTHxHEIGHT of the frames it will run on, e.g. 640x480: "
                                        "the input is fitted to their aspect (the same faces; a sixth less "
                                        "to compute for 4:3, a third less for 16:9)."),
):
    """Export to TFLite/ONNX/SavedModel and check the export against the Keras model on real images."""
    from facetracker.export import check_format, check_image_size, export_model, parse_frame_size

    check_format(format, quantize)  # before TensorFlow's seconds of start-up, and before anything indexed by format
    check_image_size(image_size)
    frame_size = parse_frame_size(frame)
    import_tensorflow_quietly()
    result = export_model(model_path(model, fast=False), format, quantize, data=data, out=out, force=force,
                          unsafe=unsafe, image_size=image_size, frame=frame_size)
    tol_score, tol_box = result.tolerance
    typer.echo(f"exported {result.path} ({result.format}, quantize {result.quantize}, "
               f"{result.size_bytes / 1e6:.1f} MB, {'{}x{}'.format(*result.input_size)} px input)")
    typer.echo(f"checked on {result.check_source}: largest difference from Keras: score {result.score_diff:.2e} "
               f"(allowed {tol_score:g}), box {result.box_diff:.2e} (allowed {tol_box:g}; fraction of the image, "
               f"mean {result.box_mean_diff:.1e})")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
