"""Model quality on people the tracker has never seen: leave-one-person-out over the three real data sets.

    .venv/bin/python benchmarks/quality.py            # the full protocol, table -> docs/quality.md
    .venv/bin/python benchmarks/quality.py --quick    # smoke run (a few minutes), table printed only

For each fold (held-out person = webcam-a, webcam-b, webcam-c) it runs the real workflow with the `facetracker`
command line, each stage in its own process, in a temporary folder:

    copy the other two people's images + labels into data/   (the shared folders are never touched)
    facetracker split    --data data --ratios 0.85 0.1 0.05 --seed 42
    facetracker augment  --data data --out aug_data --variants V
    facetracker train    --data aug_data --epochs E [train options]
    facetracker evaluate --model models/facetracker.keras --data <held-out person's raw labelme folder>

and collects AP@0.5 (one detection per image, ranked by score), mean IoU on faces and the false-positive rate on
negatives from evaluate's JSON report. The table is written between the markers of docs/quality.md (or --doc);
the hand-written analysis around it is kept.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("FACETRACKER_DATASETS", REPO.parent / "shared" / "datasets"))
PEOPLE = ("webcam-a", "webcam-b", "webcam-c")
DOC = REPO / "docs" / "quality.md"
START, END = "<!-- quality-table:start -->", "<!-- quality-table:end -->"
# BlazeFace (short range) and Haar, boxes rescaled to these head-sized labels: the reference figures.
REFERENCE = {"webcam-a": ((0.944, 0.679), (0.806, 0.599)), "webcam-b": ((0.876, 0.657), (0.090, 0.116)),
             "webcam-c": ((0.968, 0.776), (0.445, 0.345))}
TARGET_AP, TARGET_IOU = 0.95, 0.75
SPLIT_RATIOS = ("0.85", "0.1", "0.05")  # the held-out person is the test set: keep most of the others for training
# The bundled model's recipe (docs/quality.md), which fits the ~90-minute budget on 2 cores: ~6 000 training
# images per epoch per fold, ~10-15 minutes per fold.
FULL = dict(variants=12, background_crops=3, pastes=15, epochs=10, batch_size=16)
QUICK = dict(variants=2, background_crops=1, pastes=1, epochs=2, batch_size=16)


def facetracker(*args: str, cwd: Path, log) -> None:
    """Run one facetracker command; its output goes to the fold's log. Stops the benchmark if it fails."""
    command = [str(Path(sys.executable).parent / "facetracker"), *args]
    log.write(f"$ {' '.join(command)}\n")
    log.flush()
    result = subprocess.run(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "COLUMNS": "160"})
    if result.returncode:
        sys.exit(f"quality: `facetracker {args[0]}` failed with exit code {result.returncode}; see {log.name}")


def copy_people(names: list[str], dest: Path) -> None:
    """Images and labels of these data sets into dest/images + dest/labels (uuid names never clash)."""
    for folder in ("images", "labels"):
        (dest / folder).mkdir(parents=True, exist_ok=True)
    for name in names:
        for folder in ("images", "labels"):
            for path in (DATASETS / name / folder).iterdir():
                shutil.copy2(path, dest / folder / path.name)


def run_fold(held_out: str, root: Path, settings: dict, train_args: list[str]) -> dict:
    """Train on the other two people, evaluate on every image of `held_out`; returns the figures."""
    fold = root / f"without-{held_out}"
    fold.mkdir(parents=True)
    copy_people([p for p in PEOPLE if p != held_out], fold / "data")
    started = time.perf_counter()
    with open(fold / "log.txt", "w") as log:
        facetracker("split", "--data", "data", "--ratios", *SPLIT_RATIOS, "--seed", "42", cwd=fold, log=log)
        facetracker("augment", "--data", "data", "--out", "aug_data", "--variants", str(settings["variants"]),
                    "--background-crops", str(settings["background_crops"]), "--pastes", str(settings["pastes"]),
                    "--workers", str(os.cpu_count() or 1), cwd=fold, log=log)
        augmented = time.perf_counter()
        facetracker("train", "--data", "aug_data", "--epochs", str(settings["epochs"]),
                    "--batch-size", str(settings["batch_size"]), "--out", "models/facetracker.keras",
                    "--run-name", held_out, *train_args, cwd=fold, log=log)
        trained = time.perf_counter()
        facetracker("evaluate", "--model", "models/facetracker.keras", "--data", str(DATASETS / held_out),
                    "--out", "report", cwd=fold, log=log)
    report = json.loads((fold / "report" / "evaluation.json").read_text())
    state = json.loads((fold / "models" / "facetracker.ckpt" / "state.json").read_text())
    return {"held_out": held_out, "ap50": report["ap50"], "mean_iou": report["mean_iou"],
            "fp_rate": report["false_positive_rate"], "faces": report["faces"], "negatives": report["negatives"],
            "recall": report["recall"], "precision": report["precision"],
            "epochs": state["epoch"], "best_epoch": state["best_epoch"],
            "augment_min": (augmented - started) / 60, "train_min": (trained - augmented) / 60,
            "minutes": (time.perf_counter() - started) / 60}


def fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(rows: list[dict], settings: dict, train_args: list[str], minutes: float) -> str:
    command = " ".join(["benchmarks/quality.py", *sys.argv[1:]])
    lines = [
        f"Command: `.venv/bin/python {command}` — augment: {settings['variants']} variants, "
        f"{settings['background_crops']} background crops, {settings['pastes']} pasted faces per image; train: "
        f"{settings['epochs']} epochs, batch {settings['batch_size']}, options `{' '.join(train_args) or '(defaults)'}`; "
        f"{minutes:.0f} min in all on {os.cpu_count()} CPU cores.",
        "",
        "| held-out person | faces / negatives | AP@0.5 | mean IoU | FP rate on negatives | recall @0.5 | "
        "BlazeFace AP / IoU | Haar AP / IoU | target met | epochs (best) | minutes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        (blaze_ap, blaze_iou), (haar_ap, haar_iou) = REFERENCE[r["held_out"]]
        met = (r["ap50"] or 0) >= TARGET_AP and (r["mean_iou"] or 0) >= TARGET_IOU
        lines.append(
            f"| {r['held_out']} | {r['faces']} / {r['negatives']} | **{fmt(r['ap50'])}** | **{fmt(r['mean_iou'])}** | "
            f"{fmt(r['fp_rate'], 2)} | {fmt(r['recall'])} | {blaze_ap:.3f} / {blaze_iou:.3f} | "
            f"{haar_ap:.3f} / {haar_iou:.3f} | {'yes' if met else 'no'} | {r['epochs']} ({r['best_epoch']}) | "
            f"{r['minutes']:.1f} |")
    return "\n".join(lines)


def write_doc(doc: Path, text: str) -> None:
    """Replace the table between the markers, keep the rest of the page (written atomically)."""
    old = doc.read_text() if doc.exists() else f"# Model quality\n\n{START}\n{END}\n"
    if START not in old or END not in old:
        old = old.rstrip() + f"\n\n{START}\n{END}\n"
    head, rest = old.split(START, 1)
    new = f"{head}{START}\n{text}\n{END}{rest.split(END, 1)[1]}"
    tmp = doc.with_suffix(".md.tmp")
    tmp.write_text(new)
    tmp.replace(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few variants and epochs, table not saved")
    parser.add_argument("--variants", type=int)
    parser.add_argument("--background-crops", type=int)
    parser.add_argument("--pastes", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--folds", nargs="+", choices=PEOPLE, default=list(PEOPLE), help="held-out people to run")
    parser.add_argument("--keep", type=Path, help="work in this (new) folder and keep it")
    parser.add_argument("--doc", type=Path, default=DOC, help="page the table goes into (not with --quick)")
    parser.add_argument("--json", type=Path, help="also write the per-fold figures to this JSON file")
    args, train_args = parser.parse_known_args()  # anything else goes to `facetracker train`, e.g. --lr 2e-3

    settings = dict(QUICK if args.quick else FULL)
    for key in settings:
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    root = args.keep or Path(tempfile.mkdtemp(prefix="facetracker-quality-"))
    root.mkdir(parents=True, exist_ok=True)
    started, rows = time.perf_counter(), []
    try:
        for held_out in args.folds:
            print(f"fold without {held_out}: training on the others ...", flush=True)
            rows.append(run_fold(held_out, root, settings, train_args))
            r = rows[-1]
            print(f"  {held_out}: AP@0.5 {fmt(r['ap50'])}, mean IoU {fmt(r['mean_iou'])}, FP rate "
                  f"{fmt(r['fp_rate'], 2)} ({r['minutes']:.1f} min)", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    text = table(rows, settings, train_args, (time.perf_counter() - started) / 60)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if not args.quick and set(args.folds) == set(PEOPLE):
        write_doc(args.doc, text)
        print(f"table written to {args.doc}")


if __name__ == "__main__":
    main()
