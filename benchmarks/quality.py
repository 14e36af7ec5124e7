"""Model quality on people the tracker has never seen: leave-people-out folds over the shared data sets.

    make quality                                        # = .venv/bin/python benchmarks/quality.py
    .venv/bin/python benchmarks/quality.py --quick      # smoke run (a few minutes): 4 small sets, 1 fold, 2 epochs
    .venv/bin/python benchmarks/quality.py --fold 1     # only fold 1 (run the others later: finished folds are kept)
    .venv/bin/python benchmarks/quality.py --blazeface-only   # BlazeFace's table on every set, no training

The 23 data sets of ../shared/datasets are split into --folds groups of whole sets, balanced by image count
(caltech-faces, whose ~27 people recur across its images, is one set and so always held out whole). Every set is
held out exactly once. Each fold trains a new model from scratch with the bundled recipe
(facetracker.recipe.train_on_sets, --epochs) on all the other sets, saves it, and evaluates every held-out set
separately with facetracker.evaluate (the same images the recipe would use: for the sets known to leave faces
unlabelled, only the labelled images). MediaPipe BlazeFace (full-range and short-range models, boxes converted to
the head-sized labels) runs on the same images in its own virtualenv (benchmarks/blazeface.py) and is scored by
the same functions.

Everything goes to benchmarks/results/quality/<N>-folds-<E>-epochs/ (or --results): fold-K.keras, the training log
fold-K.train.jsonl, each held-out set's evaluate report in fold-K/<set>/, results.json (rewritten after every
fold, so a stopped run keeps its finished folds and a new run resumes after them) and table.md. BlazeFace's
detections are cached per set in benchmarks/results/blazeface/. When every fold of the full protocol is done, the
table goes between the markers of docs/quality.md (or --doc); the text around it is kept.
"""

from __future__ import annotations

import argparse
import functools
import gc
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's package, also from a git worktree beside the installed one
from facetracker import config  # noqa: E402  (after the TF log level)

from shared_data import DATASETS, require_datasets  # noqa: E402  (benchmarks/shared_data.py)
RESULTS = REPO / "benchmarks" / "results"
BLAZEFACE_CACHE = RESULTS / "blazeface"
MEDIAPIPE_VENV = REPO / ".venv-mediapipe"
DOC = REPO / "docs" / "quality.md"
TABLE_MARKERS = ("<!-- quality-table:start -->", "<!-- quality-table:end -->")
BLAZEFACE_MARKERS = ("<!-- blazeface-table:start -->", "<!-- blazeface-table:end -->")
BLAZEFACE_MODELS = ("full-range", "short-range")
BLAZEFACE_DEFAULT_SCORE = 0.5  # MediaPipe FaceDetection's min_detection_confidence: BlazeFace as its users run it
QUICK_SETS = ("webcam-m", "webcam-q", "webcam-r", "webcam-v")  # small; -r, -v name their faces Semih, vatsal
# RecipeOptions fields this page can change
RECIPE_OPTIONS = ("negative_repeat", "background_swap", "background_pattern", "backbone", "image_size",
                  "box_weight")
QUICK_EPOCHS = 2
# Per-set figures kept in results.json (the full reports with per-image rows stay in fold-K/<set>/).
SUMMARY_KEYS = ("images", "face_images", "faces", "negatives", "detections", "ap50", "ap50_95", "coco_ap50",
                "mean_iou", "recall", "precision", "f1", "fp_per_image", "fp_rate_negatives", "true_positives",
                "false_positives", "negatives_flagged")


# ---------------------------------------------------------------- sets and folds


def available_sets() -> list[str]:
    return sorted(p.name for p in DATASETS.iterdir() if (p / config.IMAGES).is_dir())


@functools.cache
def image_count(name: str) -> int:
    from facetracker.files import list_images

    return len(list_images(DATASETS / name / config.IMAGES))


def make_folds(sets: list[str], folds: int) -> list[list[str]]:
    """Whole sets into `folds` groups of about equal image count: largest set first, each to the lightest group.

    Deterministic for a list of sets, so a resumed run rebuilds the same folds."""
    groups: list[list[str]] = [[] for _ in range(min(folds, len(sets)))]
    sizes = [0] * len(groups)
    for name in sorted(sets, key=lambda n: (-image_count(n), n)):
        lightest = sizes.index(min(sizes))
        groups[lightest].append(name)
        sizes[lightest] += image_count(name)
    return [sorted(g) for g in groups]


def samples_of(name: str) -> list:
    """The images of a set as the recipe sees them (its own face label name; no unreliable negatives)."""
    from facetracker.recipe import set_samples

    return set_samples(DATASETS / name)


def summary(report: dict) -> dict:
    return {key: report[key] for key in SUMMARY_KEYS}


# ---------------------------------------------------------------- BlazeFace, in its own virtualenv


def ensure_mediapipe_venv() -> Path:
    python = MEDIAPIPE_VENV / "bin" / "python"
    if not (MEDIAPIPE_VENV / ".installed-stamp").exists():
        print(f"creating {MEDIAPIPE_VENV.name} for BlazeFace (mediapipe 0.10.21) ...", flush=True)
        subprocess.run(["bash", str(REPO / "benchmarks" / "setup_mediapipe_venv.sh"), str(MEDIAPIPE_VENV)],
                       check=True)
    return python


def blazeface_cache_dir() -> Path:
    """One folder per conversion setting, so changing config's box conversion never reuses stale boxes."""
    return BLAZEFACE_CACHE / (f"min{config.MIN_SCORE}-x{config.BLAZEFACE_BOX_SCALE}"
                              f"-up{config.BLAZEFACE_BOX_SHIFT_UP}")


def blazeface_detections(names: list[str]) -> dict[str, dict[str, dict]]:
    """{set: {image file name: row of benchmarks/blazeface.py}}, running BlazeFace on the sets not cached yet."""
    cache = blazeface_cache_dir()
    missing = [n for n in names if not (cache / f"{n}.jsonl").exists()]
    if missing:
        run_blazeface(missing, cache)
    return {n: {row["image"]: row for row in map(json.loads, (cache / f"{n}.jsonl").read_text().splitlines())}
            for n in names}


def run_blazeface(names: list[str], cache: Path) -> None:
    """BlazeFace on every image of these sets, cached per set (one JSONL of image file name -> detections)."""
    from facetracker.files import list_images

    cache.mkdir(parents=True, exist_ok=True)
    paths = {n: list_images(DATASETS / n / config.IMAGES) for n in names}
    print(f"BlazeFace on {sum(map(len, paths.values()))} images of {len(names)} sets ...", flush=True)
    rows = iter(blazeface_on_images([p for n in names for p in paths[n]]))
    for name in names:
        lines = [json.dumps({**row, "image": Path(row["image"]).name}) for row in (next(rows) for _ in paths[name])]
        (cache / f"{name}.jsonl").write_text("".join(f"{line}\n" for line in lines))


def blazeface_on_images(paths: list[Path]) -> list[dict]:
    """One benchmarks/blazeface.py process in .venv-mediapipe for all these images (MediaPipe starts in seconds,
    runs ~30 ms per image): its rows, in the order of `paths`, boxes converted to head size as config says."""
    python = ensure_mediapipe_venv()
    with tempfile.TemporaryDirectory(prefix="blazeface-") as work:
        listing, out, log = Path(work) / "images.txt", Path(work) / "out.jsonl", Path(work) / "log.txt"
        listing.write_text("".join(f"{p}\n" for p in paths))
        command = [str(python), str(REPO / "benchmarks" / "blazeface.py"), "--images", str(listing), "--out", str(out),
                   "--min-score", str(config.MIN_SCORE), "--scale", str(config.BLAZEFACE_BOX_SCALE),
                   "--shift-up", str(config.BLAZEFACE_BOX_SHIFT_UP)]
        with open(log, "w") as stderr:  # MediaPipe's native log lines: shown only when it fails
            failed = subprocess.run(command, stderr=stderr).returncode
        if failed:
            sys.exit(f"benchmarks/blazeface.py failed ({failed}):\n" + log.read_text()[-2000:])
        return [json.loads(line) for line in out.read_text().splitlines()]


def blazeface_on_videos(clips: list[Path]) -> list[list[dict]]:
    """BlazeFace on every frame of these videos, each frame on its own as `predict` sees a video: per clip, one row
    per decoded frame. The frames go to BlazeFace as PNG, so it sees the very pixels OpenCV decoded for the model;
    one MediaPipe process for all clips."""
    import cv2

    with tempfile.TemporaryDirectory(prefix="blazeface-frames-") as work:
        frames = []  # per clip: its frames' PNG paths
        for index, clip in enumerate(clips):
            capture, frames_of_clip = cv2.VideoCapture(str(clip)), []
            ok, frame = capture.read()
            while ok:
                frames_of_clip.append(Path(work) / f"{index:04d}-{len(frames_of_clip):05d}.png")
                cv2.imwrite(str(frames_of_clip[-1]), frame)
                ok, frame = capture.read()
            capture.release()
            frames.append(frames_of_clip)
        rows = iter(blazeface_on_images([path for clip_frames in frames for path in clip_frames]))
        return [[next(rows) for _ in clip_frames] for clip_frames in frames]


def score_blazeface(samples: list, rows: dict[str, dict], model: str, threshold: float) -> dict:
    """BlazeFace's detections of these samples, scored exactly like the FaceTracker's."""
    from facetracker.evaluate import score_detections

    found = [rows[s.image.name].get(model, []) for s in samples]
    report = score_detections(samples, [s.boxes for s in samples], [[d["score"] for d in f] for f in found],
                              [[d["box"] for d in f] for f in found], threshold)
    return summary(report)


def blazeface_results(names: list[str], threshold: float) -> dict[str, dict[str, dict]]:
    """{set: {model: summary}} for BlazeFace's two models."""
    detections = blazeface_detections(names)
    return {n: {m: score_blazeface(samples_of(n), detections[n], m, threshold) for m in BLAZEFACE_MODELS}
            for n in names}


# ---------------------------------------------------------------- one fold


def run_fold(k: int, held_out: list[str], train_sets: list[str], run_dir: Path, epochs: int,
             threshold: float, seed: int = config.SPLIT_SEED, recipe: dict | None = None) -> dict:
    """Train on `train_sets` (unless fold-K.keras is already there), evaluate every held-out set."""
    model_path = run_dir / f"fold-{k}.keras"
    started = time.perf_counter()
    if not model_path.exists():  # saved atomically at the end of training: present means complete
        train_fold(k, train_sets, model_path, epochs, seed, recipe or {})
    trained = time.perf_counter()
    sets = evaluate_fold(model_path, held_out, run_dir / f"fold-{k}", threshold)
    return {"held_out": held_out, "trained_on": train_sets, "epochs": epochs, "model": model_path.name,
            "train_minutes": round((trained - started) / 60, 1),
            "eval_minutes": round((time.perf_counter() - trained) / 60, 1), "sets": sets}


def train_fold(k: int, train_sets: list[str], model_path: Path, epochs: int, seed: int = config.SPLIT_SEED,
               recipe: dict | None = None) -> None:
    """Train fold K's model with the bundled recipe; `recipe` overrides RecipeOptions fields (RECIPE_OPTIONS)."""
    import keras

    from facetracker.recipe import RecipeOptions, train_on_sets

    log = model_path.with_suffix(".train.jsonl")
    log.unlink(missing_ok=True)  # an interrupted training starts again from scratch: so does its log
    print(f"fold {k}: training on {len(train_sets)} sets for {epochs} epochs (log: {log}) ...", flush=True)
    options = RecipeOptions(out=model_path, epochs=epochs, log=log, seed=seed, **(recipe or {}))
    train_on_sets([DATASETS / n for n in train_sets], options)
    keras.backend.clear_session()  # the next fold builds a new model: free this one's graph
    gc.collect()


def evaluate_fold(model_path: Path, held_out: list[str], reports: Path, threshold: float) -> dict[str, dict]:
    from facetracker.evaluate import evaluate_samples, write_report
    from facetracker.inference import Detector

    detector = Detector.load(model_path)
    results = {}
    for name in held_out:
        report = evaluate_samples(detector, samples_of(name), threshold)
        write_report(report, reports / name, force=True)  # predictions.png: what a person looks at
        results[name] = {**summary(report), "latency_ms": round(report["latency_ms"], 2)}
        print(f"  {name}: AP@0.5 {fmt(report['ap50'])}, mean IoU {fmt(report['mean_iou'])}, FP rate on negatives "
              f"{fmt(report['fp_rate_negatives'], 2)}", flush=True)
    return results


# ---------------------------------------------------------------- results file (resumable)


def load_results(path: Path, protocol: dict) -> dict:
    """The results of earlier runs of the same protocol, or a new empty record."""
    if not path.exists():
        return {"protocol": protocol, "folds": {}}
    results = json.loads(path.read_text())
    earlier = results["protocol"]
    # files written before an option existed ran with what is now its "off" value
    recipe = {"negative_repeat": 1, "background_swap": 0.0, "background_pattern": 0.0, "backbone": "compact",
              "image_size": config.IMAGE_SIZE[config.DEFAULT_BACKBONE], "box_weight": config.RECIPE_BOX_WEIGHT,
              **earlier.get("recipe", {})}
    if earlier["folds_plan"] != protocol["folds_plan"] or earlier["epochs"] != protocol["epochs"] \
            or earlier.get("seed", config.SPLIT_SEED) != protocol["seed"] \
            or any(recipe[key] != protocol["recipe"][key] for key in RECIPE_OPTIONS):
        sys.exit(f"quality: {path} holds another fold plan, epoch count, seed, --negative-repeat, "
                 "--background-swap, --background-pattern, --backbone or --image-size; move it away or pass "
                 "--results DIR")
    return results


def reevaluate_at_threshold(results: dict, run_dir: Path, threshold: float) -> None:
    """Recall and the FP rate depend on the threshold, the trained models do not: folds finished at another
    threshold are scored again with their saved models (their training minutes kept)."""
    if results["protocol"].get("threshold", threshold) == threshold:
        return
    for k, fold in sorted(results["folds"].items()):
        print(f"fold {k}: done earlier at threshold {results['protocol']['threshold']}, evaluating again at "
              f"{threshold}", flush=True)
        fold["sets"] = evaluate_fold(run_dir / fold["model"], fold["held_out"], run_dir / f"fold-{k}", threshold)
    results["protocol"]["threshold"] = threshold


def save_results(path: Path, results: dict) -> None:
    from facetracker.files import write_json_atomic

    write_json_atomic(path, results, indent=1)


# ---------------------------------------------------------------- tables


def fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def blaze_cell(figures: dict) -> str:
    return f"{fmt(figures['ap50'])} / {fmt(figures['mean_iou'])} / {fmt(figures['fp_rate_negatives'], 2)}"


def mean_blaze_cell(rows: list[dict], model: str) -> str:
    return " / ".join(fmt(mean(r["blazeface"][model][key] for r in rows), digits)
                      for key, digits in (("ap50", 3), ("mean_iou", 3), ("fp_rate_negatives", 2)))


def quality_table(rows: list[dict], caption: str) -> str:
    """Per held-out set: the model's figures beside BlazeFace's, plus the unweighted mean over the sets."""
    lines = [caption, "",
             "| held-out set | fold | images | faces | negatives | AP@0.5 | AP@[.5:.95] | mean IoU | recall | "
             "FP rate on negatives | BlazeFace full range AP@0.5 / IoU / FP rate | BlazeFace short range |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        m = r["model"]
        lines.append(f"| {r['set']} | {r['fold']} | {m['images']} | {m['faces']} | {m['negatives']} | "
                     f"**{fmt(m['ap50'])}** | {fmt(m['ap50_95'])} | **{fmt(m['mean_iou'])}** | {fmt(m['recall'])} | "
                     f"{fmt(m['fp_rate_negatives'], 2)} | {blaze_cell(r['blazeface']['full-range'])} | "
                     f"{blaze_cell(r['blazeface']['short-range'])} |")
    means = {key: mean(r["model"][key] for r in rows) for key in ("ap50", "ap50_95", "mean_iou", "recall",
                                                                  "fp_rate_negatives")}
    lines.append(f"| mean of {len(rows)} sets | | {sum(r['model']['images'] for r in rows)} | "
                 f"{sum(r['model']['faces'] for r in rows)} | {sum(r['model']['negatives'] for r in rows)} | "
                 f"**{fmt(means['ap50'])}** | {fmt(means['ap50_95'])} | **{fmt(means['mean_iou'])}** | "
                 f"{fmt(means['recall'])} | {fmt(means['fp_rate_negatives'], 2)} | "
                 f"{mean_blaze_cell(rows, 'full-range')} | {mean_blaze_cell(rows, 'short-range')} |")
    return "\n".join(lines)


def blazeface_table(blaze: dict[str, dict[str, dict]], caption: str) -> str:
    """BlazeFace alone on every set: AP@0.5, mean IoU and FP rate on negatives of both models."""
    lines = [caption, "",
             "| set | images | faces | negatives | full range AP@0.5 | mean IoU | FP rate on negatives | "
             "short range AP@0.5 | mean IoU | FP rate on negatives |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    cells = (("ap50", 3), ("mean_iou", 3), ("fp_rate_negatives", 2))
    for name, models in blaze.items():
        full = models["full-range"]
        figures = " | ".join(fmt(models[m][key], d) for m in BLAZEFACE_MODELS for key, d in cells)
        lines.append(f"| {name} | {full['images']} | {full['faces']} | {full['negatives']} | {figures} |")
    figures = " | ".join(fmt(mean(models[m][key] for models in blaze.values()), d)
                         for m in BLAZEFACE_MODELS for key, d in cells)
    totals = [sum(models["full-range"][key] for models in blaze.values()) for key in ("images", "faces", "negatives")]
    lines.append(f"| mean of {len(blaze)} sets | {totals[0]} | {totals[1]} | {totals[2]} | {figures} |")
    return "\n".join(lines)


def write_doc(doc: Path, text: str, markers: tuple[str, str]) -> None:
    """Replace the text between the markers (appended when missing), keep the rest of the page (atomically)."""
    start, end = markers
    old = doc.read_text() if doc.exists() else "# Model quality\n"
    if start not in old or end not in old:
        old = old.rstrip() + f"\n\n{start}\n{end}\n"
    head, rest = old.split(start, 1)
    tmp = doc.with_suffix(".md.tmp")
    tmp.write_text(f"{head}{start}\n{text}\n{end}{rest.split(end, 1)[1]}")
    tmp.replace(doc)


def command_line() -> str:
    return " ".join([".venv/bin/python benchmarks/quality.py", *sys.argv[1:]])


# ---------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    from facetracker.recipe import add_recipe_arguments, recipe_option_problem

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=config.QUALITY_FOLDS, help="groups of held-out sets")
    parser.add_argument("--epochs", type=int, help=f"recipe epochs per fold (default {config.RECIPE_EPOCHS})")
    parser.add_argument("--sets", nargs="+", help="only these data sets take part (training and held out)")
    parser.add_argument("--fold", type=int, action="append", help="run only fold K (repeatable; 1-based)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: sets {', '.join(QUICK_SETS)}, fold 1 only, {QUICK_EPOCHS} epochs, "
                             "results in a temporary folder, docs untouched")
    parser.add_argument("--results", type=Path, help="folder for models, reports and results.json")
    parser.add_argument("--threshold", type=float, default=config.THRESHOLD, help="score that counts as a face")
    add_recipe_arguments(parser)
    parser.add_argument("--blazeface-only", action="store_true", help="BlazeFace's table on the sets, no training")
    parser.add_argument("--doc", type=Path, default=DOC, help="page the tables go into (not with --quick)")
    args = parser.parse_args()
    require_datasets()
    if problem := recipe_option_problem(args.negative_repeat, args.background_swap, args.background_pattern,
                                        args.image_size, args.box_weight):
        parser.error(problem)
    if args.quick:
        args.sets = args.sets or list(QUICK_SETS)
        args.fold = args.fold or [1]
        args.epochs = args.epochs or QUICK_EPOCHS
    args.epochs = args.epochs or config.RECIPE_EPOCHS
    unknown = set(args.sets or ()) - set(available_sets())
    if unknown:
        parser.error(f"unknown data sets {sorted(unknown)}; found in {DATASETS}: {', '.join(available_sets())}")
    args.sets = sorted(args.sets or available_sets())
    return args


def run_dir_for(args, whole: bool) -> Path:
    if args.results:
        return args.results
    tag = f"{args.folds}-folds-{args.epochs}-epochs"
    if not whole:  # a subset of the sets makes other folds: never mix them with the full protocol's
        tag += "-sets-" + hashlib.sha1(",".join(args.sets).encode()).hexdigest()[:8]
    return RESULTS / "quality" / tag


def main() -> None:
    args = parse_args()
    whole = args.sets == available_sets()
    if args.blazeface_only:
        blaze = blazeface_results(args.sets, args.threshold)
        text = blazeface_table(blaze, f"Command: `{command_line()}` (threshold {args.threshold}; boxes x"
                                      f"{config.BLAZEFACE_BOX_SCALE} about the centre, up "
                                      f"{config.BLAZEFACE_BOX_SHIFT_UP} of the height).")
        print(text)
        if whole and not args.quick:
            write_doc(args.doc, text, BLAZEFACE_MARKERS)
            print(f"table written to {args.doc}")
        return

    folds = make_folds(args.sets, args.folds)
    chosen = args.fold or list(range(1, len(folds) + 1))
    if any(not 1 <= k <= len(folds) for k in chosen):
        sys.exit(f"quality: --fold must be between 1 and {len(folds)}")
    temporary = Path(tempfile.mkdtemp(prefix="facetracker-quality-")) if args.quick and not args.results else None
    run_dir = temporary or run_dir_for(args, whole)
    run_dir.mkdir(parents=True, exist_ok=True)
    protocol = {"sets": args.sets, "folds_plan": folds, "epochs": args.epochs, "threshold": args.threshold,
                "seed": args.seed,
                "recipe": {"batch_size": config.RECIPE_BATCH_SIZE, "negative_repeat": args.negative_repeat,
                           "background_swap": args.background_swap, "background_pattern": args.background_pattern,
                           "backbone": args.backbone, "image_size": args.image_size, "box_weight": args.box_weight}}
    results_path = run_dir / "results.json"
    results = load_results(results_path, protocol)
    reevaluate_at_threshold(results, run_dir, args.threshold)
    try:
        blaze = blazeface_results(args.sets, args.threshold)  # first: minutes, where a fold takes most of an hour
        results["blazeface"] = blaze
        for k in chosen:
            if str(k) in results["folds"]:
                print(f"fold {k}: done earlier ({', '.join(folds[k - 1])})", flush=True)
                continue
            train_sets = [n for n in args.sets if n not in folds[k - 1]]
            print(f"fold {k} of {len(folds)}: holding out {', '.join(folds[k - 1])}", flush=True)
            results["folds"][str(k)] = run_fold(k, folds[k - 1], train_sets, run_dir, args.epochs, args.threshold,
                                                args.seed, {key: protocol["recipe"][key] for key in RECIPE_OPTIONS})
            save_results(results_path, results)
        save_results(results_path, results)
        report_tables(args, results, folds, run_dir, whole)
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)


def report_tables(args, results: dict, folds: list[list[str]], run_dir: Path, whole: bool) -> None:
    """Print the table of every finished fold, save it as table.md, and put it in the docs when complete."""
    rows = [{"set": name, "fold": int(k), "model": figures, "blazeface": results["blazeface"][name]}
            for k, fold in sorted(results["folds"].items(), key=lambda item: int(item[0]))
            for name, figures in sorted(fold["sets"].items())]
    minutes = sum(f["train_minutes"] + f["eval_minutes"] for f in results["folds"].values())
    caption = (f"Command: `{command_line()}` — {len(folds)} folds of whole sets, {len(results['folds'])} done; "
               f"recipe: {args.epochs} epochs, batch {config.RECIPE_BATCH_SIZE}, {args.backbone} at "
               f"{args.image_size} px, box loss weight {args.box_weight:g}, "
               f"{'from BlazeFace' if args.backbone == 'blazeface' else 'from scratch'}; threshold {args.threshold}; "
               f"{minutes:.0f} min of training and evaluation on {os.cpu_count()} CPU cores. "
               f"BlazeFace boxes x{config.BLAZEFACE_BOX_SCALE} about the centre, up {config.BLAZEFACE_BOX_SHIFT_UP} "
               "of the height. Means are over sets, unweighted.")
    text = quality_table(rows, caption)
    print(text)
    if not args.quick:
        (run_dir / "table.md").write_text(text + "\n")
        print(f"results: {run_dir / 'results.json'}, {run_dir / 'table.md'}")
    if whole and not args.quick and len(results["folds"]) == len(folds):
        write_doc(args.doc, text, TABLE_MARKERS)
        print(f"table written to {args.doc}")


if __name__ == "__main__":
    main()
