"""`facetracker augment`: write augmented copies of every image of a split data folder, in parallel.

Output: <out>/<part>/images/<stem>.<k>.jpg + <out>/<part>/labels/<stem>.<k>.json with
{"image", "bboxes": [[x1, y1, x2, y2], ...] normalised (every face the picture shows), "class": 1}, or
"bboxes": [] and "class": 0 for a picture without a face; k < variants are augmented variants, the following k
are face-free background crops (class 0), then the pasted faces (class 1).

No half-written output, ever: everything is written into a sibling folder `<out>.partial-<pid>`, which is
renamed to `<out>` only when every image is done (an existing output is swapped out and deleted only then).
Ctrl-C or an error deletes the partial folder, so `<out>` is either the complete old or the complete new one.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from facetracker import config
from facetracker.augment_worker import ImageResult, ImageTask, augment_image, init_worker
from facetracker.errors import FacetrackerError
from facetracker.files import ensure_writable_dir, list_images
from facetracker.labels import ORPHAN
from facetracker.output import warn
from facetracker.safe_moves import deferred_interrupt

PARTIAL = ".partial-"


@dataclass
class AugmentSummary:
    out: Path
    results: list[ImageResult]
    seconds: float

    def total(self, name: str, part: str | None = None) -> int:
        return sum(getattr(r, name) for r in self.results if part is None or r.part == part)

    @property
    def images(self) -> int:
        return sum(r.skipped is None for r in self.results)

    @property
    def skipped(self) -> list[ImageResult]:
        return [r for r in self.results if r.skipped is not None]

    def line(self) -> str:
        written = self.total("variants") + self.total("background") + self.total("pasted")
        rate = self.images / self.seconds if self.seconds else 0.0
        return (f"augment: {self.images} images in, {self.total('variants')} variants written "
                f"({self.total('cut_out')} with every face cut out by a crop -> class 0, "
                f"{self.total('dropped')} face boxes dropped as too little was left), "
                f"{self.total('background')} background negatives, {self.total('pasted')} pasted faces, "
                f"{len(self.skipped)} skipped, "
                f"{self.seconds:.1f} s, {rate:.2f} images/s ({written / max(self.seconds, 1e-9):.0f} files/s) "
                f"-> {self.out}")


def augment_dataset(data: Path = config.DATA_DIR, out: Path = config.AUG_DIR, variants: int = config.AUG_VARIANTS,
                    seed: int = config.AUG_SEED, workers: int = 1, force: bool = False,
                    face_labels: tuple[str, ...] = config.FACE_LABELS,
                    background_crops: int = config.AUG_BACKGROUND_CROPS, size: int = config.AUG_IMAGE_SIZE,
                    pastes: int = config.AUG_PASTES, console: Console | None = None) -> AugmentSummary:
    """Augment every image of data/{train,val,test} into out/{train,val,test}. Returns the summary."""
    console = console or Console()
    started = time.perf_counter()
    data, out = Path(data), Path(out)
    if variants < 1 or background_crops < 0 or workers < 1 or pastes < 0:
        raise FacetrackerError("variants and workers must be at least 1, background crops and pastes at least 0",
                               f"variants={variants} workers={workers} background_crops={background_crops} "
                               f"pastes={pastes}")
    parts = split_parts(data)
    check_output(data, out, force)
    sources, warnings = find_sources(parts)
    if not sources:
        raise FacetrackerError("no images in the split folders", data, "run `facetracker split` after collecting")
    warn(console, warnings)
    partial = make_partial(out, parts)
    try:
        by_part = {part: tuple((i, lab) for p, i, lab in sources if p == part) for part in parts}
        tasks = [ImageTask(part, image, label, partial / part, variants, background_crops, seed, size, face_labels,
                           pastes, tuple(s for s in by_part[part] if s[0] != image))
                 for part, image, label in sources]
        results = run_tasks(tasks, workers, console)
        summary = AugmentSummary(out=out, results=results, seconds=time.perf_counter() - started)
        if summary.images == 0:
            raise FacetrackerError("no usable image: every image or label was unreadable", data,
                                   "see the warnings above, fix or delete those files")
        publish(partial, out)
    except KeyboardInterrupt:
        shutil.rmtree(partial, ignore_errors=True)
        console.print(f"augment interrupted: the unfinished output was deleted, {out} is as it was")
        raise
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    summary.seconds = time.perf_counter() - started
    _report(summary, console)
    return summary


def split_parts(data: Path) -> dict[str, Path]:
    """{part: data/part} for the parts that have an images folder, with one clear error when there are none."""
    if not data.is_dir():
        raise FacetrackerError("data folder not found", data, "pass --data or run `facetracker split` first")
    parts = {p: data / p for p in config.SPLITS if (data / p / config.IMAGES).is_dir()}
    if parts:
        return parts
    if data.name in config.SPLITS and (data / config.IMAGES).is_dir():
        raise FacetrackerError("this is one part of a split, augment reads all of them", data,
                               f"pass the folder that holds train/val/test: --data {data.parent}")
    if (data / config.IMAGES).is_dir():
        raise FacetrackerError("data is not split yet (only images/ found)", data, "run `facetracker split` first")
    raise FacetrackerError("no train/val/test folders", data, "run `facetracker split` first or pass --data")


def check_output(data: Path, out: Path, force: bool) -> None:
    """Refuse an output that would mix with, or (with --force) delete, anything augment did not write."""
    data_r, out_r = data.resolve(), out.resolve()
    if out_r == data_r or out_r in data_r.parents or data_r in out_r.parents:
        raise FacetrackerError("output folder overlaps the data folder", out, "choose another --out, e.g. aug_data")
    if out.exists() and not out.is_dir():
        raise FacetrackerError("output path is a file, not a folder", out, "choose another --out")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if entries and not force:
        raise FacetrackerError("output folder already has files", out,
                               "use --force to rebuild it, or choose another --out")
    foreign = [name for name in entries if name not in config.SPLITS]
    if foreign:
        raise FacetrackerError(f"output folder holds files augment did not write ({foreign[0]})", out,
                               "choose another --out; --force only replaces a previous augment output")
    if out.is_dir() and not os.access(out, os.W_OK | os.X_OK):
        raise FacetrackerError("output folder is not writable", out, "fix its permissions or choose another --out")
    ensure_writable_dir(out.parent)


def find_sources(parts: dict[str, Path]) -> tuple[list[tuple[str, Path, Path | None]], list[str]]:
    """(part, image, label or None) for every image, paired by stem; labels without an image are reported.

    Images are decoded and labels parsed later, in the workers, so that work runs in parallel too."""
    sources, warnings = [], []
    for part, folder in parts.items():
        labels_dir = folder / config.LABELS
        labels = {p.stem: p for p in labels_dir.glob("*.json")} if labels_dir.is_dir() else {}
        for image in list_images(folder / config.IMAGES):
            sources.append((part, image, labels.pop(image.stem, None)))
        warnings += [f"{ORPHAN} (ignored): {p}" for p in sorted(labels.values())]
    return sources, warnings


def make_partial(out: Path, parts: dict[str, Path]) -> Path:
    """Create the empty sibling folder the run writes into (after clearing those of dead earlier runs)."""
    _remove_stale_partials(out)
    partial = out.with_name(f"{out.name}{PARTIAL}{os.getpid()}")
    try:
        partial.mkdir()
        for part in parts:
            (partial / part / config.IMAGES).mkdir(parents=True)
            (partial / part / config.LABELS).mkdir(parents=True)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise FacetrackerError(f"cannot write beside the output folder ({exc.strerror})", out.parent,
                               "choose a writable --out") from None
    return partial


def _remove_stale_partials(out: Path) -> None:
    # A hard-killed run (kill -9, power cut) cannot delete its partial folder; a later run does, if its owner is gone.
    for stale in out.parent.glob(f"{out.name}{PARTIAL}*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def publish(partial: Path, out: Path) -> None:
    """Swap the finished partial folder in as `out`; an old output is deleted only after the swap."""
    old = out.with_name(f"{out.name}.old-{os.getpid()}")
    with deferred_interrupt():  # Ctrl-C between the two renames would leave no `out` at all
        if out.exists():
            os.rename(out, old)
        os.rename(partial, out)
    shutil.rmtree(old, ignore_errors=True)


def run_tasks(tasks: list[ImageTask], workers: int, console: Console) -> list[ImageResult]:
    """Run every task, in a process pool when workers > 1, with a progress bar."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    columns = (TextColumn("augmenting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn())
    results = []
    workers = min(workers, len(tasks))
    pool = _pool(workers, init_worker) if workers > 1 else None
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            bar = progress.add_task("augment", total=len(tasks))
            stream = pool.imap_unordered(augment_image, tasks) if pool else map(augment_image, tasks)
            for result in stream:
                results.append(result)
                progress.advance(bar)
    except BaseException:
        if pool:
            pool.terminate()
            pool.join()
        raise
    if pool:
        pool.close()
        pool.join()
    return sorted(results, key=lambda r: (r.part, r.image))


def _pool(workers: int, initializer):
    # Not fork: the parent may already run OpenCV/BLAS threads, and a child forked while one of them holds a lock
    # deadlocks. A forkserver is a clean single-threaded process that imports the worker module once and forks
    # each worker from there (fast); spawn, where there is no forkserver (Windows), imports it in every worker.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if "forkserver" in methods:
        context.set_forkserver_preload(["facetracker.augment_worker"])
    return context.Pool(workers, initializer=initializer)


def _report(summary: AugmentSummary, console: Console) -> None:
    warn(console, [f"skipped {r.skipped}" for r in summary.skipped])
    quirks = Counter()
    for result in summary.results:
        quirks.update(result.quirks)
    for quirk, count in sorted(quirks.items()):
        console.print(f"note: {count} {quirk}", highlight=False, soft_wrap=True)
    table = Table(title=f"Augmented data in {summary.out}")
    for column in ("part", "images", "variants", "with face", "cut out", "background", "pasted", "skipped"):
        table.add_column(column, justify="left" if column == "part" else "right")
    for part in sorted({r.part for r in summary.results}, key=config.SPLITS.index):
        images = sum(r.skipped is None for r in summary.results if r.part == part)
        skipped = sum(r.skipped is not None for r in summary.results if r.part == part)
        table.add_row(part, str(images), *(str(summary.total(n, part)) for n in
                                           ("variants", "faces", "cut_out", "background", "pasted")),
                      str(skipped))
    console.print(table)
    console.print(summary.line(), highlight=False, soft_wrap=True)
