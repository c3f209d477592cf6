"""Step 3's learning curve on development exams: is the clinical step over-fitting, and from when?

Re-runs the clinical step of a stepwise pCR run from its step-2 snapshot (same initialisation,
clinical-term fit, optimiser and seed as ``training.breast_pcr``) and logs, before the first epoch
and after each, the AUC on the training rows, on the val rows and on every development cohort
given — exams no model was trained or tuned on. This is the measurement behind keeping step 3's
best val epoch (``docs/pcr.md``); the development cohorts never reach training itself.

``--score W.safetensors …`` instead scores finished models on the same development cohorts (how
two candidate runs were compared before either test set was scored), beside the clinical-only
logistic regression fitted on the manifest's train rows; with several development cohorts also
their pooled AUC; for a model with attention, the median share of it inside the tumour per cohort.

Usage: python -m training.pcr_dev_curve --manifest TRAIN.csv --step12 RUN/stepwise/breast_pcr_step12.safetensors
       --dev DEV.csv [DEV2.csv:external …] [--radiomics] [--epochs 24]
       python -m training.pcr_dev_curve --manifest TRAIN.csv --dev … --radiomics --score RUN/stepwise/breast_pcr*.safetensors
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from responseai.breast.constants import BREAST_SCHEMA
from responseai.breast.pcr.cohort import Cohort, load_cohort, predict_logits
from responseai.breast.pcr.evaluation import attention_in_masks, clinical_reference
from responseai.breast.pcr.features import FEATURES
from responseai.breast.pcr.inference import load_pcr_model
from responseai.breast.pcr.model import make_config
from responseai.clinical import records_from_frame
from responseai.metrics import auc_or_nan
from training.breast_pcr import PcrTrainConfig, fit_clinical_term, make_optimizer, plan_steps, step_model, train_epoch
from training.engine import init_distributed

log = logging.getLogger(__name__)


def _auc(model: torch.nn.Module, cohort: Cohort, rows: np.ndarray) -> float:
    logits, _ = predict_logits(model, cohort, rows, torch.device("cpu"))
    return auc_or_nan(cohort.labels[rows], logits.ravel())


def _dev_cohort(spec: str, base: dict, train: Cohort) -> tuple[str, Cohort]:
    """``path.csv`` (all rows) or ``path.csv:split`` (one split), encoded with the training encoder."""
    path, _, split = spec.partition(":")
    splits = (split,) if split else ("train", "val", "external")
    return f"{Path(path).parent.name}{':' + split if split else ''}", load_cohort(
        Path(path), base, splits=splits, encoder=train.encoder, show_progress=False)


def _encoded_for(cohort: Cohort, encoder) -> Cohort:
    """The cohort's clinical matrix re-encoded with a model's own encoder (fitted on its training rows)."""
    if encoder is None:
        return cohort
    return dataclasses.replace(cohort, clinical=encoder.transform(records_from_frame(cohort.frame, BREAST_SCHEMA)),
                               encoder=encoder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, required=True, help="the run's training manifest")
    parser.add_argument("--step12", type=Path, help="the run's step-2 weights (learning curve)")
    parser.add_argument("--score", type=Path, nargs="+", help="finished pCR weights to score instead")
    parser.add_argument("--dev", nargs="+", required=True, help="development manifest(s), optionally :split")
    parser.add_argument("--radiomics", action="store_true")
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    config = PcrTrainConfig(manifest=args.manifest, out=Path("."), radiomics=args.radiomics)
    base = {"norm": config.norm, "clinical_linear": config.clinical_linear,
            **({"radiomics": len(FEATURES)} if args.radiomics else {})}
    train = load_cohort(args.manifest, make_config(**base, clinical=False), show_progress=False)
    devs = dict(_dev_cohort(spec, make_config(**base, clinical=False), train) for spec in args.dev)
    if args.score:
        log.info("clinical-only  %s", "  ".join(
            f"{k} {auc_or_nan(c.labels, clinical_reference(args.manifest, c).probs):.3f}" for k, c in devs.items()))
        for weights in args.score:
            loaded = load_pcr_model(weights)
            outputs = {k: predict_logits(loaded.model, _encoded_for(c, loaded.encoder), np.arange(len(c.frame)),
                                         torch.device("cpu")) for k, c in devs.items()}
            logits = {k: logit.ravel() for k, (logit, _) in outputs.items()}
            scores = {k: auc_or_nan(devs[k].labels, v) for k, v in logits.items()}
            if len(devs) > 1:  # one model's logits share a scale, so the sets can be pooled
                scores["pooled"] = auc_or_nan(np.concatenate([c.labels for c in devs.values()]),
                                              np.concatenate(list(logits.values())))
            log.info("%s  %s", weights, "  ".join(f"{k} {v:.3f}" for k, v in scores.items()))
            if loaded.model.attention is not None:
                log.info("%s  attention in the tumour, median  %s", weights, "  ".join(
                    f"{k} {np.median(attention_in_masks(att, devs[k].masks)):.3f}" for k, (_, att) in outputs.items()))
        return 0
    if args.step12 is None:
        parser.error("give --step12 (learning curve) or --score (finished models)")
    spec = plan_steps(config)[2]
    model = step_model(spec, load_file(str(args.step12)), train, config.seed, base)
    fit_clinical_term(model, train, torch.device("cpu"))
    optimizer = make_optimizer(model, spec, config.lr)
    info = init_distributed()
    for epoch in range(-1, args.epochs):
        if epoch >= 0:
            train_epoch(model, optimizer, train, spec, info, config.seed * 10_000 + epoch, config.batch_size)
        scores = {"train": _auc(model, train, train.rows("train")), "val": _auc(model, train, train.rows("val")),
                  **{name: _auc(model, c, np.arange(len(c.frame))) for name, c in devs.items()}}
        log.info("epoch %3d  %s", epoch, "  ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
