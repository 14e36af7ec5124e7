"""`facetracker split`: move images and their labels from data/images + data/labels into data/{train,val,test}.

Faces and negatives are split separately (stratified) so each part gets some of both when there are enough.
The split is deterministic for a seed: files are sorted by name, then shuffled with that seed.
Re-running after new frames were collected adds only the new files, filling each part up towards its ratio
and keeping the existing assignment; --force re-splits everything, moving files straight from where they are
to where they belong (no intermediate "gather back" step, so there is no extra state to get interrupted in).
Nothing moves before the whole plan is checked (destinations free, names unique, folders writable).
--labelled-only leaves images without a label file in data/images instead of splitting them as negatives: label a
few frames, train, let `facetracker label --prelabel` draw the rest, review them, then split again.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from facetracker import config
from facetracker.errors import FacetrackerError
from facetracker.files import ensure_writable_dir
from facetracker.labels import Sample, scan
from facetracker.output import warn
from facetracker.safe_moves import PairMove, pending_journal, replay_journal, run_moves

PARTS = config.SPLITS


@dataclass
class Inventory:
    """Usable samples still waiting in data/images, and those already in a part."""

    pending: list[Sample] = field(default_factory=list)
    placed: dict[str, list[Sample]] = field(default_factory=lambda: {p: [] for p in PARTS})
    warnings: list[str] = field(default_factory=list)
    pending_unusable: int = 0  # images left in data/images because they or their labels are unreadable
    unlabelled_left: int = 0  # images without a label file left in data/images by --labelled-only

    @property
    def split_exists(self) -> bool:
        return any(self.placed.values())


@dataclass
class SplitPlan:
    data: Path
    final: dict[str, list[Sample]]  # content of each part once the moves are done
    added: dict[str, int]  # files moved into each part by this run
    moves: list[PairMove]
    inventory: Inventory

    def counts(self, part: str) -> tuple[int, int]:
        faces = sum(s.has_face for s in self.final[part])
        return faces, len(self.final[part]) - faces


def split_dataset(data: Path = config.DATA_DIR, ratios: Sequence[float] = config.SPLIT_RATIOS,
                  seed: int = config.SPLIT_SEED, force: bool = False, dry_run: bool = False,
                  face_labels: tuple[str, ...] = config.FACE_LABELS, labelled_only: bool = False,
                  console: Console | None = None) -> SplitPlan:
    """Plan the split, print it, and (unless dry_run) move the files. Returns the plan.

    labelled_only: images in data/images without a label file stay there (not split as negatives)."""
    console = console or Console()
    data = Path(data)
    ratios = check_ratios(ratios)
    if not data.is_dir():
        raise FacetrackerError("data folder not found", data, "run `facetracker collect` first or pass --data")
    resumed = _finish_interrupted_split(data, dry_run, console)
    inventory = take_inventory(data, face_labels, labelled_only)
    warn(console, inventory.warnings)
    plan = plan_split(data, inventory, ratios, seed, force, resumed=resumed)
    check_plan(plan)
    if dry_run:
        console.print(_table(plan, "Split plan (dry run: nothing moved)"))
        return plan
    _prepare_folders(data)
    _move_with_progress(plan, console)
    console.print(_table(plan, f"Split of {data}"))
    return plan


def check_ratios(ratios: Sequence[float]) -> tuple[float, ...]:
    ratios = tuple(float(r) for r in ratios)
    if len(ratios) != len(PARTS) or any(not math.isfinite(r) or r <= 0 for r in ratios):
        raise FacetrackerError(f"ratios must be {len(PARTS)} positive numbers", " ".join(map(str, ratios)),
                               "e.g. --ratios 0.7 0.15 0.15")
    if abs(sum(ratios) - 1.0) > 1e-6:
        raise FacetrackerError(f"ratios must add up to 1, not {sum(ratios):g}", " ".join(map(str, ratios)),
                               "e.g. --ratios 0.7 0.15 0.15")
    return ratios


def part_sizes(n: int, ratios: Sequence[float], existing: Sequence[int] = (0, 0, 0)) -> list[int]:
    """How many of `n` new files of one kind go to each part, given how many each part already holds.

    The target for the total is split by largest remainder, with at least one file per part when there are
    as many files as parts (so val and test get a negative to measure false alarms on). New files fill the
    gaps between target and existing counts, one at a time into the part that lacks most."""
    target = _targets(n + sum(existing), ratios)
    sizes = [0] * len(ratios)
    for _ in range(n):
        lack = [target[i] - existing[i] - sizes[i] for i in range(len(ratios))]
        sizes[lack.index(max(lack))] += 1
    return sizes


def _targets(total: int, ratios: Sequence[float]) -> list[int]:
    exact = [total * r for r in ratios]
    target = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(ratios)), key=lambda i: (-(exact[i] - target[i]), i))
    for i in by_remainder[: total - sum(target)]:
        target[i] += 1
    if total >= len(ratios):
        while 0 in target:
            target[target.index(max(target))] -= 1
            target[target.index(0)] += 1
    return target


def take_inventory(data: Path, face_labels: tuple[str, ...], labelled_only: bool = False) -> Inventory:
    """Scan data/images and every part; unusable files are reported and stay where they are, and so do images
    without a label file when `labelled_only`."""
    inventory = Inventory()
    pending_dir = data / config.IMAGES
    part_dirs = {p: data / p / config.IMAGES for p in PARTS if (data / p / config.IMAGES).is_dir()}
    if not pending_dir.is_dir() and not part_dirs:
        raise FacetrackerError("no images folder", pending_dir, "run `facetracker collect` first or pass --data")
    if pending_dir.is_dir():
        found = scan(pending_dir, data / config.LABELS, face_labels)
        inventory.pending = [s for s in found.samples if s.label is not None or not labelled_only]
        inventory.unlabelled_left = len(found.samples) - len(inventory.pending)
        inventory.pending_unusable = found.images_found - len(found.samples)
        inventory.warnings += [f"{line} (left where it is)" for line in found.skipped]
    for part, images_dir in part_dirs.items():
        found = scan(images_dir, data / part / config.LABELS, face_labels)
        inventory.placed[part] = found.samples
        inventory.warnings += [f"{line} (left where it is)" for line in found.skipped]
    return inventory


def plan_split(data: Path, inventory: Inventory, ratios: Sequence[float], seed: int, force: bool,
               resumed: bool = False) -> SplitPlan:
    """Decide where every usable file goes (nothing is moved here).

    resumed: an interrupted split was just finished, so having nothing new to add is expected, not an error."""
    if not inventory.pending and inventory.unlabelled_left and not (inventory.split_exists and (force or resumed)):
        raise FacetrackerError(f"none of the {inventory.unlabelled_left} images left has a label file",
                               data / config.IMAGES, "label some with `facetracker label` (or --prelabel), then "
                               "split again")
    if inventory.split_exists and not force and not inventory.pending and not resumed:
        raise FacetrackerError("data is already split and there are no new images", data / config.IMAGES,
                               "collect and label more frames, or use --force to split everything again")
    if not inventory.split_exists and not inventory.pending:
        raise FacetrackerError("no usable images to split", data / config.IMAGES,
                               "run `facetracker collect` first (see the warnings above for unreadable files)")
    if force:
        to_place = inventory.pending + [s for part in PARTS for s in inventory.placed[part]]
        final: dict[str, list[Sample]] = {p: [] for p in PARTS}
    else:
        to_place = list(inventory.pending)
        final = {p: list(inventory.placed[p]) for p in PARTS}
    _check_unique_stems(to_place + ([] if force else [s for p in PARTS for s in final[p]]))
    rng = random.Random(seed)
    added = {p: 0 for p in PARTS}
    for has_face in (True, False):
        group = sorted((s for s in to_place if s.has_face == has_face), key=lambda s: s.image.name)
        rng.shuffle(group)
        existing = [sum(s.has_face == has_face for s in final[p]) for p in PARTS]
        start = 0
        for part, size in zip(PARTS, part_sizes(len(group), ratios, existing)):
            final[part] += group[start:start + size]
            start += size
    moves = []
    for part in PARTS:
        for sample in final[part]:
            move = _move_for(data, sample, part)
            if move is not None:
                moves.append(move)
                added[part] += 1
    return SplitPlan(data=data, final=final, added=added, moves=moves, inventory=inventory)


def _move_for(data: Path, sample: Sample, part: str) -> PairMove | None:
    image_dst = data / part / config.IMAGES / sample.image.name
    if sample.image == image_dst:
        return None  # --force kept it in the part it was already in
    label_dst = data / part / config.LABELS / f"{sample.image.stem}.json"
    return PairMove(
        image_src=str(sample.image.relative_to(data)), image_dst=str(image_dst.relative_to(data)),
        label_src=str(sample.label.relative_to(data)) if sample.label else None,
        label_dst=str(label_dst.relative_to(data)) if sample.label else None,
    )


def _check_unique_stems(samples: list[Sample]) -> None:
    # Labels are found by stem: two images with one stem would share (and fight over) one label file.
    seen: dict[str, Path] = {}
    for sample in samples:
        other = seen.setdefault(sample.image.stem, sample.image)
        if other != sample.image:
            raise FacetrackerError("two images share one name", f"{other} and {sample.image}",
                                   "rename or remove one of them, then run split again")


def check_plan(plan: SplitPlan) -> None:
    """Refuse, before anything moves, if a move would overwrite a file or two moves share a destination."""
    data = plan.data
    claimed: set[str] = set()
    for move in plan.moves:
        label_dst = move.label_dst or str(Path(move.image_dst).parent.parent / config.LABELS /
                                          f"{Path(move.image_dst).stem}.json")
        # A negative must not land beside a stray label of the same name: it would silently become a face.
        for dst in (move.image_dst, label_dst):
            if (data / dst).exists() or dst in claimed:
                raise FacetrackerError("a file with the same name is already in the destination", data / dst,
                                       "move or rename it, then run split again (nothing was moved)")
            claimed.add(dst)


def _finish_interrupted_split(data: Path, dry_run: bool, console: Console) -> bool:
    journal = pending_journal(data)
    if journal is None:
        return False
    if dry_run:
        console.print(f"note: an interrupted split ({journal}) will be finished first by a real run")
        return False
    moved, warnings = replay_journal(data)
    console.print(f"finished an interrupted split: {moved} image(s) moved to their planned part")
    warn(console, warnings)
    return True


def _prepare_folders(data: Path) -> None:
    ensure_writable_dir(data)
    for part in PARTS:
        ensure_writable_dir(data / part / config.IMAGES)
        ensure_writable_dir(data / part / config.LABELS)
    for folder in (data / config.IMAGES, data / config.LABELS):
        if folder.is_dir():
            ensure_writable_dir(folder)  # files are renamed out of it


def _move_with_progress(plan: SplitPlan, console: Console) -> None:
    from rich.progress import Progress

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("moving", total=len(plan.moves))
        try:
            run_moves(plan.data, plan.moves, on_done=lambda: progress.advance(task))
        except KeyboardInterrupt:
            console.print("split interrupted between two files: every image is with its label; "
                          "run `facetracker split` again to finish the planned moves")
            raise


def _table(plan: SplitPlan, title: str) -> Table:
    table = Table(title=title)
    for column in ("part", "images", "faces", "negatives", "moved now"):
        table.add_column(column, justify="left" if column == "part" else "right")
    for part in PARTS:
        faces, negatives = plan.counts(part)
        table.add_row(part, str(faces + negatives), str(faces), str(negatives), str(plan.added[part]))
    left = plan.inventory.pending_unusable
    if left:
        table.add_row(f"{config.IMAGES} (unusable, left)", str(left), "", "", "")
    if plan.inventory.unlabelled_left:
        table.add_row(f"{config.IMAGES} (no label file, left)", str(plan.inventory.unlabelled_left), "", "", "")
    return table
