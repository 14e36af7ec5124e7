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
LABEL_HELP = "labelme label name that counts as a face (repeatable)."


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
    check: bool = typer.Option(False, "--check", help="Validate the labels and print a table instead."),
    label_names: Optional[List[str]] = typer.Option(None, "--label", help=LABEL_HELP),
):
    """Draw one `face` rectangle per image in labelme, or --check a label folder."""
    names = tuple(label_names or config.FACE_LABELS)
    if check:
        from facetracker.annotate import check_labels

        check_labels(images, labels, names)
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
):
    """Move images and their labels into train/val/test, negatives in every part."""
    from facetracker.split import split_dataset

    split_dataset(data, ratios=ratios, seed=seed, force=force, dry_run=dry_run,
                  face_labels=tuple(label_names or config.FACE_LABELS))


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
):
    """Write augmented copies of every image with boxes kept consistent."""
    from facetracker.augment import augment_dataset

    augment_dataset(data, out, variants=variants, seed=seed, workers=workers or os.cpu_count() or 1,
                    force=force, face_labels=tuple(label_names or config.FACE_LABELS))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
