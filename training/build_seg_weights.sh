#!/usr/bin/env bash
# Rebuild the shipped segmentation model (Resources/Models/breast_seg.*) and its external evaluation.
#
# Training cohort: phantom seed 1 (n = 200); evaluation: the external site E of phantom seed 2,
# which training never sees. ~6-12 min on 2 shared cores.
#
# Usage: training/build_seg_weights.sh            (WORK=/tmp/seg-build, PY=.venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORK=${WORK:-/tmp/seg-build}
EVAL_OUT=${EVAL_OUT:-docs/segmentation-evaluation}

[ -f "$WORK/train/manifest.csv" ] || "$PY" -m responseai.cli synth breast --n 200 --seed 1 --out "$WORK/train"
[ -f "$WORK/test/manifest.csv" ]  || "$PY" -m responseai.cli synth breast --n 200 --seed 2 --out "$WORK/test"

"$PY" -m training.train breast segmentation --manifest "$WORK/train/manifest.csv" --out "$WORK/run" \
    --epochs 12 --steps 25 --batch-size 4 --patch 32 64 64 --seed 0 --threads 1
mkdir -p Resources/Models
cp "$WORK/run/breast_seg.safetensors" "$WORK/run/breast_seg.json" Resources/Models/
"$PY" -m responseai.cli evaluate breast segmentation --manifest "$WORK/test/manifest.csv" \
    --weights Resources/Models/breast_seg.safetensors --split external --threads 1 --out "$EVAL_OUT"
