"""`facetracker label`: draw face boxes in the real labelme (after the model's pre-labels with `--prelabel`), or
`--check` what a label folder holds (with the model's opinion on every label with `--check --model`)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.table import Table

from facetracker import config, labels, prelabel
from facetracker.display import HOW_TO_GET_ONE, display_problem
from facetracker.errors import FacetrackerError
from facetracker.files import ensure_writable_dir, list_images
from facetracker.output import say

# Run labelme's own entry point, with cv2 hidden. labelme imports imgviz, which imports cv2 when it can;
# the opencv-python GUI wheel then points QT_QPA_PLATFORM_PLUGIN_PATH at its own Qt build, and PyQt5 aborts
# ("Could not load the Qt platform plugin xcb"). Without cv2, imgviz falls back to Pillow, as in a plain
# labelme install. The `labelme` console script itself cannot do this, so it is not used.
_LABELME_BOOTSTRAP = ("import sys; sys.modules['cv2'] = None; sys.argv[0] = 'labelme'; "
                      "from labelme.__main__ import main; sys.exit(main())")
_QT_PATH_VARIABLES = ("QT_QPA_PLATFORM_PLUGIN_PATH", "QT_PLUGIN_PATH", "QT_QPA_FONTDIR")
LABELME_LOG = Path("~/.cache/labelme/labelme.log")
STOP_TIMEOUT = 5.0  # seconds labelme gets to exit after SIGTERM before it is killed
SKIPPED_SHOWN = 20

# ---------------------------------------------------------------------------------------------- label


def launch_labelme(images: Path, labels_dir: Path, names: tuple[str, ...] = config.FACE_LABELS,
                   console: Console | None = None) -> int:
    """Open labelme on `images`, saving to `labels_dir`; block until it is closed and return its exit status."""
    status = wait_for_labelme(start_labelme(images, labels_dir, names))
    image_files = list_images(images)
    done = sum((Path(labels_dir) / f"{image.stem}.json").exists() for image in image_files)
    say(console or Console(), f"labelme closed: {done} of {len(image_files)} images in {images} have a label "
        f"in {labels_dir} — next: facetracker label --check")
    return status


def prelabel_and_launch(images: Path, labels_dir: Path, names: tuple[str, ...], model: Path | None,
                        threshold: float = config.PRELABEL_THRESHOLD, open_labelme: bool = True,
                        console: Console | None = None) -> int:
    """`label --prelabel`: the model's face boxes into a label file for every image without one (flagged
    predicted), a one-line summary, then labelme on the folder exactly as `label` opens it (unless not
    `open_labelme`). `model` None: the default model. Returns labelme's exit status (0 without labelme)."""
    from rich.progress import Progress

    from facetracker.inference import Detector, resolve_model_path

    console = console or Console()
    if open_labelme:  # before the pre-labels: a missing display is reported before any work is done
        check_labelme_can_start(images, names, instead="; or pass --no-open to only write the pre-labels")
    elif not list_images(images):
        raise FacetrackerError("no images to label", images, "collect some first: facetracker collect")
    ensure_writable_dir(labels_dir)
    detector = Detector.load(resolve_model_path(model))
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("pre-labelling", total=len(list_images(images)))
        summary = prelabel.prelabel_folder(detector, images, labels_dir, names[0], threshold,
                                           progress=lambda n: bar.advance(task, n))
    say(console, f"{summary.describe(threshold)} — in {labels_dir}")
    for line in summary.skipped[:SKIPPED_SHOWN]:
        say(console, f"  skipped: {line}")
    if summary.skipped and not (summary.prelabelled or summary.negatives or summary.kept):
        raise FacetrackerError(f"none of the {len(summary.skipped)} images could be read (listed above)", images,
                               "delete or replace the broken files")
    if not open_labelme:
        say(console, "next: facetracker label (review the predicted boxes), then facetracker label --check")
        return 0
    say(console, f"review them in labelme: every box the model drew has '{config.PREDICTED_FLAG}' ticked in its "
                 "label dialog (double-click it in the label list); untick it once the box is right")
    return launch_labelme(images, labels_dir, names, console)


@dataclass
class LabelmeRun:
    process: subprocess.Popen
    log: IO[str]  # labelme's stderr, kept out of the terminal and shown only when labelme fails


def start_labelme(images: Path, labels_dir: Path, names: tuple[str, ...] = config.FACE_LABELS,
                  env: Mapping[str, str] | None = None) -> LabelmeRun:
    """Start labelme without waiting; raise one clear error when it cannot run here."""
    images = Path(images)
    env = dict(os.environ if env is None else env)
    check_labelme_can_start(images, names, env)
    labels_dir = ensure_writable_dir(labels_dir)
    log = tempfile.TemporaryFile(mode="w+", prefix="facetracker-labelme-")
    process = subprocess.Popen(labelme_command(images, labels_dir, names), env=labelme_environment(env),
                               stdout=subprocess.DEVNULL, stderr=log)
    return LabelmeRun(process, log)


def check_labelme_can_start(images: Path, names: tuple[str, ...], env: Mapping[str, str] | None = None,
                            instead: str = "") -> None:
    """Raise the one-line error `label` would stop with (no images, no display, no labelme); `instead` is added
    to the advice (how to do without the window)."""
    if not list_images(images):
        raise FacetrackerError("no images to label", images, "collect some first: facetracker collect")
    if not names:
        raise FacetrackerError("no label name given", None, "use --label face")
    problem = display_problem(os.environ if env is None else env)
    if problem:
        raise FacetrackerError(f"labelme needs a display, and {problem}", None, HOW_TO_GET_ONE + instead)
    if importlib.util.find_spec("labelme") is None:
        raise FacetrackerError("labelme is not installed in this environment", sys.executable,
                               "pip install 'labelme>=5.5,<7'" + instead)


def labelme_command(images: Path, labels_dir: Path, names: tuple[str, ...]) -> list[str]:
    # One config string instead of flags: it wins over ~/.labelmerc (whose auto_save: false would otherwise
    # silently lose work) and takes label names with commas. Labels are saved without the image embedded
    # (imageData): files stay ~1 kB instead of ~100 kB, and every reader here finds the image by file name.
    # Every face shape gets the `predicted` checkbox in the label dialog: ticked on the boxes `--prelabel` drew,
    # unticked once reviewed (or on a hand-drawn box). Declaring it also keeps it when the label text is edited.
    settings = {"auto_save": True, "with_image_data": False, "labels": list(dict.fromkeys(names)),
                "validate_label": "exact", "sort_labels": False,
                "label_flags": {re.escape(name) + "$": [config.PREDICTED_FLAG] for name in dict.fromkeys(names)}}
    return [sys.executable, "-c", _LABELME_BOOTSTRAP, str(images), "--output", str(labels_dir),
            "--config", json.dumps(settings), "--logger-level", "warning"]


def labelme_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for labelme: without the Qt paths `import cv2` sets (they break PyQt5)."""
    env = dict(os.environ if env is None else env)
    for name in _QT_PATH_VARIABLES:
        if name in env and _points_into_cv2(env[name]):
            del env[name]
    if "LD_LIBRARY_PATH" in env:
        kept = [p for p in env["LD_LIBRARY_PATH"].split(os.pathsep) if p and not _points_into_cv2(p)]
        if kept:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(kept)
        else:
            del env["LD_LIBRARY_PATH"]
    if not env.get("DISPLAY") and env.get("WAYLAND_DISPLAY"):
        env.setdefault("QT_QPA_PLATFORM", "wayland")  # Qt 5 tries X11 first and aborts without DISPLAY
    return env


def _points_into_cv2(value: str) -> bool:
    return any("cv2" in Path(part).parts for part in value.split(os.pathsep))


def wait_for_labelme(run: LabelmeRun) -> int:
    """Wait for labelme to close. Ctrl-C or SIGTERM close it too (autosave has kept every finished box)."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main_thread else None
    try:
        status = run.process.wait()
    except BaseException:
        _stop(run.process)
        raise
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
        errors = _last_lines(run.log)
        run.log.close()
    if status != 0:
        how = f"was killed by {signal.Signals(-status).name}" if status < 0 else f"stopped with exit status {status}"
        detail = f" ({_most_telling(errors)})" if errors else ""
        raise FacetrackerError(f"labelme {how}{detail}", None,
                               f"its log is {LABELME_LOG}; labels saved so far were kept")
    return status


def _most_telling(lines: list[str]) -> str:
    # Qt ends with a generic "Available platform plugins are: ..."; the cause is the line before.
    causes = [line for line in lines if any(word in line.lower() for word in ("error", "could not", "cannot"))]
    return (causes or lines)[-1]


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _last_lines(log, count: int = 8) -> list[str]:
    log.seek(0)
    return [line.strip() for line in log.read().splitlines() if line.strip()][-count:]


# ---------------------------------------------------------------------------------------------- --check

# Quirks in the order the table shows them (the names are the row labels, defined in labels.py).
_QUIRK_ROWS = (labels.ORPHAN, labels.NOT_RECTANGLE, labels.REVERSED, labels.CLIPPED, labels.SIZE_MISMATCH,
               labels.SEVERAL, labels.DUPLICATE, labels.EMPTY_BOX, labels.UNUSABLE_SHAPE, labels.OTHER_NAME,
               labels.NO_FACE_NAME, labels.BAD_JSON, labels.BAD_IMAGE)


def check_labels(images: Path, labels_dir: Path, names: tuple[str, ...] = config.FACE_LABELS,
                 console: Console | None = None, detector=None, threshold: float = config.PRELABEL_THRESHOLD,
                 missing_score: float = config.CHECK_MISSING_SCORE) -> labels.Scan:
    """Print what the image and label folders hold; raise when nothing usable for training is there.

    With a `detector` (facetracker.inference.Detector) the table also gets the model's opinion, and every
    finding is listed by file name, worst first (prelabel.find_label_mistakes returns them to Python)."""
    console = console or Console()
    images_dir = Path(images)
    if not list_images(images_dir):
        raise FacetrackerError("no images found", images_dir, "collect some first: facetracker collect")
    scan = labels.scan(images_dir, labels_dir, tuple(names))
    findings = _findings(scan, images_dir, Path(labels_dir), names, console, detector, threshold, missing_score)
    console.print(_table(scan, images_dir, Path(labels_dir), names, findings,
                         (threshold, missing_score) if detector is not None else None))
    if scan.other_names:
        found = ", ".join(f"{name!r} ({n}x)" for name, n in scan.other_names.most_common())
        flags = " ".join(f"--label {shlex.quote(n)}" for n in (*names, *scan.other_names))
        say(console, f"label names other than {_names(names)}: {found} — to count them as faces add: {flags}")
    if scan.skipped:
        say(console, f"skipped or unmatched files ({len(scan.skipped)}):")
        for line in scan.skipped[:SKIPPED_SHOWN]:
            say(console, f"  {line}")
        if len(scan.skipped) > SKIPPED_SHOWN:
            say(console, f"  ... and {len(scan.skipped) - SKIPPED_SHOWN} more")
    if not scan.samples:  # before the model's findings: with nothing readable there is no label to agree with
        raise FacetrackerError("no usable image (all unreadable or skipped)", images_dir,
                               "see the list above")
    _list_findings(console, findings, detector)
    if not scan.faces:
        hint = ("add --label NAME for the names listed above" if scan.other_names
                else "draw face boxes first: facetracker label")
        raise FacetrackerError(f"no image has a {_names(names)} box", labels_dir, hint)
    say(console, f"usable: {scan.faces} images with a face and {scan.negatives} negatives")
    return scan


def _findings(scan: labels.Scan, images_dir: Path, labels_dir: Path, names: tuple[str, ...], console: Console,
              detector, threshold: float, missing_score: float) -> list[prelabel.Finding]:
    if detector is None:
        return prelabel.unreviewed_boxes(scan, tuple(names))
    from rich.progress import Progress

    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("checking with the model", total=len(scan.samples))
        return prelabel.find_label_mistakes(detector, images_dir, labels_dir, tuple(names), threshold,
                                            missing_score, scan=scan, progress=lambda n: bar.advance(task, n))


def _list_findings(console: Console, findings: list[prelabel.Finding], detector) -> None:
    if not findings:
        if detector is not None:
            say(console, f"the model agrees with every label ({detector.source})")
        return
    source = f" (model: {detector.source})" if detector is not None else ""
    say(console, f"findings, worst first ({len(findings)}){source}:")
    width = max(len(kind) for kind in prelabel.FINDING_KINDS)
    for finding in findings[:config.CHECK_FINDINGS_SHOWN]:
        severity = f"{finding.severity:.2f}" if finding.kind != prelabel.UNREVIEWED else "    "
        say(console, f"  {finding.kind:<{width}}  {severity}  {finding.describe()}")
    if len(findings) > config.CHECK_FINDINGS_SHOWN:
        say(console, f"  ... and {len(findings) - config.CHECK_FINDINGS_SHOWN} more (the least likely; all of them "
                     "from Python: facetracker.prelabel.find_label_mistakes)")
    if any(f.kind == prelabel.UNREVIEWED for f in findings):
        say(console, f"to review a predicted box: facetracker label, double-click the box in labelme's label list, "
                     f"fix it if needed and untick '{config.PREDICTED_FLAG}'")


def _table(scan: labels.Scan, images_dir: Path, labels_dir: Path, names: tuple[str, ...],
           findings: list[prelabel.Finding], model_settings: tuple[float, float] | None) -> Table:
    table = Table(title=f"{images_dir} + {labels_dir}", title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("images", str(scan.images_found))
    table.add_row(f"labelled with a {_names(names)} box", str(scan.faces), style="green")
    table.add_row("negatives (no face box)", str(scan.negatives))
    for quirk in _QUIRK_ROWS:
        count = scan.quirks.get(quirk, 0)
        table.add_row(quirk, str(count), style="yellow" if count else "dim")
    kinds = {kind: [f for f in findings if f.kind == kind] for kind in prelabel.FINDING_KINDS}
    if model_settings is not None:
        threshold, missing_score = model_settings
        rows = ((prelabel.MISSING_LABEL, f"{MODEL_ROWS[prelabel.MISSING_LABEL]} (score >= {missing_score:g})"),
                (prelabel.MISPLACED, f"{MODEL_ROWS[prelabel.MISPLACED]} (IoU < {config.CHECK_MISPLACED_IOU:g})"),
                (prelabel.NO_FACE_SEEN, f"{MODEL_ROWS[prelabel.NO_FACE_SEEN]} (score < {threshold:g})"))
        for kind, what in rows:
            count = len(kinds[kind])
            table.add_row(what, str(count), style="red" if count else "dim")
    unreviewed = sum(f.count for f in kinds[prelabel.UNREVIEWED])
    table.add_row(MODEL_ROWS[prelabel.UNREVIEWED], str(unreviewed), style="yellow" if unreviewed else "dim")
    return table


# Row labels of the model's opinion (the thresholds in use are appended).
MODEL_ROWS = {
    prelabel.MISSING_LABEL: "unlabelled, the model sees a face",
    prelabel.MISPLACED: "labels the model's best box misses",
    prelabel.NO_FACE_SEEN: "labelled, the model sees no face",
    prelabel.UNREVIEWED: "boxes still marked predicted (not reviewed)",
}


def _names(names: tuple[str, ...]) -> str:
    return " / ".join(repr(n) for n in names)
