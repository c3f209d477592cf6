"""Train the multimodal recurrence-risk network (seed 001) on the phantom cohort and write weights + card.

    python -m training.train recurrence --phantom 500 0 --out DIR [--epochs 40] [--no-compensation]

The phantom's patients are split 80 / 20 (train / validation, patient level, fixed seed).
Everything fitted on data — the clinical encoder, the network, the Breslow baseline hazard
and the risk-group cut points (tertiles of the training log-risk) — uses the training
patients only; validation gives the card's Harrell C and td-AUC. The card stores what a
single prediction needs without the training data: the block specs, the encoder, the text
model and its sha256, the baseline hazard H₀(t) (years) and the tertiles.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from responseai.recurrence.constants import HORIZONS_YEARS, RISK_GROUPS, TASK
from responseai.recurrence.evaluation import survival_metrics
from responseai.recurrence.fit import CohortArrays, FitConfig, fit_network, network_config, predict_risk
from responseai.recurrence.phantom import N_TILES, RISK_RULE, PhantomCase, generate_cohort
from responseai.recurrence.preprocess import block_specs, fit_clinical_encoder, prepare_arrays
from responseai.recurrence.survival import breslow_baseline
from responseai.recurrence.text import EMBEDDING_DIM, TEXT_MODEL, TEXT_MODEL_SHA256, embed_reports
from responseai.weights import save_model
from training.engine import add_config_arguments, config_from_args, seed_everything

log = logging.getLogger(__name__)

WEIGHTS_NAME = "recurrence.safetensors"


def split(n: int, seed: int, val_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng([seed, 3]).permutation(n)
    cut = int(round(n * (1 - val_fraction)))
    return np.sort(order[:cut]), np.sort(order[cut:])


def phantom_arrays(cases: list[PhantomCase], encoder) -> CohortArrays:
    return prepare_arrays(cases, encoder, N_TILES, embed_reports, np.array([c.time for c in cases]),
                          np.array([c.event for c in cases]), [c.case_id for c in cases])


def train_recurrence(cases: list[PhantomCase], out_dir: str | Path, config: FitConfig = FitConfig()) -> dict:
    """Fit on the training split, measure on validation, save weights + card; returns the card."""
    seed_everything(config.seed)
    train_rows, val_rows = split(len(cases), config.seed)
    encoder = fit_clinical_encoder([cases[i].clinical for i in train_rows])
    data = phantom_arrays(cases, encoder)
    train, val = data.subset(train_rows), data.subset(val_rows)
    specs = block_specs(encoder, EMBEDDING_DIM)
    model, history = fit_network(train, specs, config)
    train_risk = predict_risk(model, train)[0]
    times, hazard = breslow_baseline(train_risk, train.time, train.event)
    cuts = np.quantile(train_risk, [1 / 3, 2 / 3])
    metrics = survival_metrics(train, val, train_risk, predict_risk(model, val)[0], times, hazard, HORIZONS_YEARS)
    card = {
        "name": "recurrence-phantom" + ("" if config.compensation else "-nocomp"),
        "version": "0.1.0",
        "task": TASK,
        "architecture": {"name": "RecurrenceNet", "config": network_config(specs, config)},
        "inputs": {"modalities": list(specs), "n_tiles": N_TILES, "clinical_variables": [v.name for v in encoder.variables],
                   "missing_modalities": "compensated" if config.compensation else "masked",
                   "text_model": TEXT_MODEL, "text_model_sha256": TEXT_MODEL_SHA256, "time_unit": "years"},
        "classes": {"risk_groups": list(RISK_GROUPS)},
        "threshold": {"risk_group_cut_points": cuts.tolist(), "rule": "tertiles of the training log-risk"},
        "preprocessing": {"clinical_encoder": encoder.to_dict(), "tiles": "RGB [0,1], (x-0.5)/0.25",
                          "ultrasound": "per-image z-score, 48x48", "report": "all-MiniLM-L6-v2, L2-normalised"},
        "survival": {"baseline_times": times.tolist(), "baseline_cumulative_hazard": hazard.tolist(),
                     "estimator": "Breslow on the training patients", "horizons": list(HORIZONS_YEARS)},
        "training_data": {"cohort": f"recurrence phantom ({RISK_RULE})", "n_train": len(train_rows),
                          "n_val": len(val_rows), "config": asdict(config), "history": history},
        "metrics": {"val": metrics},
    }
    saved = save_model(model, card, Path(out_dir) / WEIGHTS_NAME)
    log.info("saved %s: validation %s", Path(out_dir) / WEIGHTS_NAME,
             {k: v for k, v in metrics.items() if not isinstance(v, dict)})
    return saved


@dataclass(frozen=True)
class RunConfig:
    """Where a recurrence run reads its patients and writes its model (the optimisation is :class:`FitConfig`)."""

    out: Path = field(metadata={"help": "output folder for weights + card"})
    phantom: tuple[int, ...] = field(default=(500, 0), metadata={
        "nargs": 2, "metavar": ("N", "SEED"), "help": "phantom cohort size and seed (in memory)"})
    threads: int = field(default=1, metadata={"help": "torch CPU threads"})


def main(argv: list[str] | None = None) -> int:
    """``python -m training.train recurrence``: options are the fields of RunConfig and FitConfig."""
    parser = argparse.ArgumentParser(prog="python -m training.train recurrence", description=__doc__.split("\n\n")[0])
    args = add_config_arguments(add_config_arguments(parser, RunConfig), FitConfig).parse_args(argv)
    run, config = config_from_args(RunConfig, args), config_from_args(FitConfig, args)
    torch.set_num_threads(run.threads)
    train_recurrence(generate_cohort(*run.phantom), run.out, config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
