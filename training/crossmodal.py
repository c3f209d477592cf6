"""Train the cross-modal model (seeds 002 / 004) on the paired phantom cohort and write the weights.

    python -m training.train crossmodal --out DIR [--manifest COHORT/manifest.csv | --n 480] [--seed 0] \
        [--epochs 30] [--no-mixstyle] [--irm-weight 0.1] [--paper-size]

All four sites train the shipped model (the leave-one-domain-out evaluation, ``responseai
evaluate crossmodal``, is what measures generalisation to an unseen site); 20 % of the cases are
kept out for the validation metrics on the card. ``--paper-size`` builds the seed's ViT-B/16
(224 px, dim 768, depth 12, heads 12) instead of the small CPU model — the phantom is then
rendered at 224 px too; expect hours on a CPU.

Output: ``DIR/crossmodal.safetensors`` and its JSON card (architecture config, domains, classes,
validation metrics, per-epoch history) through :func:`responseai.weights.save_model`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, cohen_kappa_score

from responseai.crossmodal.constants import CLASSES, DOMAINS, GRADES, MODALITIES, TASK
from responseai.crossmodal.evaluation import macro_auc, overlap, top_class_ece
from responseai.crossmodal.fitting import CohortTensors, FitConfig, cohort_tensors, fit, predict
from responseai.crossmodal.model import CrossModalNet, ModelConfig, adapter_fraction
from responseai.crossmodal.phantom import make_cohort, read_cohort
from responseai.metrics import bootstrap
from responseai.weights import save_model
from training.engine import parse_config, seed_everything

log = logging.getLogger(__name__)

WEIGHTS_NAME = "crossmodal.safetensors"


@dataclass(frozen=True)
class TrainConfig:
    """What to train on and how (optimisation settings as in :class:`FitConfig`)."""

    out: Path = field(metadata={"help": "output folder for crossmodal.safetensors + .json"})
    manifest: Path | None = field(default=None, metadata={
        "help": "train on a cohort written by `responseai synth crossmodal` instead of the in-memory phantom"})
    n: int = field(default=480, metadata={"help": "phantom patients (spread over the four sites)"})
    seed: int = 0
    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-3
    mixstyle: bool = True
    irm_weight: float = 0.1
    modality_dropout: float = 0.15
    val_fraction: float = 0.2
    threads: int = field(default=1, metadata={"help": "torch CPU threads (1 avoids oversubscription on shared CPUs)"})
    paper_size: bool = field(default=False, metadata={"help": "the seed's ViT-B/16 at 224 px instead of the CPU model"})


def validation_metrics(model: CrossModalNet, data: CohortTensors, cohort) -> dict:
    """Card metrics on the kept-out cases (the same definitions as the evaluation)."""
    p = predict(model, data)
    graded = cohort.grade >= 0
    lesion = cohort.mask.reshape(len(cohort), -1).any(1)
    iou, dice = overlap(p["mask_prob"], data.mask[:, 0].numpy())
    ece = bootstrap(lambda y, q: {"ece": top_class_ece(y, q)}, (cohort.label, p["probs"]))["ece"]
    return {"val": {"ece": ece},  # the shape the reports' calibration note reads
            "val_macro_auc": macro_auc(cohort.label, p["probs"]),
            "val_accuracy": float(accuracy_score(cohort.label, p["probs"].argmax(1))),
            "val_ece": float(top_class_ece(cohort.label, p["probs"])),
            "val_grade_qwk": float(cohen_kappa_score(cohort.grade[graded], p["grade_probs"][graded].argmax(1),
                                                     weights="quadratic")),
            "val_lesion_iou": float(iou[lesion].mean()), "val_lesion_dice": float(dice[lesion].mean()),
            "val_cos_same_patient": float((p["emb_m"] * p["emb_p"]).sum(1).mean())}


def train(config: TrainConfig) -> dict:
    """Train one model on all four sites; returns the saved card."""
    torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    model_config = ModelConfig.paper() if config.paper_size else ModelConfig()
    cohort = (read_cohort(config.manifest) if config.manifest
              else make_cohort(config.n, config.seed, size=model_config.image_size))
    order = np.random.default_rng(config.seed).permutation(len(cohort))
    n_val = int(round(config.val_fraction * len(cohort)))
    val, tr = cohort.subset(np.sort(order[:n_val])), cohort.subset(np.sort(order[n_val:]))
    model = CrossModalNet(model_config)
    fit_config = FitConfig(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, mixstyle=config.mixstyle,
                           irm_weight=config.irm_weight, modality_dropout=config.modality_dropout, seed=config.seed)
    history = fit(model, cohort_tensors(tr, model_config.image_size), fit_config)
    metrics = validation_metrics(model, cohort_tensors(val, model_config.image_size), val)
    card = {
        "name": "crossmodal-vit-adapters", "version": "0.1.0", "task": TASK,
        "architecture": {"name": "CrossModalNet (MONAI ViT + bottleneck modality adapters)",
                         "config": model_config.to_dict(), "adapter_fraction_of_encoder": adapter_fraction(model)},
        "inputs": {"modalities": list(MODALITIES), "domains": list(DOMAINS),
                   "mammogram": "2D single channel, percentile window to [-1, 1]",
                   "pathology": "RGB H&E tile(s), Macenko-normalised (torchstain, standard reference)",
                   "missing_modalities": "zero vector + flag (trained with modality dropout)"},
        "classes": {"diagnosis": list(CLASSES), "grade": list(GRADES)},
        "threshold": None,
        "preprocessing": {"image_size": model_config.image_size},
        "training_data": {"cohort": str(config.manifest or "crossmodal phantom (responseai.crossmodal.phantom)"),
                          "n": len(cohort),
                          "seed": config.seed, "splits": {"train": len(tr), "val": len(val)}, "n_val": len(val),
                          "fit": fit_config.to_dict(), "history": history},
        "metrics": metrics,
    }
    saved = save_model(model, card, Path(config.out) / WEIGHTS_NAME)
    log.info("saved %s: %s", Path(config.out) / WEIGHTS_NAME, metrics)
    return saved


def main(argv: list[str] | None = None) -> int:
    train(parse_config(TrainConfig, argv, "python -m training.train crossmodal", __doc__.split("\n\n")[0]))
    return 0
