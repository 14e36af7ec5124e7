#!/usr/bin/env bash
# Pre-labels after a short fine-tune, the README's "label a few, let the model draw the rest": every image of a
# shared set goes into a user folder, with the labels of only the first N (name order); `split --labelled-only`,
# `augment`, `train --epochs 40 --weights MODEL` and `label --prelabel --no-open --model models/facetracker.keras`
# run with their defaults, and benchmarks/prelabel_quality.py scores pre-labels of the set's other images, by the
# fine-tuned model and by MODEL, against their human labels (kept aside in WORK/rest).
#
#   bash benchmarks/finetune_prelabel.sh SET [N=20] [MODEL=benchmarks/results/quality/2-folds-30-epochs-qfl/fold-1.keras]
#
# MODEL should not have seen SET (a fold model of benchmarks/quality.py).
# Work folder: benchmarks/results/finetune-prelabel/SET.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
SET=${1:?usage: bash benchmarks/finetune_prelabel.sh SET [N] [MODEL]}
N=${2:-20}
MODEL=$(realpath "${3:-benchmarks/results/quality/2-folds-30-epochs-qfl/fold-1.keras}")
PY=$REPO/.venv/bin/python
SRC=${FACETRACKER_DATASETS:-$REPO/../shared/datasets}/$SET
WORK=$REPO/benchmarks/results/finetune-prelabel/$SET
[ -d "$SRC/images" ] || { echo "error: no images in $SRC" >&2; exit 2; }
[ -f "$MODEL" ] || { echo "error: model not found: $MODEL — run benchmarks/quality.py first or pass one" >&2; exit 2; }
rm -rf "$WORK"
mkdir -p "$WORK/user/data/images" "$WORK/user/data/labels" "$WORK/rest/images" "$WORK/rest/labels"
i=0
while IFS= read -r image; do
    stem="${image%.*}"
    part=$([ "$i" -lt "$N" ] && echo user/data || echo rest)
    cp "$SRC/images/$image" "$WORK/$part/images/"
    if [ -f "$SRC/labels/$stem.json" ]; then cp "$SRC/labels/$stem.json" "$WORK/$part/labels/"; fi
    # The images are all in the user's folder; only the first N have labels there.
    if [ "$part" = rest ]; then cp "$SRC/images/$image" "$WORK/user/data/images/"; fi
    i=$((i + 1))
done < <(ls "$SRC/images" | sort)
started=$(date +%s)
(cd "$WORK/user" && "$PY" -m facetracker split --labelled-only && "$PY" -m facetracker augment \
    && "$PY" -m facetracker train --epochs 40 --weights "$MODEL" \
    && "$PY" -m facetracker label --prelabel --no-open --model models/facetracker.keras) > "$WORK/commands.log" 2>&1
echo "$SET: split + augment + train + prelabel took $(( ($(date +%s) - started) / 60 )) min (log: $WORK/commands.log)"
grep -i "pre-label" "$WORK/commands.log" | tail -2
echo "fine-tuned on the first $N images:"
"$PY" benchmarks/prelabel_quality.py --model "$WORK/user/models/facetracker.keras" --sets "$WORK/rest" | grep "^|"
echo "the starting model untouched:"
"$PY" benchmarks/prelabel_quality.py --model "$MODEL" --sets "$WORK/rest" | grep "^|"
