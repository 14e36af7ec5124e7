"""Group photos: how many faces the model finds in a big photo of many people, seen whole or with tiles.

    .venv/bin/python benchmarks/group_photos.py                      # the bundled model, people of every set
    .venv/bin/python benchmarks/group_photos.py --model benchmarks/results/quality/2-folds-30-epochs-qfl/fold-1.keras \\
        --people webcam-c webcam-d webcam-g webcam-i webcam-m webcam-n webcam-p webcam-q webcam-s caltech-faces

No group photo ships with ../shared, so each one is composed from real faces (facetracker.demo.group_photo): one
labelled face of each person (its labelme box is the truth), in rows over a face-free webcam frame of the room
set (`--background`), at several photo widths and face heights. Pass `--people` the sets a model was not trained
on to measure it on strangers. For every photo the model runs as `predict` runs on an image (Detector.detect_still:
the photo as it is and mirrored, plus overlapping tiles when its longer side is at least TILE_FROM_SIDE px) and
seen whole once (Detector.detect, as a video frame is), and reports the faces found (a detection at the threshold
matching a face at IoU >= 0.5, one to one) and the precision (matched detections / detections at the threshold).
MediaPipe BlazeFace (full and short range, boxes converted to head size as in benchmarks/quality.py) runs on the
same photos in the same run and is scored the same way (`--no-blazeface` skips it). A last table scores the same
detections of `predict`'s way at other thresholds, pooled over the photos.

Targets (issue 9, at acceptance on real group photos): at least 90 % of the faces, at 90 % precision or better.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from facetracker import config  # noqa: E402
from quality import BLAZEFACE_MODELS, blazeface_on_images  # noqa: E402  (benchmarks/quality.py, beside this file)

from shared_data import DATASETS, require_datasets  # noqa: E402  (benchmarks/shared_data.py)
# (photo width, face height in px, people per row): a 1280 px photo of a small group up to a 4000 px phone photo, and
# two taken closer, with faces about a tenth of the photo's width, as in many real group photos (appended, so the
# first four keep their seeds and their photos).
LAYOUTS = ((1280, 90, 6), (1920, 90, 6), (1920, 60, 8), (4000, 120, 9), (1280, 130, 5), (1920, 200, 5))
ASPECT = 3 / 4  # photo height / width
DEFAULT_TILE_MIN_SIDE, DEFAULT_TILE_MIN_SHARE = config.TILE_MIN_SIDE, config.TILE_MIN_SHARE
DEFAULT_BACKGROUND = "webcam-d"
SWEEP = (0.35, 0.4, 0.45, 0.5)  # thresholds of the last table


def sprites(people: list[str]):
    """One face of each person (the middle one of three spread over their set's usable images), cut with some
    surroundings."""
    from facetracker.demo import sprites_from_labelme
    from facetracker.labels import resolve_face_labels

    found = []
    for name in people:
        names, _ = resolve_face_labels(DATASETS / name / config.LABELS)
        try:
            picked = sprites_from_labelme(DATASETS / name, count=3, min_height=80, face_labels=names)[1:2]
        except ValueError:
            picked = []
        if not picked:  # faces too small, or too close to the frame's edges for the margin around them
            print(f"  {name}: fewer than two faces fit, left out", flush=True)
        found += picked
    return found


def background(name: str, size: tuple[int, int]):
    """A face-free frame of the room set (a negative: an image without a label), resized to the photo."""
    import cv2

    from facetracker.labels import scan

    negatives = [s for s in scan(DATASETS / name / config.IMAGES, DATASETS / name / config.LABELS).samples
                 if not s.has_face]
    return cv2.resize(cv2.imread(str(negatives[0].image)), size, interpolation=cv2.INTER_LINEAR)


def score(truth, scores, boxes, threshold: float) -> tuple[int, int]:
    """(faces matched, detections at the threshold)."""
    from facetracker.evaluate import match_detections

    kept = [k for k, value in enumerate(scores) if value >= threshold]
    if not kept:
        return 0, 0
    matched = match_detections(truth, [scores[k] for k in kept], [boxes[k] for k in kept], config.IOU_THRESHOLD)
    return int(matched.sum()), len(kept)


def score_faces(truth, found, threshold: float) -> tuple[int, int]:
    """score() of a Detector's detections."""
    return score(truth, [d.score for d in found], [d.box for d in found], threshold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="default: the bundled model (its .tflite)")
    parser.add_argument("--people", nargs="+", default=None, help="sets whose person stands in the photos "
                                                                   "(default: every set but the room's)")
    parser.add_argument("--background", default=DEFAULT_BACKGROUND, help="set whose face-free frame is the room")
    parser.add_argument("--threshold", type=float, default=config.THRESHOLD)
    parser.add_argument("--no-blazeface", action="store_true", help="skip MediaPipe BlazeFace on the same photos")
    parser.add_argument("--tile-min-side", type=int, default=DEFAULT_TILE_MIN_SIDE,
                        help="the finest tiles of detect_still, in px (config.TILE_MIN_SIDE): to try other tilings")
    parser.add_argument("--tile-min-share", type=float, default=DEFAULT_TILE_MIN_SHARE,
                        help="no tiles finer than this share of the photo's longer side (config.TILE_MIN_SHARE)")
    args = parser.parse_args()
    config.TILE_MIN_SIDE, config.TILE_MIN_SHARE = args.tile_min_side, args.tile_min_share
    require_datasets()

    import tempfile

    import cv2

    from facetracker.boxes import tiles
    from facetracker.demo import group_photo
    from facetracker.inference import Detector

    people = args.people or sorted(p.name for p in DATASETS.iterdir() if (p / config.IMAGES).is_dir()
                                   and p.name != args.background)
    faces = sprites(people)
    detector = Detector.load(args.model)
    load = os.getloadavg()[0]
    views = ("whole", "tiled") + (() if args.no_blazeface else BLAZEFACE_MODELS)
    results = []  # per photo: size, face height, truth, {view: (matched, detections)}, seconds of detect_still
    stills = []  # per photo: (truth, detect_still's detections), for the table of thresholds
    with tempfile.TemporaryDirectory(prefix="group-photos-") as work:
        paths = []
        for seed, (width, face_height, columns) in enumerate(LAYOUTS):
            size = (width, round(width * ASPECT))
            photo, truth = group_photo(faces, background(args.background, size), face_height, columns, seed=seed)
            started = time.perf_counter()
            still = detector.detect_still(photo)
            seconds = time.perf_counter() - started
            stills.append((truth, still))
            found = {"whole": score_faces(truth, detector.detect(photo), args.threshold),
                     "tiled": score_faces(truth, still, args.threshold)}
            results.append((size, face_height, truth, found, seconds))
            paths.append(Path(work) / f"group-{seed}.png")
            cv2.imwrite(str(paths[-1]), photo)
        if not args.no_blazeface:
            for (_, _, truth, found, _), row in zip(results, blazeface_on_images(paths)):
                for model in BLAZEFACE_MODELS:
                    found[model] = score(truth, [d["score"] for d in row.get(model, [])],
                                         [d["box"] for d in row.get(model, [])], args.threshold)

    names = {"whole": "seen whole once", "tiled": "as predict (mirrored + tiles)",
             "full-range": "BlazeFace full range", "short-range": "BlazeFace short range"}
    rows = ["| photo | faces | " + " | ".join(f"{names[v]}: found | precision" for v in views)
            + " | tiles | s per photo (predict) |", "|---|---:|" + "---:|---:|" * len(views) + "---:|---:|"]
    totals = {view: [0, 0, 0] for view in views}  # faces, matched, detections
    for size, face_height, truth, found, seconds in results:
        cells = []
        for view in views:
            matched, kept = found[view]
            totals[view] = [totals[view][0] + len(truth), totals[view][1] + matched, totals[view][2] + kept]
            cells.append(f"{matched} | {_ratio(matched, kept)}")
        rows.append(f"| {size[0]}x{size[1]}, faces ~{face_height} px | {len(truth)} | " + " | ".join(cells)
                    + f" | {len(tiles(*size))} | {seconds:.2f} |")
    bold = {"tiled"}
    rows.append(f"| **all** | {totals['whole'][0]} | " + " | ".join(
        (f"**{_ratio(m, f)}** | **{_ratio(m, k)}**" if view in bold else f"{_ratio(m, f)} | {_ratio(m, k)}")
        for view, (f, m, k) in totals.items()) + " | | |")
    command = "python benchmarks/group_photos.py" + (f" --model {args.model}" if args.model else "") + \
              (f" --people {' '.join(args.people)}" if args.people else "") + \
              (f" --background {args.background}" if args.background != DEFAULT_BACKGROUND else "") + \
              (f" --tile-min-side {args.tile_min_side}" if args.tile_min_side != DEFAULT_TILE_MIN_SIDE else "") + \
              (f" --tile-min-share {args.tile_min_share:g}" if args.tile_min_share != DEFAULT_TILE_MIN_SHARE else "")
    print(f"`{command}` — model {detector.source} ({detector.runtime_name}), threshold {args.threshold:g}, "
          f"{len(faces)} people ({', '.join(people)}), load average {load:.2f} before\n")
    print("\n".join(rows))
    print("\nAs predict, all photos, at other thresholds:\n\n| threshold | found | precision |\n|---:|---:|---:|")
    faces_in = sum(len(truth) for truth, _ in stills)
    for threshold in SWEEP:
        matched, kept = (sum(counts) for counts in zip(*(score_faces(truth, still, threshold)
                                                         for truth, still in stills)))
        print(f"| {threshold:g} | {_ratio(matched, faces_in, 1)} ({matched}/{faces_in}) | "
              f"{_ratio(matched, kept, 1)} ({matched}/{kept}) |")


def _ratio(part: int, whole: int, digits: int = 0) -> str:
    return f"{part / whole:.{digits}%}" if whole else "-"


if __name__ == "__main__":
    main()
