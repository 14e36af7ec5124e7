"""How much labelling the model saves: its pre-labels against the human boxes, and its check against planted mistakes.

    .venv/bin/python benchmarks/prelabel_quality.py --model PATH --sets webcam-d webcam-q   # held-out people
    .venv/bin/python benchmarks/prelabel_quality.py --model PATH --sets webcam-n --doc       # also into the docs

Each set (a folder name of ../shared/datasets, or a path to a labelme folder with images/ and labels/) is used three
ways, on copies in a temporary folder:

1. Pre-labels. The images are copied without their labels and `facetracker.prelabel.prelabel_folder` (what
   `facetracker label --prelabel` runs) writes its label files at --threshold. They are read back with
   `facetracker.labels.scan` and every human face box is matched, one to one, to a pre-label box at IoU >= 0.6
   (facetracker.evaluate.match_detections, boxes in the order written, best first). Reported: the share of human
   faces pre-labelled within IoU 0.6, the boxes that match no human face on images with a face (extra), the
   share of the human negatives left without a label file, and the wall time per image of the whole pass (decode,
   model, JSON write; after one warm-up call). In the sets known to leave faces unlabelled
   (config.SETS_WITH_MISSING_LABELS: webcam-n, webcam-p) unlabelled images are not true negatives: how many of
   them got a pre-label is shown in brackets and left out of the totals.
2. The check. The images are copied with their human labels, and three mistakes are planted (seeded): the label
   files of two face images are deleted (missing labels), and the label of a third face image is copied over the
   label of a fourth whose face lies elsewhere (IoU < 0.3; a misfiled label). `prelabel.find_label_mistakes`
   (what `label --check --model` prints) runs at --threshold and --missing-score; reported: how many of the three
   it names (any kind; in brackets, how many as the expected kind: missing label, misplaced box), and what else it
   names (missing label / misplaced box / no face seen), which in webcam-n and webcam-p includes the real
   missing labels.
3. A threshold sweep: faces right and negatives boxed over all sets at several pre-label thresholds (one model pass
   per image, every box above config.MIN_SCORE), to choose config.PRELABEL_THRESHOLD. MediaPipe BlazeFace (full
   and short range, boxes converted to head size as in benchmarks/quality.py) is swept beside it on the same
   images, as the yardstick of what a general face detector's boxes reach against these labellers'
   (`--no-blazeface` leaves it out).

The tables are printed as markdown; --doc also writes them between the markers of the "label: pre-labels and the
check" section of docs/benchmarks.md (the rest of the page is kept). Targets of issue 12, on people the model was
not trained on: >= 90 % of faces right, <= 10 % of negatives boxed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from quality import BLAZEFACE_MODELS, blazeface_on_images  # noqa: E402  (benchmarks/quality.py, beside this file)
from shared_data import DATASETS, require_datasets  # noqa: E402  (benchmarks/shared_data.py)

DOC = REPO / "docs" / "benchmarks.md"
MARKERS = ("<!-- prelabel-table:start -->", "<!-- prelabel-table:end -->")
SWEEP = (0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7)
VIEWS = {"frame alone": "detect", "frame + mirror averaged": "detect_mirrored"}  # the view -> Detector method
BLAZEFACE_VIEWS = {"full-range": "BlazeFace full range", "short-range": "BlazeFace short range"}
PLANTED_MISSING = 2
TARGET_FACES, TARGET_NEGATIVES = 0.90, 0.10

from facetracker import config  # noqa: E402  (after the TF log level and sys.path)


@dataclass
class SetResult:
    name: str
    images: int = 0
    faces: int = 0  # human face boxes
    faces_right: int = 0  # matched by a pre-label box at IoU >= the match IoU
    extra_boxes: int = 0  # pre-label boxes on face images matching no human face
    negatives: int = 0  # human negatives (true ones: not in a set with missing labels)
    negatives_boxed: int = 0
    unlabelled_boxed: tuple[int, int] | None = None  # sets with missing labels: (pre-labelled, unlabelled images)
    seconds_per_image: float = 0.0
    planted: int = 0
    named: int = 0
    named_as_expected: int = 0
    other: dict = field(default_factory=dict)  # kind -> images named that were not planted
    sweep: dict = field(default_factory=dict)  # (view, threshold) -> (faces right, negatives boxed)


def set_dir(name: str) -> Path:
    path = Path(name)
    return path if (path / config.IMAGES).is_dir() else DATASETS / name


def human_samples(folder: Path):
    from facetracker.labels import resolve_face_labels, scan

    names, _ = resolve_face_labels(folder / config.LABELS)
    return names, scan(folder / config.IMAGES, folder / config.LABELS, names).samples


def copy_images(samples, dest: Path) -> Path:
    (dest / config.IMAGES).mkdir(parents=True)
    for sample in samples:
        shutil.copy2(sample.image, dest / config.IMAGES / sample.image.name)
    return dest


def matched_faces(truth, boxes, iou: float) -> int:
    from facetracker.evaluate import match_detections

    if not len(truth) or not len(boxes):
        return 0
    order = list(range(len(boxes), 0, -1))  # best first, as written
    return int(match_detections(truth, order, boxes, iou).sum())


def measure_prelabels(detector, name: str, samples, face_label: str, tmp: Path, threshold: float,
                      match_iou: float, result: SetResult) -> None:
    from facetracker.files import read_image
    from facetracker.labels import scan
    from facetracker.prelabel import prelabel_folder

    data = copy_images(samples, tmp / "prelabel")
    detector.detect(read_image(samples[0].image))  # warm-up: the first call traces the model
    summary = prelabel_folder(detector, data / config.IMAGES, data / config.LABELS, face_label, threshold)
    written = {s.image.name: s.boxes for s in scan(data / config.IMAGES, data / config.LABELS, (face_label,)).samples}
    missing_labels = Path(name).name in config.SETS_WITH_MISSING_LABELS
    unlabelled = boxed_unlabelled = 0
    for sample in samples:
        boxes = written.get(sample.image.name, ())
        if sample.has_face:
            result.faces += len(sample.boxes)
            right = matched_faces(sample.boxes, boxes, match_iou)
            result.faces_right += right
            result.extra_boxes += len(boxes) - right
        elif missing_labels:
            unlabelled += 1
            boxed_unlabelled += bool(boxes)
        else:
            result.negatives += 1
            result.negatives_boxed += bool(boxes)
    result.images = summary.images
    result.seconds_per_image = summary.seconds / max(1, summary.images)
    if missing_labels:
        result.unlabelled_boxed = (boxed_unlabelled, unlabelled)


def measure_sweep(detector, name: str, samples, match_iou: float, result: SetResult, blazeface: bool) -> None:
    """Faces right and negatives boxed per threshold, for the frame alone (detect), for the frame and its mirror
    image averaged (detect_mirrored: what pre-labels and the check use) and, as the yardstick, for MediaPipe
    BlazeFace's boxes converted to head size (benchmarks/quality.py) on the same images."""
    from facetracker.files import read_image

    frames = [(s, read_image(s.image)) for s in samples]
    for view, detect in VIEWS.items():
        found = [[(d.score, d.box) for d in getattr(detector, detect)(frame, min_score=config.MIN_SCORE)]
                 for _, frame in frames]
        result.sweep.update({(view, t): v for t, v in sweep(name, samples, found, match_iou).items()})
    if blazeface:
        rows = blazeface_on_images([s.image for s in samples])
        for model in BLAZEFACE_MODELS:
            found = [[(d["score"], d["box"]) for d in row.get(model, [])] for row in rows]
            view = BLAZEFACE_VIEWS[model]
            result.sweep.update({(view, t): v for t, v in sweep(name, samples, found, match_iou).items()})


def sweep(name: str, samples, found: list, match_iou: float, thresholds=SWEEP) -> dict[float, tuple[int, int]]:
    """{threshold: (faces right, negatives boxed)} of one set, from each sample's (score, box) pairs."""
    missing_labels = Path(name).name in config.SETS_WITH_MISSING_LABELS
    tallies = {}
    for threshold in thresholds:
        right = boxed = 0
        for sample, detections in zip(samples, found):
            boxes = [box for score, box in detections if score >= threshold]
            if sample.has_face:
                right += matched_faces(sample.boxes, boxes, match_iou)
            elif not missing_labels:
                boxed += bool(boxes)
        tallies[threshold] = (right, boxed)
    return tallies


def measure_check(detector, name: str, samples, face_labels, tmp: Path, threshold: float,
                  missing_score: float, seed: int, result: SetResult) -> None:
    from facetracker.boxes import iou_matrix
    from facetracker.prelabel import FINDING_KINDS, MISPLACED, MISSING_LABEL, find_label_mistakes

    data = copy_images(samples, tmp / "check")
    (data / config.LABELS).mkdir()
    for sample in samples:
        if sample.label is not None:
            shutil.copy2(sample.label, data / config.LABELS / sample.label.name)
    rng = random.Random(f"{seed}-{Path(name).name}")
    faces = [s for s in samples if s.has_face]
    rng.shuffle(faces)
    expected = {}
    for sample in faces[:PLANTED_MISSING]:
        (data / config.LABELS / sample.label.name).unlink()
        expected[sample.image.name] = MISSING_LABEL
    rest = faces[PLANTED_MISSING:]
    pairs = [(a, b) for a in rest for b in rest if a is not b and iou_matrix(a.boxes, b.boxes).max() < 0.3]
    if pairs:
        source, target = rng.choice(pairs)
        shutil.copy2(source.label, data / config.LABELS / target.label.name)  # source's label filed under target
        expected[target.image.name] = MISPLACED
    findings = find_label_mistakes(detector, data / config.IMAGES, data / config.LABELS, face_labels, threshold,
                                   missing_score)
    named = {}
    for finding in findings:
        named.setdefault(finding.image.name, finding.kind)
    result.planted = len(expected)
    result.named = sum(image in named for image in expected)
    result.named_as_expected = sum(named.get(image) == kind for image, kind in expected.items())
    result.other = {kind: sum(1 for image, k in named.items() if k == kind and image not in expected)
                    for kind in FINDING_KINDS}


# ---------------------------------------------------------------- tables


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} % ({part}/{whole})" if whole else "-"


def tables(results: list[SetResult], args, model: str, load: tuple[float, float]) -> str:
    from facetracker.prelabel import MISPLACED, MISSING_LABEL, NO_FACE_SEEN

    iou = f"{args.match_iou:g}"
    lines = [f"Model `{model}`; pre-label threshold {args.threshold:g}, missing label from {args.missing_score:g}, "
             f"misplaced below IoU {config.CHECK_MISPLACED_IOU:g}; {datetime.date.today()}, load average "
             f"{load[0]:.2f} before / {load[1]:.2f} after.", "",
             f"| set | images | faces | pre-labelled within IoU {iou} | extra boxes | negatives left empty | "
             "s / image |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        empty = pct(r.negatives - r.negatives_boxed, r.negatives)
        if r.unlabelled_boxed is not None:
            boxed, unlabelled = r.unlabelled_boxed
            empty = f"- ({boxed} of {unlabelled} unlabelled images pre-labelled)"
        lines.append(f"| {r.name} | {r.images} | {r.faces} | {pct(r.faces_right, r.faces)} | {r.extra_boxes} | "
                     f"{empty} | {r.seconds_per_image:.3f} |")
    faces, right = sum(r.faces for r in results), sum(r.faces_right for r in results)
    negatives = sum(r.negatives for r in results)
    boxed = sum(r.negatives_boxed for r in results)
    images = sum(r.images for r in results)
    seconds = sum(r.seconds_per_image * r.images for r in results) / max(1, images)
    lines.append(f"| **all** | {images} | {faces} | **{pct(right, faces)}** | {sum(r.extra_boxes for r in results)} | "
                 f"**{pct(negatives - boxed, negatives)}** | {seconds:.3f} |")
    met = (faces and right / faces >= TARGET_FACES) and (not negatives or boxed / negatives <= TARGET_NEGATIVES)
    lines += ["", f"Targets: >= {TARGET_FACES:.0%} of faces right, <= {TARGET_NEGATIVES:.0%} of negatives boxed: "
              f"{'met' if met else 'NOT met'}.", "",
              "| set | planted | named (as the expected kind) | also named: missing label / misplaced box / no face |",
              "|---|---:|---:|---:|"]
    for r in results:
        other = " / ".join(str(r.other.get(kind, 0)) for kind in (MISSING_LABEL, MISPLACED, NO_FACE_SEEN))
        lines.append(f"| {r.name} | {r.planted} | {r.named} ({r.named_as_expected}) | {other} |")
    views = [view for view in (*VIEWS, *BLAZEFACE_VIEWS.values()) if (view, SWEEP[0]) in results[0].sweep]
    lines += ["", "| threshold | " + " | ".join(f"{view}: faces right | negatives boxed" for view in views) + " |",
              "|---:|" + "---:|---:|" * len(views)]
    for threshold in SWEEP:
        cells = []
        for view in views:
            right = sum(r.sweep[view, threshold][0] for r in results)
            boxed = sum(r.sweep[view, threshold][1] for r in results)
            cells += [pct(right, faces), pct(boxed, negatives)]
        lines.append(f"| {threshold:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_doc(doc: Path, text: str) -> None:
    """Replace the text between the markers, keep the rest of the page (atomically)."""
    start, end = MARKERS
    old = doc.read_text()
    if start not in old or end not in old:
        raise SystemExit(f"{doc} has no {start} ... {end} markers")
    head, rest = old.split(start, 1)
    tmp = doc.with_suffix(".md.tmp")
    tmp.write_text(f"{head}{start}\n{text}\n{end}{rest.split(end, 1)[1]}")
    tmp.replace(doc)


def main() -> None:
    from facetracker.inference import Detector, resolve_model_path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None,
                        help="model to run (default: models/facetracker.keras if it exists, else the bundled one)")
    parser.add_argument("--sets", nargs="+", required=True,
                        help="data set names in ../shared/datasets or paths to labelme folders (images/, labels/); "
                             "use people the model was not trained on")
    parser.add_argument("--threshold", type=float, default=config.PRELABEL_THRESHOLD)
    parser.add_argument("--missing-score", type=float, default=config.CHECK_MISSING_SCORE)
    parser.add_argument("--match-iou", type=float, default=config.PRELABEL_MATCH_IOU)
    parser.add_argument("--seed", type=int, default=0, help="which mistakes are planted")
    parser.add_argument("--no-blazeface", action="store_true", help="leave MediaPipe BlazeFace out of the sweep")
    parser.add_argument("--doc", action="store_true", help=f"also write the tables into {DOC.relative_to(REPO)}")
    args = parser.parse_args()
    require_datasets()

    load_before = os.getloadavg()[0]
    model = resolve_model_path(args.model)
    started = time.perf_counter()
    detector = Detector.load(model)
    print(f"model {model} loaded in {time.perf_counter() - started:.1f} s ({detector.runtime_name})", flush=True)
    results = []
    for name in args.sets:
        folder = set_dir(name)
        face_labels, samples = human_samples(folder)
        result = SetResult(Path(name).name)
        with tempfile.TemporaryDirectory(prefix="prelabel-quality-") as tmp:
            measure_prelabels(detector, name, samples, face_labels[0], Path(tmp), args.threshold, args.match_iou,
                              result)
            measure_check(detector, name, samples, face_labels, Path(tmp), args.threshold,
                          args.missing_score, args.seed, result)
        measure_sweep(detector, name, samples, args.match_iou, result, not args.no_blazeface)
        print(f"{result.name}: {result.faces_right}/{result.faces} faces right, "
              f"{result.negatives_boxed}/{result.negatives} negatives boxed, {result.named}/{result.planted} "
              f"planted mistakes named", flush=True)
        results.append(result)
    text = tables(results, args, str(model), (load_before, os.getloadavg()[0]))
    print()
    print(text)
    if args.doc:
        write_doc(DOC, f"Command: `.venv/bin/python benchmarks/prelabel_quality.py {' '.join(sys.argv[1:])}`\n\n{text}")
        print(f"\nwritten into {DOC}")


if __name__ == "__main__":
    main()
