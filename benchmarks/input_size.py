"""The fold models of a benchmarks/quality.py run at smaller inputs: how much finding faces a faster input costs.

    .venv/bin/python benchmarks/input_size.py --results benchmarks/results/quality/2-folds-30-epochs-blazeface \\
        [--sizes 192 160 128] [--save DIR] [--fitted]

Every layer of a FaceTracker is convolutional, so the same weights run at any square input side that is a multiple
of 32 (facetracker.model.rebuilt; `facetracker export --image-size` ships such a file). No retraining: each fold
model is rebuilt at each size and scored on the sets its fold held out (AP@0.5 and mean IoU, as quality.py does).
Prints one table with a column per size, and each size's means. --fitted adds a column for each fold model at its
own size with its input fitted to each set's frames (facetracker.model.fitted, what `facetracker export --frame`
ships): the same scale as the square, fewer grey bars.

--save DIR writes, per size, DIR/<size>px/ with the rebuilt fold-K.keras files and a copy of results.json, so the
other fold benchmarks run on them: `benchmarks/frontal_clips.py --folds DIR/160px`, `benchmarks/group_photos.py
--model DIR/160px/fold-1.keras ...`. Speed: `benchmarks/live_fps.py --model` on an export at that size.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from quality import fmt, samples_of  # benchmarks/quality.py (puts this checkout's package on sys.path)

from facetracker.errors import FacetrackerError  # noqa: E402
from facetracker.export import check_image_size  # noqa: E402


def rebuilt_folds(results_dir: Path, folds: dict, size: int, base: Path) -> dict[str, Path]:
    """{fold: path of its model rebuilt at `size`}, written to base/<size>px/ beside a copy of results.json."""
    from facetracker.model import load_model, rebuilt

    out = base / f"{size}px"
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(results_dir / "results.json", out / "results.json")
    paths = {}
    for k, fold in folds.items():
        paths[k] = out / fold["model"]
        rebuilt(load_model(results_dir / fold["model"]), size).save(paths[k])
    return paths


def score_sets(model_path: Path, held_out: list[str], fitted: bool = False) -> dict[str, tuple]:
    """{set: (AP@0.5, mean IoU)}; fitted: the model's input fitted to each set's most common frame size."""
    from collections import Counter

    from facetracker.evaluate import evaluate_samples
    from facetracker.inference import Detector
    from facetracker.model import fitted as fitted_to, load_model

    detector = Detector.load(model_path)
    scores = {}
    for name in held_out:
        samples = samples_of(name)
        if fitted:
            frame = Counter(sample.size for sample in samples).most_common(1)[0][0]
            detector = Detector.from_model(fitted_to(load_model(model_path), *frame), str(model_path))
        report = evaluate_samples(detector, samples)
        scores[name] = (report["ap50"], report["mean_iou"])
        print(f"  {model_path.parent.name} {name}: AP@0.5 {fmt(report['ap50'])}, mean IoU {fmt(report['mean_iou'])}",
              flush=True)
    return scores


def table(rows: dict[str, dict], sizes: list, command: str) -> str:
    lines = [f"`{command}`", "",
             "| held-out set | " + " | ".join(f"{s} px: AP@0.5 / IoU" if isinstance(s, int) else f"{s}: AP@0.5 / IoU"
                                             for s in sizes) + " |",
             "|---|" + "---:|" * len(sizes)]
    for name in sorted(rows):
        lines.append(f"| {name} | " + " | ".join(f"{fmt(rows[name][s][0])} / {fmt(rows[name][s][1])}"
                                               for s in sizes) + " |")
    means = []
    for s in sizes:
        ap = [rows[n][s][0] for n in rows if rows[n][s][0] is not None]
        iou = [rows[n][s][1] for n in rows if rows[n][s][1] is not None]
        at_95 = sum(a >= 0.95 for a in ap)
        means.append(f"**{fmt(statistics.mean(ap))} / {fmt(statistics.mean(iou))}** ({at_95} of {len(ap)} sets "
                     f">= 0.95)")
    lines.append(f"| mean of {len(rows)} sets | " + " | ".join(means) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True, help="a benchmarks/quality.py results folder")
    parser.add_argument("--sizes", type=int, nargs="+", default=[192, 160, 128])
    parser.add_argument("--save", type=Path, help="keep the rebuilt fold models in DIR/<size>px/")
    parser.add_argument("--fitted", action="store_true", help="also each fold model fitted to each set's frames")
    args = parser.parse_args()
    if not (args.results / "results.json").is_file():
        sys.exit(f"error: no results.json in {args.results}: pass the --results folder of a benchmarks/quality.py run")
    try:
        for size in args.sizes:
            check_image_size(size)
    except FacetrackerError as error:
        sys.exit(f"error: {error}")
    folds = json.loads((args.results / "results.json").read_text())["folds"]
    rows: dict[str, dict[int, tuple]] = {}
    with tempfile.TemporaryDirectory(prefix="facetracker-input-size-") as tmp:
        for size in args.sizes:
            for k, path in rebuilt_folds(args.results, folds, size, args.save or Path(tmp)).items():
                for name, figures in score_sets(path, folds[k]["held_out"]).items():
                    rows.setdefault(name, {})[size] = figures
    columns = list(args.sizes)
    if args.fitted:
        columns.append("fitted")
        for k, fold in folds.items():
            for name, figures in score_sets(args.results / fold["model"], fold["held_out"], fitted=True).items():
                rows.setdefault(name, {})["fitted"] = figures
    command = "python benchmarks/input_size.py " + " ".join(sys.argv[1:])
    print(table(rows, columns, command))


if __name__ == "__main__":
    main()
