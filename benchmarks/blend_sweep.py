"""How far from the bundled model should a fine-tuned model go? One person's fine-tuned model re-blended at several
shares, each scored on the person's validation and test frames and on every other shared set.

    .venv/bin/python benchmarks/journey.py --people webcam-o --models finetuned --keep --no-docs   # prints the folder
    .venv/bin/python benchmarks/blend_sweep.py /tmp/journey-webcam-o-XXXX webcam-o [--blends 0.3,0.45,0.6,0.8,1.0]

The folder is a kept journey (data/, aug_data/, models/facetracker.keras). Its model holds the best epoch blended with
the bundled model at the share its run recorded (models/facetracker.ckpt/state.json), so the fine-tuned weights are
recovered from it and the bundled ones. Per share, one JSON line: the validation loss on the augmented validation
images (what early stopping watches), AP@0.5 and mean IoU on the raw validation and test frames, and the mean
AP@0.5 over the other shared sets (with webcam-g and -r, the tight-box sets that forget first).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from journey import evaluate_others, evaluate_own, shared_sets  # noqa: E402  (benchmarks/journey.py, beside this)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="a journey folder kept with --keep")
    parser.add_argument("person", help="the shared set it was made from (left out of the other people)")
    parser.add_argument("--blends", default="0.3,0.45,0.6,0.8,1.0")
    args = parser.parse_args()
    tuned_path = args.work / "models" / "facetracker.keras"
    state_path = args.work / "models" / "facetracker.ckpt" / "state.json"
    if not tuned_path.is_file() or not state_path.is_file():
        sys.exit(f"error: no fine-tuned model and run state in {args.work / 'models'}: pass a folder kept by "
                 "journey.py --keep")
    import keras

    from facetracker import config
    from facetracker.data import make_dataset, read_split
    from facetracker.model import load_model
    from facetracker.train import save_inference_model, spread_subset, unblend_weights

    state = json.loads(state_path.read_text())
    start = load_model(state["start_path"]).get_weights()
    model = load_model(tuned_path)
    tuned = unblend_weights(start, model.get_weights(), state["blend"])
    val = make_dataset(spread_subset(read_split(args.work / "aug_data", "val"), config.VAL_IMAGES), model.image_size,
                       16, training=False)
    others = [name for name in shared_sets() if name != args.person]
    folder = Path(tempfile.mkdtemp(prefix="blend-sweep-"))
    for share in (float(b) for b in args.blends.split(",")):
        model.set_weights(tuned)
        path = folder / f"blend-{share:g}.keras"
        save_inference_model(model, path, start, share)
        blended = load_model(path)
        blended.compile(keras.optimizers.Adam())
        val_loss = blended.evaluate(val, verbose=0, return_dict=True)["loss"]
        own_val, own_test = (evaluate_own(path, args.work / "data" / part) for part in ("val", "test"))
        per_set = evaluate_others(path, others)
        print(json.dumps({
            "blend": share, "val_loss": round(val_loss, 4),
            "val_ap50": round(own_val["ap50"], 3), "val_iou": round(own_val["mean_iou"], 3),
            "test_ap50": round(own_test["ap50"], 3), "test_iou": round(own_test["mean_iou"], 3),
            "others_ap50": round(statistics.fmean(r["ap50"] for r in per_set.values()), 4),
            **{f"{name}_ap50": round(per_set[name]["ap50"], 3) for name in ("webcam-g", "webcam-r") if name in per_set},
        }), flush=True)


if __name__ == "__main__":
    main()
