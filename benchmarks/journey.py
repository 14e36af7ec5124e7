"""A new user's whole journey on one person's frames, with every default: split -> augment -> train --epochs 40.

    .venv/bin/python benchmarks/journey.py                      # webcam-r, webcam-g, caltech-faces (~15-30 min each)
    .venv/bin/python benchmarks/journey.py --people webcam-v    # any shared sets, one journey each
    .venv/bin/python benchmarks/journey.py --bundled benchmarks/results/bundle/facetracker.keras   # before shipping it
    .venv/bin/python benchmarks/journey.py --quick              # smoke run (~5 min): tiny augment and epochs

For each person (one shared labelme set, copied alone into a temporary working folder as data/images + data/labels)
it runs the real commands in subprocesses, exactly as a user types them, and times each:

    facetracker split
    facetracker augment
    facetracker train --epochs 40                                           # fine-tunes the bundled model (default)
    facetracker train --epochs 40 --weights none --out models/scratch.keras # the same from scratch, to compare

then scores three models with facetracker.evaluate -- the fine-tuned one, the one from scratch and the bundled model
untouched -- on the person's own test split (data/test, the raw frames split put aside) and on every OTHER shared set
(the images the bundled recipe uses: facetracker.recipe.set_samples), to show what fine-tuning forgot. The bundled
model was trained on every shared set, this person's included: at acceptance the same journey runs on a person it
has never seen.

Targets (issue 10), for the fine-tuned model: AP@0.5 >= 0.98 and mean IoU >= 0.80 on the own test split; mean AP@0.5
over the other sets within 0.03 of the bundled model's; `train` in 15 minutes or less on 2 cores.

Results: benchmarks/results/journey/<person>.json, rewritten after every step (a stopped run keeps what it measured;
the next run skips finished people, --force redoes them), and the table in docs/quality.md between the journey
markers once every person asked for is done (not with --quick, which writes to benchmarks/results/journey-quick/).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facetracker import config  # noqa: E402
from facetracker.files import file_digest  # noqa: E402

from shared_data import DATASETS, require_datasets  # noqa: E402  (benchmarks/shared_data.py)
PEOPLE = ("webcam-r", "webcam-g", "caltech-faces")  # a label named `Semih`; 960x540 frames; ~27 people
MODELS = ("finetuned", "scratch", "bundled")
DOCS = REPO / "docs" / "quality.md"
MARKERS = ("<!-- journey-table:start -->", "<!-- journey-table:end -->")
TARGETS = {"own_ap50": 0.98, "own_mean_iou": 0.80, "others_ap_drop": 0.03, "train_minutes": 15.0}
# --quick: a smoke run of the whole machinery in a few minutes; its figures mean nothing.
QUICK = {"augment": ["--variants", "2", "--background-crops", "1", "--pastes", "1"],
         "train": ["--steps-per-epoch", "3"], "epochs": 2, "other_sets": 2, "other_images": 8}


def run_step(command: list[str], cwd: Path, log: Path) -> float:
    """Run `python -m facetracker ...` in cwd; minutes taken. Its output goes to `log`; a failure stops the run."""
    started = time.monotonic()
    with open(log, "a") as out:
        out.write(f"$ facetracker {' '.join(command)}\n")
        out.flush()
        run = subprocess.run([sys.executable, "-m", "facetracker", *command], cwd=cwd, stdout=out,
                             stderr=subprocess.STDOUT, text=True)
    if run.returncode:
        tail = log.read_text().splitlines()[-5:]
        sys.exit(f"error: `facetracker {' '.join(command)}` failed (exit {run.returncode}) in {cwd}:\n  "
                 + "\n  ".join(tail))
    return (time.monotonic() - started) / 60


def copy_person(name: str, data: Path) -> int:
    """The person's labelme set as a user's data/ folder (images + labels); number of images."""
    src = DATASETS / name
    for part in (config.IMAGES, config.LABELS):
        shutil.copytree(src / part, data / part)
    return sum(1 for p in (data / config.IMAGES).iterdir() if p.suffix.lower() in config.IMAGE_SUFFIXES)


def shared_sets() -> list[str]:
    return sorted(p.name for p in DATASETS.iterdir() if (p / config.IMAGES).is_dir())


def recorded_key(result: dict) -> str | None:
    """The file key of the bundled model a person's journey started from: recorded, or read from the file when it is
    still where it was (results written before keys were recorded). Not the path: copies of the repository hold the
    same model under other paths."""
    if result.get("bundled_key"):
        return result["bundled_key"]
    path = Path(result.get("bundled", ""))
    return file_digest(path) if path.is_file() else None


# ---------------------------------------------------------------- evaluation (in this process)
def summary(report: dict) -> dict:
    keys = ("ap50", "mean_iou", "recall", "precision", "fp_rate_negatives", "faces", "images")
    return {key: report.get(key) for key in keys}


def evaluate_own(model: Path, test_dir: Path) -> dict:
    """AP@0.5, mean IoU, ... on the person's own raw test frames (data/test), as `facetracker evaluate` does."""
    from facetracker.evaluate import evaluate_folder
    from facetracker.inference import Detector
    from facetracker.labels import resolve_face_labels

    names, _ = resolve_face_labels(test_dir / config.LABELS)
    report = evaluate_folder(Detector.load(model), test_dir / config.IMAGES, test_dir / config.LABELS, names,
                             config.THRESHOLD)
    return summary(report)


def evaluate_others(model: Path, sets: list[str], limit: int | None = None) -> dict[str, dict]:
    """The same on every other shared set (the recipe's images: no unreliable negatives)."""
    from facetracker.evaluate import evaluate_samples
    from facetracker.inference import Detector
    from facetracker.recipe import set_samples

    detector = Detector.load(model)
    results = {}
    for name in sets:
        samples = set_samples(DATASETS / name)
        if limit:
            samples = samples[:limit]
        results[name] = summary(evaluate_samples(detector, samples, config.THRESHOLD))
    return results


def mean_of(per_set: dict[str, dict], key: str) -> float | None:
    values = [r[key] for r in per_set.values() if r.get(key) is not None]
    return statistics.fmean(values) if values else None


# ---------------------------------------------------------------- one person's journey
def journey(name: str, args, results_dir: Path, bundled: Path, bundled_cache: dict) -> dict:
    out_path = results_dir / f"{name}.json"
    result = {"person": name, "bundled": str(bundled), "bundled_key": file_digest(bundled), "quick": args.quick,
              "epochs": args.epochs, "done": False,
              "started": time.strftime("%Y-%m-%d %H:%M"), "cores": os.cpu_count(), "load_before": os.getloadavg()[0],
              "steps": {}, "models": {}}

    def save():
        tmp = out_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(out_path)

    work = Path(tempfile.mkdtemp(prefix=f"journey-{name}-"))
    log = results_dir / f"{name}.log"
    log.unlink(missing_ok=True)
    print(f"{name}: working in {work} (commands' output: {log})", flush=True)
    try:
        result["images"] = copy_person(name, work / "data")
        quick_augment = QUICK["augment"] if args.quick else []
        quick_train = QUICK["train"] if args.quick else []
        weights = [] if args.bundled is None else ["--weights", str(bundled)]
        plan = [
            ("split", ["split"]),
            ("augment", ["augment", *quick_augment]),
            ("train_finetuned", ["train", "--epochs", str(args.epochs), *weights, *quick_train]),
            ("train_scratch", ["train", "--epochs", str(args.epochs), "--weights", "none", "--out",
                               "models/scratch.keras", *quick_train]),
        ][:None if "scratch" in args.models else 3]
        for step, command in plan:
            minutes = run_step(command, work, log)
            result["steps"][step] = {"command": "facetracker " + " ".join(command), "minutes": round(minutes, 2)}
            if step == "split":
                result["split"] = {part: sum(1 for _ in (work / "data" / part / config.IMAGES).iterdir())
                                   for part in config.SPLITS}
            if step.startswith("train_"):
                model = work / "models" / ("facetracker.keras" if step == "train_finetuned" else "scratch.keras")
                state = json.loads((model.parent / f"{model.stem}.ckpt" / "state.json").read_text())
                result["steps"][step].update(epochs=state["epoch"], best_epoch=state["best_epoch"],
                                             stopped_early=state["stopped_early"], start=state.get("start"))
            print(f"  {step}: {minutes:.1f} min", flush=True)
            save()

        others = [s for s in shared_sets() if s != name]
        limit = None
        if args.quick:
            others, limit = others[:QUICK["other_sets"]], QUICK["other_images"]
        prep = result["steps"]["split"]["minutes"] + result["steps"]["augment"]["minutes"]
        for label, model in (("finetuned", work / "models" / "facetracker.keras"),
                             ("scratch", work / "models" / "scratch.keras"), ("bundled", bundled)):
            if label not in args.models:
                continue
            started = time.monotonic()
            own = evaluate_own(model, work / "data" / "test")
            key = (result["bundled_key"], tuple(others), limit)
            if label == "bundled" and bundled_cache.get("key") == list(map(str, key)):
                per_set = bundled_cache["per_set"]  # the bundled model on the other sets does not depend on the person
            else:
                per_set = evaluate_others(model, others, limit)
                if label == "bundled":
                    bundled_cache.update(key=list(map(str, key)), per_set=per_set)
            train_minutes = result["steps"].get(f"train_{label}", {}).get("minutes", 0.0)
            result["models"][label] = {
                "minutes_train": round(train_minutes, 2),
                "minutes_total": round(prep + train_minutes, 2) if label != "bundled" else 0.0,
                "own": own, "others": per_set,
                "others_ap50": mean_of(per_set, "ap50"), "others_mean_iou": mean_of(per_set, "mean_iou"),
                "others_min_ap50": min((r["ap50"] for r in per_set.values() if r["ap50"] is not None), default=None),
            }
            print(f"  {label}: own AP@0.5 {fmt(own['ap50'])} IoU {fmt(own['mean_iou'])}; others AP@0.5 "
                  f"{fmt(result['models'][label]['others_ap50'])} ({time.monotonic() - started:.0f} s to evaluate)",
                  flush=True)
            save()
        result["targets"] = check_targets(result)
        result["done"], result["load_after"] = True, os.getloadavg()[0]
        save()
        return result
    finally:
        if args.keep:
            print(f"  kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def check_targets(result: dict) -> dict:
    tuned, bundled = result["models"].get("finetuned"), result["models"].get("bundled")
    if tuned is None or bundled is None:
        return {"all": None}
    drop = None if tuned["others_ap50"] is None or bundled["others_ap50"] is None else \
        bundled["others_ap50"] - tuned["others_ap50"]
    checks = {
        "own_ap50": (tuned["own"]["ap50"] or 0) >= TARGETS["own_ap50"],
        "own_mean_iou": (tuned["own"]["mean_iou"] or 0) >= TARGETS["own_mean_iou"],
        "others_within": drop is not None and drop <= TARGETS["others_ap_drop"],
        "train_minutes": tuned["minutes_train"] <= TARGETS["train_minutes"],
    }
    return {**checks, "others_ap_drop": drop, "all": all(checks.values())}


# ---------------------------------------------------------------- table
def fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(results: list[dict], command: str) -> str:
    bundled = Path(results[0]["bundled"])
    lines = [f"Command: `{command}` — {results[0]['cores']} CPU cores, started {results[0]['started']}; bundled "
             f"model `{bundled.name}` (sha256 {recorded_key(results[0]) or '?'}...). Minutes: the "
             "`train` command (in brackets with `split` and `augment`). Targets met: own AP@0.5 >= 0.98 and IoU >= "
             "0.80, others' mean AP@0.5 within 0.03 of the bundled model's (the difference in brackets), train <= 15 "
             "min.",
             "",
             "| person | frames (train / val / test) | model | minutes: train (with split + augment) "
             "| own test AP@0.5 | own test mean IoU | other people: mean AP@0.5 (worst set) | other people: mean IoU "
             "| targets met |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        split = r.get("split", {})
        parts = " / ".join(str(split.get(part, "?")) for part in config.SPLITS)
        frames = f"{r.get('images', '?')} ({parts})"
        for label in MODELS:
            m = r["models"].get(label)
            if not m:
                continue
            minutes = "-" if label == "bundled" else f"{m['minutes_train']:.1f} ({m['minutes_total']:.1f})"
            met = ""
            if label == "finetuned" and "targets" in r:
                t = r["targets"]
                missed = [k for k in ("own_ap50", "own_mean_iou", "others_within", "train_minutes") if not t.get(k)]
                met = "-" if t["all"] is None else "**yes**" if t["all"] else "no: " + ", ".join(missed)
                if t.get("others_ap_drop") is not None:
                    met += f" ({-t['others_ap_drop']:+.3f})"
            name = {"finetuned": "fine-tuned (default)", "scratch": "from scratch (`--weights none`)",
                    "bundled": "bundled, untouched"}[label]
            lines.append(f"| {r['person']} | {frames} | {name} | {minutes} | {fmt(m['own']['ap50'])} "
                         f"| {fmt(m['own']['mean_iou'])} | {fmt(m['others_ap50'])} ({fmt(m['others_min_ap50'])}) "
                         f"| {fmt(m['others_mean_iou'])} | {met} |")
            frames = ""
    return "\n".join(lines)


def write_docs(text: str) -> None:
    doc = DOCS.read_text()
    start, end = MARKERS
    if start not in doc or end not in doc:
        sys.exit(f"error: {DOCS} has no {start} ... {end} markers")
    head, rest = doc.split(start, 1)
    _, tail = rest.split(end, 1)
    DOCS.write_text(f"{head}{start}\n{text}\n{end}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", nargs="+", default=list(PEOPLE), help="shared sets, one journey each")
    parser.add_argument("--epochs", type=int, default=None, help="train --epochs (default 40; 2 with --quick)")
    parser.add_argument("--bundled", type=Path, default=None,
                        help="a FaceTracker .keras to use as the bundled model (default: facetracker/assets/)")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny augment and epochs, 2 other sets")
    parser.add_argument("--results", type=Path, default=None, help="results folder")
    parser.add_argument("--force", action="store_true", help="redo people already finished")
    parser.add_argument("--keep", action="store_true", help="keep each person's working folder")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS),
                        help="which models to train and score (default: all three)")
    parser.add_argument("--no-docs", action="store_true", help="do not write the table into docs/quality.md")
    args = parser.parse_args()
    require_datasets()
    args.epochs = args.epochs or (QUICK["epochs"] if args.quick else config.EPOCHS)
    results_dir = args.results or REPO / "benchmarks" / "results" / ("journey-quick" if args.quick else "journey")
    results_dir.mkdir(parents=True, exist_ok=True)
    unknown = [p for p in args.people if not (DATASETS / p / config.IMAGES).is_dir()]
    if unknown:
        sys.exit(f"error: not a shared data set: {', '.join(unknown)} (in {DATASETS})")

    from facetracker.model import bundled_model_file, start_model_config

    bundled = (args.bundled or bundled_model_file()).resolve()
    start_model_config(bundled)  # an old or broken bundled model stops here, with the reason
    bundled_key = file_digest(bundled)
    cache_path = results_dir / "bundled-others.json"
    bundled_cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    results = []
    for name in args.people:
        path = results_dir / f"{name}.json"
        previous = json.loads(path.read_text()) if path.exists() else None
        if previous and previous.get("done") and not args.force and recorded_key(previous) == bundled_key:
            print(f"{name}: done before ({path}), skipped (--force redoes it)")
            results.append(previous)
            continue
        results.append(journey(name, args, results_dir, bundled, bundled_cache))
        cache_path.write_text(json.dumps(bundled_cache))
    text = table(results, " ".join([".venv/bin/python benchmarks/journey.py", *sys.argv[1:]]))
    print(text)
    if not (args.quick or args.no_docs) and all(r.get("done") for r in results):
        write_docs(text)
        print(f"table written to {DOCS}")


if __name__ == "__main__":
    main()
