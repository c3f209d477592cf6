"""The training loop and batched prediction, shared by ``training/crossmodal.py`` and the evaluation.

Why in the core: the leave-one-domain-out evaluation must train one model per held-out site
(ERM and + MixStyle / IRM), and the core never imports ``training/``; the training entry point
only adds the command line, the cohort choice and writing the weights.

Modality dropout: each training case loses its mammogram or its pathology with probability
``modality_dropout`` (never both), so a patient with one modality still gets a prediction from
a model that has seen that situation. The IRM penalty is switched on after ``irm_warmup``
epochs (IRMv1 practice: penalising from the first step stops the features from forming). Its
weight is 0.1: with 1.0 the classification loss stopped falling as soon as the penalty started
(development runs on the phantom, exploratory), plausibly because the uncertainty weights had
already scaled the task losses down while the penalty, unweighted, did not.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import torch

from responseai.crossmodal.model import CrossModalNet, grade_probabilities, multitask_loss
from responseai.crossmodal.phantom import PairedCohort
from responseai.crossmodal.preprocess import mammogram_tensor, pathology_tensor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitConfig:
    """Optimisation and domain-generalisation switches (ERM = no MixStyle, IRM weight 0)."""

    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.05
    mixstyle: bool = True
    irm_weight: float = 0.1
    irm_warmup: int = 10
    modality_dropout: float = 0.15
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CohortTensors:
    """Model-ready tensors of a cohort (mammograms scaled, tiles Macenko-normalised)."""

    mammogram: torch.Tensor  # (N, 1, S, S)
    pathology: torch.Tensor  # (N, 3, S, S)
    mask: torch.Tensor  # (N, 1, S, S) bool
    label: torch.Tensor
    grade: torch.Tensor
    domain: torch.Tensor

    def __len__(self) -> int:
        return len(self.label)

    def batch(self, index: np.ndarray) -> dict:
        idx = torch.as_tensor(index)
        return {"mammogram": self.mammogram[idx], "pathology": self.pathology[idx], "mask": self.mask[idx],
                "label": self.label[idx], "grade": self.grade[idx], "domain": self.domain[idx],
                "has_m": torch.ones(len(idx), dtype=torch.bool), "has_p": torch.ones(len(idx), dtype=torch.bool)}


def cohort_tensors(cohort: PairedCohort, size: int) -> CohortTensors:
    """Preprocess every case exactly as inference does (same checks, scaling and stain normalisation)."""
    mask = torch.nn.functional.interpolate(torch.from_numpy(cohort.mask[:, None].astype(np.float32)), size=(size, size))
    return CohortTensors(
        torch.stack([mammogram_tensor(m, size) for m in cohort.mammogram]),
        torch.stack([pathology_tensor(p, size) for p in cohort.pathology]),
        mask > 0.5, torch.as_tensor(cohort.label, dtype=torch.long), torch.as_tensor(cohort.grade, dtype=torch.long),
        torch.as_tensor(cohort.domain, dtype=torch.long))


def _drop_modalities(batch: dict, p: float, rng: np.random.Generator) -> dict:
    n = len(batch["label"])
    drop = rng.random(n) < p
    which = rng.random(n) < 0.5  # True: drop the mammogram, False: drop pathology
    has_m = torch.as_tensor(~(drop & which))
    has_p = torch.as_tensor(~(drop & ~which))
    batch = dict(batch, has_m=has_m, has_p=has_p)
    batch["mammogram"] = batch["mammogram"] * has_m[:, None, None, None]
    batch["pathology"] = batch["pathology"] * has_p[:, None, None, None]
    return batch


def fit(model: CrossModalNet, data: CohortTensors, config: FitConfig) -> list[dict]:
    """Train in place; returns the per-epoch mean losses."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * int(np.ceil(len(data) / config.batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.lr, total_steps=steps, pct_start=0.15)
    history = []
    for epoch in range(config.epochs):
        model.train()
        order = rng.permutation(len(data))
        sums: dict[str, float] = {}
        batches = [order[i:i + config.batch_size] for i in range(0, len(order), config.batch_size)]
        for index in batches:
            batch = _drop_modalities(data.batch(index), config.modality_dropout, rng)
            out = model(batch["mammogram"], batch["pathology"], batch["has_m"], batch["has_p"],
                        batch["domain"] if config.mixstyle else None, batch["label"])
            irm = config.irm_weight if epoch >= config.irm_warmup else 0.0
            loss, parts = multitask_loss(model, out, batch, irm)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimiser.step()
            schedule.step()
            for k, v in {"total": float(loss.detach()), **parts}.items():
                sums[k] = sums.get(k, 0.0) + v / len(batches)
        history.append({"epoch": epoch + 1, **sums})
        log.info("epoch %d/%d %s", epoch + 1, config.epochs, " ".join(f"{k}={v:.3f}" for k, v in sums.items()))
    model.eval()
    return history


@torch.no_grad()
def predict(model: CrossModalNet, data: CohortTensors, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Class and grade probabilities, lesion probability maps and the alignment embeddings."""
    model.eval()
    keys = ("probs", "grade_probs", "mask_prob", "emb_m", "emb_p")
    parts: dict[str, list] = {k: [] for k in keys}
    for start in range(0, len(data), batch_size):
        b = data.batch(np.arange(start, min(start + batch_size, len(data))))
        out = model(b["mammogram"], b["pathology"], b["has_m"], b["has_p"])
        parts["probs"].append(out["logits"].softmax(1))
        parts["grade_probs"].append(grade_probabilities(model, out["grade_score"]))
        parts["mask_prob"].append(torch.sigmoid(out["mask_logits"])[:, 0])
        parts["emb_m"].append(out["emb_m"])
        parts["emb_p"].append(out["emb_p"])
    return {k: torch.cat(v).numpy() for k, v in parts.items()}
