"""Tracking quality on real people: id switches, fragmentation and MOTA (py-motmetrics) against composed ground truth.

    .venv/bin/python benchmarks/tracking_quality.py [--model PATH] [--detections model|truth] [--frames 300]
                                                    [--seeds 5] [--square] [--json]

Composes clips of two real people of ../shared/datasets (their faces cut from their labelme photos with their
labelled boxes, six photos each shown in turn, so pose and expression change) moving over a real face-free frame
of a third set (facetracker.demo.crossing_routes): they walk towards each other and cross, the one in front hiding
part of the other; then the second leaves through the left edge, stays away for a tenth of the clip (1 s at 30 FPS)
and comes back. Two sizes: 640x480 and 1280x720. Each clip runs through the real `live` loop (run_live, headless:
reader thread, detector, tracker, drawing) and the shown tracks of every frame are scored with motmetrics against
the composed truth: a face counts as ground truth while at least half of it shows (inside the frame, not covered by
the other face); a track matches it at IoU >= 0.5.

--detections model (default): the detector is the model (--model, default: the bundled one), its input fitted to
  each clip's frames as `live` fits it (facetracker.live.load_detector); --square runs its square input instead.
--detections truth: no model; the detector replays the true boxes moved by noise, with misses and false
  positives (facetracker.demo.detections_from_truth), one run per seed: this measures the tracker alone.

Besides the CLEAR-MOT figures it prints what the acceptance criterion counts: frames in which both people are
tracked (each matched by a shown track) against frames in which both are visible, and the number of distinct ids.
Beside it, the criterion's yardstick in the same run: the frames in which MediaPipe BlazeFace (full and short
range, each frame on its own, boxes converted to head size as in benchmarks/quality.py, at MediaPipe's default
score 0.5) finds both people, matched the same way (`--no-blazeface` skips it).
Leaving and coming back is one GT person: if the tracker gives the returning face a new id (it does after
config.TRACK_MAX_LOST frames away), motmetrics counts that as one id switch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from quality import BLAZEFACE_DEFAULT_SCORE, BLAZEFACE_MODELS, blazeface_on_videos  # noqa: E402  (beside this file)
from shared_data import DATASETS, require_datasets  # noqa: E402  (benchmarks/shared_data.py)

PEOPLE = ("webcam-c", "webcam-j")  # a teenager and a man in a checked shirt (the tests use webcam-d and webcam-e)
BACKGROUND = "webcam-d"  # its face-free frames: an empty office chair
SIZES = ((640, 480), (1280, 720))
FPS = 30.0
ABSENCE = 0.1  # share of the clip the second person is away (plus the time to walk out and back in)
MIN_VISIBLE = 0.5
MIN_IOU = 0.5
METRICS = ("num_frames", "mota", "motp", "idf1", "num_switches", "num_fragmentations", "num_false_positives",
           "num_misses", "mostly_tracked", "num_unique_objects")


def compose(folder: Path, size: tuple[int, int], frames: int, people: tuple[str, str] = PEOPLE,
            background_set: str = BACKGROUND):
    import cv2

    from facetracker.demo import compose_clip, crossing_routes, sprites_from_labelme
    from facetracker.labels import scan

    found = scan(DATASETS / background_set / "images", DATASETS / background_set / "labels")
    negative = next(s for s in found.samples if not s.has_face)
    background = cv2.imread(str(negative.image))
    height = background.shape[1] * size[1] // size[0]  # cut to the clip's aspect, then scale
    top = (background.shape[0] - height) // 2
    background = cv2.resize(background[max(0, top):max(0, top) + height], size, interpolation=cv2.INTER_CUBIC)
    sprites = [sprites_from_labelme(DATASETS / name) for name in people]
    path = folder / f"two-people-{size[0]}x{size[1]}.avi"
    truth = compose_clip(path, background, sprites, crossing_routes(size, ABSENCE), frames, FPS)
    return path, truth


class ReplayDetector:
    """Replays precomputed detections, one list per real frame (the live loop's black warm-up frames get none)."""

    runtime_name = "truth + noise"

    def __init__(self, per_frame):
        self.per_frame, self.calls = per_frame, 0

    def detect(self, frame, min_score: float = 0.0):
        from facetracker.inference import Detection

        if not frame.any():
            return []
        found = self.per_frame[self.calls] if self.calls < len(self.per_frame) else []
        self.calls += 1
        return [Detection(score, box) for score, box in found]


def score(truth, tracks_per_frame) -> dict:
    """motmetrics CLEAR-MOT and identity figures, plus the acceptance counts."""
    import motmetrics as mm
    import numpy as np

    from facetracker.boxes import iou_matrix

    accumulator = mm.MOTAccumulator(auto_id=True)
    both_visible = both_tracked = 0
    for faces, tracks in zip(truth, tracks_per_frame):
        shown = visible(faces)
        # motmetrics' own iou_matrix uses np.asfarray, gone in NumPy 2: the distances are computed here.
        overlap = iou_matrix([f.box for f in shown], [t.box for t in tracks])
        accumulator.update([f.person for f in shown], [t.id for t in tracks],
                           np.where(overlap >= MIN_IOU, 1.0 - overlap, np.nan))
        if len(shown) == 2:
            both_visible += 1
            both_tracked += both_matched(overlap)
    summary = mm.metrics.create().compute(accumulator, metrics=list(METRICS), name="clip")
    result = {name: float(summary[name].iloc[0]) for name in METRICS}
    result["ids"] = len({t.id for tracks in tracks_per_frame for t in tracks})
    result["both_visible"], result["both_tracked"] = both_visible, both_tracked
    return result


def visible(faces) -> list:
    """The faces that count as ground truth in a frame: at least MIN_VISIBLE of them shows."""
    return [f for f in faces if f.visible >= MIN_VISIBLE]


def both_matched(overlap) -> bool:
    """Both visible people (the rows of their IoU matrix with some boxes) matched one to one (Hungarian) by those
    boxes at IoU >= MIN_IOU."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    if not overlap.size:
        return False
    # pairs under MIN_IOU all cost the same, so the assignment first maximises the number of matches
    rows, cols = linear_sum_assignment(np.where(overlap >= MIN_IOU, 1.0 - overlap, 2.0))
    return sum(overlap[r, c] >= MIN_IOU for r, c in zip(rows, cols)) == 2


def blazeface_both_found(truth, frame_rows: list[dict]) -> dict[str, int]:
    """{BlazeFace model: frames in which both visible people are found}, matched as the tracks are."""
    from facetracker.boxes import iou_matrix

    found = dict.fromkeys(BLAZEFACE_MODELS, 0)
    for shown, row in zip(map(visible, truth), frame_rows):
        if len(shown) != 2:
            continue
        for model in BLAZEFACE_MODELS:
            kept = [d["box"] for d in row.get(model, []) if d["score"] >= BLAZEFACE_DEFAULT_SCORE]
            found[model] += both_matched(iou_matrix([f.box for f in shown], kept))
    return found


def run(clip: Path, truth, detector, threshold: float) -> dict:
    from facetracker.live import run_live

    started = time.perf_counter()
    stats = run_live(clip, detector=detector, show=False, keep_tracks=True, threshold=threshold)
    result = score(truth, stats.tracks)
    result["fps"], result["seconds"] = stats.fps, time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="default: the model bundled in the package")
    parser.add_argument("--detections", choices=("model", "truth"), default="model")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=5, help="--detections truth: noise seeds (runs per size)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="live --threshold (default: live's, config.TRACK_THRESHOLD)")
    parser.add_argument("--people", default=",".join(PEOPLE), help="the two shared sets whose person walks")
    parser.add_argument("--background", default=BACKGROUND, help="the shared set whose face-free frame is the room")
    parser.add_argument("--no-blazeface", action="store_true", help="skip MediaPipe BlazeFace on the same frames")
    parser.add_argument("--square", action="store_true",
                        help="run the model's square input, not the one `live` fits to the frames")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON lines too")
    args = parser.parse_args()
    people = tuple(args.people.split(","))
    from facetracker import config

    args.threshold = config.TRACK_THRESHOLD if args.threshold is None else args.threshold
    if len(people) != 2:
        sys.exit(f"error: need two --people (comma-separated data sets), got {args.people!r}")
    require_datasets(*people, args.background)

    what = "ground truth + noise (no model)"
    if args.detections == "model":
        what = f"model {args.model or 'bundled'}" + (" (square input)" if args.square else " (fitted to the frames)")
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="tracking-quality-") as tmp:
        for size in SIZES:
            clip, truth = compose(Path(tmp), size, args.frames, people, args.background)
            detector = model_detector(args.model, size, args.square) if args.detections == "model" else None
            if detector is not None:
                results = [run(clip, truth, detector, args.threshold)]
                if not args.no_blazeface:
                    results[0]["blazeface"] = blazeface_both_found(truth, blazeface_on_videos([clip])[0])
            else:
                from facetracker.demo import detections_from_truth

                results = [run(clip, truth, ReplayDetector(detections_from_truth(truth, seed=seed, size=size)),
                               args.threshold) for seed in range(args.seeds)]
            for seed, result in enumerate(results):
                result.update(size=f"{size[0]}x{size[1]}", seed=seed if detector is None else None)
                rows.append(result)
                if args.json:
                    print(json.dumps(result, default=lambda v: v.item()), file=sys.stderr)  # numpy numbers
    print(report(rows, what, (load_before, os.getloadavg()[0]), args))


def model_detector(model: Path | None, size: tuple[int, int], square: bool):
    """What `live` runs on frames of this size (live.load_detector: the bundled file fitted to them, a .keras
    model fitted in memory), or with `square` the model's square input."""
    from facetracker.inference import Detector, bundled_model_for
    from facetracker.live import load_detector

    if square:
        return Detector.load(model or bundled_model_for(None))
    return load_detector(model or bundled_model_for(size), size)


def report(rows: list[dict], what: str, load: tuple, args) -> str:
    from facetracker import config

    command = "python benchmarks/tracking_quality.py" + (f" --model {args.model}" if args.model else "") + \
              (" --detections truth" if args.detections == "truth" else "") + \
              (f" --frames {args.frames}" if args.frames != 300 else "") + \
              (f" --people {args.people}" if args.people != ",".join(PEOPLE) else "") + \
              (f" --background {args.background}" if args.background != BACKGROUND else "") + \
              (f" --threshold {args.threshold:g}" if args.threshold != config.TRACK_THRESHOLD else "") + \
              (" --no-blazeface" if args.no_blazeface else "")
    blazeface = [m for m in BLAZEFACE_MODELS if "blazeface" in rows[0]]
    lines = [f"`{command}` — detections: {what}", "",
             "| clip | seed | MOTA | IDF1 | id switches | fragmentations | false positives | misses | both tracked / "
             "both visible | " + "".join(f"BlazeFace {m.replace('-', ' ')} (>= {BLAZEFACE_DEFAULT_SCORE:g}): both "
                                         "found | " for m in blazeface)
             + "distinct ids | mostly tracked | FPS |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
             + "---:|" * len(blazeface) + "---:|---:|---:|"]
    for r in rows:
        seed = "-" if r["seed"] is None else r["seed"]
        lines.append(f"| {r['size']} | {seed} | {r['mota']:.3f} | {r['idf1']:.3f} | {r['num_switches']:.0f} "
                     f"| {r['num_fragmentations']:.0f} | {r['num_false_positives']:.0f} | {r['num_misses']:.0f} "
                     f"| {r['both_tracked']} / {r['both_visible']} | "
                     + "".join(f"{r['blazeface'][m]} | " for m in blazeface) + f"{r['ids']} "
                     f"| {r['mostly_tracked']:.0f} of {r['num_unique_objects']:.0f} | {r['fps']:.0f} |")
    lines += ["", f"{rows[0]['num_frames']:.0f} frames with ground truth per clip; load average before {load[0]:.2f}, "
                  f"after {load[1]:.2f} on {os.cpu_count()} cores"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
