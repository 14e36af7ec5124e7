"""Rehearsal: does mixing a few of other people's labelled frames into one person's fine-tuning stop the forgetting?

    .venv/bin/python benchmarks/rehearsal.py [--person webcam-g] [--per-set 16 6] [--rehearse SET ...]

The user's journey of benchmarks/journey.py (split, augment, `train --epochs 40`), on one shared set, with one
change: after `split`, `--per-set` labelled frames of each `--rehearse` set (spread evenly) are copied into
`data/train`, so `augment` and `train` treat them as the user's own. Two models are trained for each count, one
with `--blend 1` (the fine-tuned weights as they are) and one with the blend `train` picks. Each is scored on the
person's own test split and on the shared sets that are neither the person nor rehearsed. The results go to
benchmarks/results/rehearsal/<person>.json (docs/quality.md, "Rehearsal").
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
import journey  # noqa: E402  (benchmarks/journey.py: the same copy, evaluation and means)
from shared_data import DATASETS, require_datasets  # noqa: E402

from facetracker import config  # noqa: E402
from facetracker.files import file_digest  # noqa: E402

REHEARSE = ("webcam-a", "webcam-c", "webcam-e", "webcam-h", "caltech-faces")  # label `face`, head-sized boxes
RESULTS = REPO / "benchmarks" / "results" / "rehearsal"


def add_rehearsal_frames(train_dir: Path, sets: list[str], per_set: int) -> int:
    """Copy `per_set` evenly spread labelled frames of each set into the train split; the number copied."""
    copied = 0
    for name in sets:
        labels = sorted((DATASETS / name / config.LABELS).glob("*.json"))
        images = {p.stem: p for p in (DATASETS / name / config.IMAGES).iterdir()}
        for label in labels[::max(1, len(labels) // per_set)][:per_set]:
            shutil.copy(images[label.stem], train_dir / config.IMAGES / f"{name}-{images[label.stem].name}")
            shutil.copy(label, train_dir / config.LABELS / f"{name}-{label.name}")
            copied += 1
    return copied


def run_count(person: str, rehearse: list[str], per_set: int, log: Path) -> dict:
    """One rehearsal size: both models' figures."""
    work = Path(tempfile.mkdtemp(prefix=f"rehearsal-{person}-"))
    try:
        journey.copy_person(person, work / "data")
        journey.run_step(["split"], work, log)
        result = {"frames_added": add_rehearsal_frames(work / "data" / "train", rehearse, per_set)}
        result["augment_minutes"] = round(journey.run_step(["augment"], work, log), 2)
        others = [s for s in journey.shared_sets() if s not in (*rehearse, person)]
        for tag, blend in (("blend 1", ["--blend", "1"]), ("blend picked", [])):
            minutes = round(journey.run_step(["train", "--epochs", "40", "--out", f"models/{tag[6:]}.keras", *blend],
                                             work, log), 2)
            model = work / "models" / f"{tag[6:]}.keras"
            per = journey.evaluate_others(model, others)
            state = json.loads((model.parent / f"{model.stem}.ckpt" / "state.json").read_text())
            result[tag] = {"train_minutes": minutes, "blend": state["blend"],
                           "own": journey.evaluate_own(model, work / "data" / "test"),
                           "others_ap50": journey.mean_of(per, "ap50"),
                           "others_mean_iou": journey.mean_of(per, "mean_iou"), "others": per}
            print(f"  {per_set} a set, {tag} ({state['blend']:g}): own AP@0.5 {result[tag]['own']['ap50']:.3f} IoU "
                  f"{result[tag]['own']['mean_iou']:.3f}; others AP@0.5 {result[tag]['others_ap50']:.3f} "
                  f"({minutes:.1f} min)", flush=True)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--person", default="webcam-g", help="the shared set that plays the user")
    parser.add_argument("--per-set", type=int, nargs="+", default=[16, 6], help="frames of each rehearsed set")
    parser.add_argument("--rehearse", nargs="+", default=list(REHEARSE), help="sets whose frames are mixed in")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    require_datasets()
    missing = [s for s in (args.person, *args.rehearse) if not (DATASETS / s / config.IMAGES).is_dir()]
    if missing or args.person in args.rehearse or min(args.per_set) < 1:
        sys.exit(f"error: --person and --rehearse must be different shared sets ({', '.join(missing) or 'overlap'}) "
                 "and --per-set at least 1 — see ls ../shared/datasets")
    args.results.mkdir(parents=True, exist_ok=True)
    out, log = args.results / f"{args.person}.json", args.results / f"{args.person}.log"
    log.unlink(missing_ok=True)
    from facetracker.model import bundled_model_file

    report = {"person": args.person, "rehearse": args.rehearse, "started": time.strftime("%Y-%m-%d %H:%M"),
              "bundled_key": file_digest(bundled_model_file()), "counts": {}}
    for per_set in args.per_set:
        report["counts"][str(per_set)] = run_count(args.person, args.rehearse, per_set, log)
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(report, indent=1))
        tmp.replace(out)
    print(f"results: {out}")


if __name__ == "__main__":
    main()
