"""Fold models moved to a smaller input by a short fine-tune at that size: does it win back what rebuilding alone
loses (benchmarks/input_size.py)?

    .venv/bin/python benchmarks/finetune_size.py --results benchmarks/results/quality/2-folds-30-epochs-blazeface \\
        --size 160 --epochs 6 --out DIR

Each fold model is rebuilt at --size (facetracker.model.rebuilt) and trained on its own fold's training sets with
the recipe's data (facetracker.recipe: the same views, mosaics and background swaps) for --epochs passes, at a peak
learning rate of --lr, then saved as DIR/fold-K.keras beside a copy of results.json, so the fold benchmarks run on
it: `benchmarks/input_size.py --results DIR --sizes 160`, `benchmarks/frontal_clips.py --folds DIR`,
`benchmarks/group_photos.py --model DIR/fold-1.keras ...`, `benchmarks/tracking_quality.py --model ...`.

`--backbone blazeface-lite --size 192` makes each fold model lite instead (the recipe's second stage: a cheap stem
taught the old one's features, then --epochs of the recipe; docs/quality.md, "A cheaper stem").
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from quality import DATASETS  # benchmarks/quality.py (puts this checkout's package on sys.path)

from facetracker.errors import FacetrackerError  # noqa: E402
from facetracker.export import check_image_size  # noqa: E402


def finetune_fold(model_path: Path, train_sets: list[str], size: int, epochs: int, lr: float, out: Path,
                  backbone: str) -> None:
    from facetracker.recipe import RecipeOptions, train_on_sets

    train_on_sets([DATASETS / name for name in train_sets],
                  RecipeOptions(out=out, epochs=epochs, image_size=size, lr=lr, start=model_path, backbone=backbone,
                                log=out.with_suffix(".log.jsonl")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True, help="a benchmarks/quality.py results folder")
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=2e-4, help="peak learning rate (the recipe's is 1e-3)")
    parser.add_argument("--backbone", choices=("blazeface", "blazeface-lite"), default="blazeface",
                        help="blazeface-lite: make the fold models lite (a new stem taught the old one's features, "
                             "facetracker.recipe.distill_stem) before the fine-tune")
    parser.add_argument("--fold", action="append", help="only this fold (repeatable)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if not (args.results / "results.json").is_file():
        sys.exit(f"error: no results.json in {args.results}: pass the --results folder of a benchmarks/quality.py run")
    try:
        check_image_size(args.size)
    except FacetrackerError as error:
        sys.exit(f"error: {error}")
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copy(args.results / "results.json", args.out / "results.json")
    folds = json.loads((args.results / "results.json").read_text())["folds"]
    for k, fold in sorted(folds.items()):
        if args.fold and k not in args.fold:
            continue
        started = time.monotonic()
        finetune_fold(args.results / fold["model"], fold["trained_on"], args.size, args.epochs, args.lr,
                      args.out / fold["model"], args.backbone)
        print(f"fold {k}: {args.out / fold['model']} in {(time.monotonic() - started) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
