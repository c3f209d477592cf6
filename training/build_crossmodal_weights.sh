#!/usr/bin/env bash
# Rebuild the shipped cross-modal weights (Resources/Models/crossmodal.safetensors + .json).
# Small CPU model, 480 phantom patients over four sites, 30 epochs: a few minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(mktemp -d)
PYTHONUTF8=1 .venv/bin/python -m training.train crossmodal --out "$OUT" --n 480 --seed 0 --epochs 30
cp "$OUT/crossmodal.safetensors" "$OUT/crossmodal.json" Resources/Models/
rm -rf "$OUT"
