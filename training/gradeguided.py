"""Train the grade-guided fusion model (seed 003) from a cohort manifest or the in-memory phantom.

    python -m training.train gradeguided (--manifest COHORT/manifest.csv | --phantom N SEED) --out DIR \
        [--epochs N] [--ablation grade_guided|deep_fusion|early_fusion|imaging_only] [--permute-grade] \
        [--freeze-grade-epoch K] [--select-on loss|response_auc] [--modality-dropout P]

Everything fitted on data — CT/PET tumour statistics, the clinical encoder, the variable
graph, SMOTE — uses the ``train`` split only; the response threshold is chosen (Youden) on
``val`` only, so ``test`` and ``external`` stay untouched for evaluation. The model kept is the
epoch with the lowest validation loss, or with ``--select-on response_auc`` the highest
validation response AUC (the total loss is dominated by the grading term).

Schedule (seed 003): after ``--freeze-grade-epoch`` epochs the grading head is frozen (it
converges first) and the encoders + response / subtype branch are fine-tuned at
``--finetune-lr-factor`` × the learning rate; the grade loss still flows into the encoders so
they do not forget grade. With a freeze, only fine-tuning epochs are candidates for the kept
model: selecting on a noisy validation AUC over all epochs picked epoch 2 in a first run, a
model that had not yet learned grade (validation grade accuracy 0.73 instead of ≈ 0.9).

``--modality-dropout p`` zeroes each imaging channel of a training case with probability p
(never all of them), so the model can run when a CT phase, an MRI sequence or the PET is
missing: a zero channel after tumour z-scoring says "no evidence", and the card records
(``inputs.missing_modalities``) that the model was trained for it.

Output: ``DIR/gradeguided.safetensors`` and its JSON model card (preprocessing statistics,
encoder, adjacency, classes, threshold, validation metrics, per-epoch history), written
through :func:`responseai.weights.save_model`.

``--permute-grade`` is the permutation test: the grade *fed to the fusion* is shuffled across
training cases (the grading head still learns the true grade); if the guidance carries
information, response performance must drop.
"""

from __future__ import annotations

import argparse
import copy
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, cohen_kappa_score, roc_auc_score

from responseai.gradeguided.preprocess import (
    PreparedInputs, RoiSpec, Sample, clinical_adjacency, fit_clinical_encoder, fit_roi_spec, prepare_inputs,
    samples_from_manifest, smote_oversample,
)
from responseai.metrics import auc_or_nan, youden_threshold
from responseai.gradeguided.model import (
    TASK, ABLATIONS, GradeGuidedNet, grade_guided_loss, order_subtypes, predict_arrays,
)
from responseai.gradeguided.constants import GRADES, MANIFEST_SCHEMA, MODALITIES, SUBTYPES
from responseai.manifest import prepare_manifest
from responseai.gradeguided.evaluation import development_samples
from responseai.weights import save_model
from training.engine import add_config_arguments, config_from_args, seed_everything

log = logging.getLogger(__name__)

WEIGHTS_NAME = "gradeguided.safetensors"


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (Adam with weight decay, LR decay on plateau of validation loss)."""

    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    ablation: str = field(default="grade_guided", metadata={"choices": list(ABLATIONS)})
    permute_grade: bool = False
    smote: bool = True
    roi_size: int = 32
    roi_spacing_mm: float = 1.5
    select_on: str = field(default="loss", metadata={
        "choices": ["loss", "response_auc"], "help": "epoch kept: lowest val loss, or best val response AUC"})
    freeze_grade_epoch: int = field(default=0, metadata={"help": "freeze the grading head after N epochs (0: never)"})
    finetune_lr_factor: float = 0.3
    modality_dropout: float = 0.0


@dataclass
class TrainingSet:
    """Rows the optimiser sees: real training cases plus SMOTE records paired with a real ROI."""

    image_index: np.ndarray
    clinical: np.ndarray
    grade: np.ndarray
    response: np.ndarray
    fusion_grade: np.ndarray  # what the fusion is told (shuffled under the permutation test)


@dataclass
class TrainResult:
    """The trained network, its card and the preprocessed inputs of every sample."""

    model: GradeGuidedNet
    card: dict
    inputs: PreparedInputs


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_training_set(inputs: PreparedInputs, samples: list[Sample], config: TrainConfig) -> TrainingSet:
    """Training rows, optional stratified SMOTE, and the (possibly permuted) grade for the fusion."""
    train = np.array([i for i, s in enumerate(samples) if s.split == "train"])
    grade = inputs.grade[train]
    response = np.array([samples[i].response for i in train], int)
    image_index, clinical = train, inputs.clinical[train]
    if config.smote:
        extra_clinical, pair, extra_grade, extra_response = smote_oversample(clinical, grade, response, config.seed)
        image_index = np.concatenate([train, train[pair]])
        clinical = np.concatenate([clinical, extra_clinical])
        grade, response = np.concatenate([grade, extra_grade]), np.concatenate([response, extra_response])
    fusion_grade = grade.copy()
    if config.permute_grade:
        fusion_grade = np.random.default_rng([config.seed, 7]).permutation(fusion_grade)
    return TrainingSet(image_index, clinical.astype(np.float32), grade, response, fusion_grade)


def _augment(batch: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Random flips: the phantom's (and a tumour's) label does not depend on orientation."""
    dims = [d for d in (2, 3, 4) if rng.random() < 0.5]
    return torch.flip(batch, dims) if dims else batch


def drop_modalities(batch: torch.Tensor, p: float, rng: np.random.Generator) -> torch.Tensor:
    """Zero each channel of each case with probability ``p``, keeping at least one channel per case."""
    if p <= 0:
        return batch
    keep = rng.random(batch.shape[:2]) >= p
    empty = ~keep.any(1)
    keep[empty, rng.integers(0, batch.shape[1], int(empty.sum()))] = True
    return batch * torch.as_tensor(keep, dtype=batch.dtype)[:, :, None, None, None]


def _validate(model: GradeGuidedNet, inputs: PreparedInputs, val: np.ndarray, response: np.ndarray,
              device: torch.device) -> tuple[float, float]:
    """Validation total loss and response AUC, the biopsy grade given (the model's intended use)."""
    model.eval()
    with torch.no_grad():
        grade = torch.as_tensor(inputs.grade[val], device=device)
        out = model(torch.as_tensor(inputs.image[val], device=device), torch.as_tensor(inputs.clinical[val], device=device), grade)
        loss, _ = grade_guided_loss(out, grade, torch.as_tensor(response, device=device))
        prob = torch.sigmoid(out["response_logit"]).cpu().numpy()
    return float(loss), auc_or_nan(response, prob)


def _freeze_grade_head(model: GradeGuidedNet, config: TrainConfig) -> torch.optim.Optimizer:
    """Freeze the grading head; a fresh Adam over the rest at the fine-tuning learning rate."""
    for parameter in model.grade_head.parameters():
        parameter.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    log.info("grading head frozen; fine-tuning at lr %.2g", config.lr * config.finetune_lr_factor)
    return torch.optim.Adam(trainable, lr=config.lr * config.finetune_lr_factor, weight_decay=config.weight_decay)


def _score(val_loss: float, val_auc: float, select_on: str) -> float:
    """Higher is better; a NaN AUC (one class in val) falls back to the loss."""
    if select_on == "response_auc" and np.isfinite(val_auc):
        return val_auc
    return -val_loss


def train_network(model: GradeGuidedNet, inputs: PreparedInputs, rows: TrainingSet, val: np.ndarray,
                  val_response: np.ndarray, config: TrainConfig) -> tuple[GradeGuidedNet, list[dict]]:
    """Mini-batch Adam (+ optional freeze-then-fine-tune); keeps the best validation epoch."""
    device = _device()
    model.to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=0.5, patience=4)
    rng = np.random.default_rng([config.seed, 1])
    best, best_state, history = -np.inf, copy.deepcopy(model.state_dict()), []
    for epoch in range(config.epochs):
        if config.freeze_grade_epoch and epoch == config.freeze_grade_epoch:
            optimiser, scheduler = _freeze_grade_head(model, config), None
        model.train()
        order = rng.permutation(len(rows.image_index))
        losses = []
        for start in range(0, len(order), config.batch_size):
            batch = order[start:start + config.batch_size]
            if len(batch) < 2:  # BatchNorm needs two cases
                continue
            image = _augment(torch.as_tensor(inputs.image[rows.image_index[batch]]), rng)
            image = drop_modalities(image, config.modality_dropout, rng).to(device)
            out = model(image, torch.as_tensor(rows.clinical[batch], device=device),
                        torch.as_tensor(rows.fusion_grade[batch], device=device))
            loss, _ = grade_guided_loss(out, torch.as_tensor(rows.grade[batch], device=device),
                                        torch.as_tensor(rows.response[batch], device=device))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        val_loss, val_auc = _validate(model, inputs, val, val_response, device)
        if scheduler is not None:
            scheduler.step(val_loss)
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_loss": val_loss,
                        "val_response_auc": None if np.isnan(val_auc) else val_auc})
        log.info("epoch %d/%d train %.3f val %.3f val AUC %.3f", epoch + 1, config.epochs,
                 history[-1]["train_loss"], val_loss, val_auc)
        score = _score(val_loss, val_auc, config.select_on)
        if epoch >= config.freeze_grade_epoch and score > best:  # with a freeze: fine-tuning epochs only
            best, best_state = score, copy.deepcopy(model.state_dict())
            history[-1]["kept"] = True
    model.load_state_dict(best_state)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return model.eval(), history


def subtype_names(n: int) -> list[str]:
    """Neutral names S1…Sn: the prototypes are learnt clusters, not validated response phenotypes
    (on the phantom they reproduce the grade), so they are not called sensitive / resistant."""
    return [f"S{k + 1}" for k in range(n)]


def name_subtypes(model: GradeGuidedNet, inputs: PreparedInputs, train: np.ndarray, response: np.ndarray) -> list:
    """Order the prototypes by the responder rate of the training cases assigned to them.

    The card names them S1, S2, … in this order, so S1 is the subtype whose training cases
    responded most often; without this the numbering would be arbitrary. Returns the rates in
    the new order (``None`` for an empty prototype, which goes last).
    """
    assigned = predict_arrays(model, inputs.image[train], inputs.clinical[train], inputs.grade[train])["subtype_probs"].argmax(1)
    n = model.prototypes.shape[0]
    rates = [float(response[assigned == m].mean()) if np.any(assigned == m) else None for m in range(n)]
    order = sorted(range(n), key=lambda m: -1.0 if rates[m] is None else rates[m], reverse=True)
    order_subtypes(model, order)
    return [rates[m] for m in order]


def validation_metrics(model: GradeGuidedNet, inputs: PreparedInputs, val: np.ndarray,
                       response: np.ndarray) -> tuple[float, dict]:
    """Youden threshold and grade / response metrics on validation (biopsy grade given)."""
    pred = predict_arrays(model, inputs.image[val], inputs.clinical[val], inputs.grade[val])
    grade_pred = pred["grade_probs"].argmax(1)
    both = len(np.unique(response)) == 2
    threshold = youden_threshold(response, pred["response_prob"]) if both else 0.5
    metrics = {"val_grade_accuracy": float(accuracy_score(inputs.grade[val], grade_pred)),
               "val_grade_kappa": float(cohen_kappa_score(inputs.grade[val], grade_pred)),
               "val_response_auc": float(roc_auc_score(response, pred["response_prob"])) if both else None}
    return threshold, metrics


def train_gradeguided(samples: list[Sample], out_dir: str | Path, config: TrainConfig = TrainConfig()) -> TrainResult:
    """Fit preprocessing on ``train``, train, pick the threshold on ``val``, save weights + card."""
    if config.ablation not in ABLATIONS:
        raise ValueError(f"unknown ablation '{config.ablation}'; choose one of {', '.join(ABLATIONS)}")
    seed_everything(config.seed)
    spec, resampled = fit_roi_spec(samples, RoiSpec(config.roi_spacing_mm, config.roi_size))
    encoder = fit_clinical_encoder([s.clinical for s in samples if s.split == "train"])
    inputs = prepare_inputs(samples, spec, encoder, resampled)
    train_mask = np.array([s.split == "train" for s in samples])
    adjacency = clinical_adjacency(inputs.clinical[train_mask])
    rows = build_training_set(inputs, samples, config)
    val = np.array([i for i, s in enumerate(samples) if s.split == "val"])
    val_response = np.array([samples[i].response for i in val], int)
    model = GradeGuidedNet({"ablation": config.ablation, "in_channels": len(spec.modalities),
                            "n_clinical": inputs.clinical.shape[1], "n_grades": len(GRADES), "n_subtypes": len(SUBTYPES)})
    model.set_adjacency(adjacency)
    model, history = train_network(model, inputs, rows, val, val_response, config)
    train = np.array([i for i, s in enumerate(samples) if s.split == "train"])
    rates = name_subtypes(model.cpu(), inputs, train, np.array([samples[i].response for i in train], int))
    threshold, metrics = validation_metrics(model, inputs, val, val_response)
    metrics["train_subtype_responder_rate"] = rates
    card = _card(model, spec, encoder, adjacency, threshold, metrics, history, samples, config)
    saved = save_model(model, card, Path(out_dir) / WEIGHTS_NAME)
    log.info("saved %s (%s): %s", config.ablation, out_dir, metrics)
    return TrainResult(model, saved, inputs)


def _card(model, spec, encoder, adjacency, threshold, metrics, history, samples, config) -> dict:
    splits = {name: sum(s.split == name for s in samples) for name in ("train", "val", "test", "external")}
    return {
        "name": f"gradeguided-{config.ablation}" + ("-permuted" if config.permute_grade else ""),
        "version": "0.1.0",
        "task": TASK,
        "architecture": {"name": "GradeGuidedNet", "config": model.config, "sources": model.source_names},
        "inputs": {"modalities": list(spec.modalities), "clinical_features": encoder.feature_names,
                   "missing_modalities": "zero_channel" if config.modality_dropout > 0 else "not_supported",
                   "clinical_variables": [v.name for v in encoder.variables],
                   "grade": "biopsy grade if known (else the predicted grade distribution is used)"},
        "classes": {"grade": list(GRADES), "response": ["non-responder", "responder"], "subtype": subtype_names(len(SUBTYPES))},
        "threshold": threshold,
        "preprocessing": {"roi": spec.to_dict(), "clinical_encoder": encoder.to_dict(),
                          "adjacency": adjacency, "adjacency_threshold": 0.2,
                          "smote": "grade x response strata of the training clinical vectors, ROI of nearest real case"},
        "training_data": {"splits": splits, "config": asdict(config), "epochs_run": len(history),
                          "best_val_loss": min(h["val_loss"] for h in history),
                          "kept_epoch": max((h["epoch"] for h in history if h.get("kept")), default=len(history)),
                          "history": history},
        "metrics": metrics,
    }


@dataclass(frozen=True)
class RunConfig:
    """Where a grade-guided run reads its cases and writes its model (the optimisation is :class:`TrainConfig`)."""

    out: Path = field(metadata={"help": "output folder for weights + card"})
    manifest: Path | None = field(default=None, metadata={"help": "cohort manifest.csv (train / val splits)"})
    columns: str | None = field(default=None, metadata={
        "help": "map manifest names to the CSV's: response=RESP,grade=WHO_GRADE or a JSON file"})
    phantom: tuple[int, ...] | None = field(default=None, metadata={
        "nargs": 2, "metavar": ("N", "SEED"),
        "help": "train on the in-memory phantom cohort (train/val splits) instead of a manifest"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: torch default)"})


def main(argv: list[str] | None = None) -> int:
    """``python -m training.train gradeguided``: options are the fields of RunConfig and TrainConfig."""
    parser = argparse.ArgumentParser(prog="python -m training.train gradeguided", description=__doc__.split("\n\n")[0])
    args = add_config_arguments(add_config_arguments(parser, RunConfig), TrainConfig).parse_args(argv)
    run, config = config_from_args(RunConfig, args), config_from_args(TrainConfig, args)
    if run.threads:
        torch.set_num_threads(run.threads)
    if run.phantom:
        samples = development_samples(*run.phantom)
    elif run.manifest:
        manifest = prepare_manifest(run.manifest, MANIFEST_SCHEMA, run.columns, run.out,
                                    require=("split", *MODALITIES, "grade", "response"), need_splits=("train", "val"))
        samples = samples_from_manifest(manifest)
    else:
        parser.error("give --manifest or --phantom N SEED")
    train_gradeguided(samples, run.out, config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
