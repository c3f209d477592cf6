"""Fitting the recurrence network on arrays: used by ``training/recurrence.py`` and by the cross-validations.

Why the loop lives in the core: the evaluations on the real cohorts (GBSG2, GSE7390) must
refit the network in every cross-validation fold, side by side with CoxPH and a random
survival forest, and the core never imports ``training/``. The network is small, so a
fold trains in seconds on a CPU; ``training/recurrence.py`` adds the CLI, the phantom and the
model card around :func:`fit_network`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from responseai.recurrence.model import RecurrenceNet, check_blocks, drop_modalities
from responseai.recurrence.survival import check_outcomes, cox_loss

log = logging.getLogger(__name__)


@dataclass
class CohortArrays:
    """A cohort as the network sees it: one array per token block (patients first), presence, outcome.

    ``present[:, j]`` says whether patient i has block ``names[j]``; a missing block's rows are
    zeros (never read: the network masks or compensates them).
    """

    names: list[str]
    blocks: dict[str, np.ndarray]
    present: np.ndarray
    time: np.ndarray
    event: np.ndarray
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.time)

    def subset(self, rows: np.ndarray) -> "CohortArrays":
        return CohortArrays(self.names, {k: v[rows] for k, v in self.blocks.items()}, self.present[rows],
                            self.time[rows], self.event[rows], [self.ids[i] for i in rows] if self.ids else [])

    def without(self, modality: str) -> "CohortArrays":
        """The same patients with ``modality`` removed (the test-time ablation)."""
        present = self.present.copy()
        present[:, self.names.index(modality)] = False
        return CohortArrays(self.names, self.blocks, present, self.time, self.event, self.ids)


@dataclass(frozen=True)
class FitConfig:
    """Network size and optimisation (AdamW, fixed epochs: no validation split to spend on small cohorts)."""

    d_model: int = 32
    n_heads: int = 4
    n_queries: int = 2
    dropout: float = 0.1
    compensation: bool = True
    modality_dropout: float = 0.3
    epochs: int = 20
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-2
    seed: int = 0


def network_config(specs: Mapping[str, Mapping], config: FitConfig) -> dict:
    """The JSON-able architecture config a card stores (block specs in the cohort's order)."""
    return {"d_model": config.d_model, "n_heads": config.n_heads, "n_queries": config.n_queries,
            "dropout": config.dropout, "compensation": config.compensation, "modalities": dict(specs)}


def tensors(data: CohortArrays, rows: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    rows = np.arange(len(data)) if rows is None else rows
    return {k: torch.as_tensor(v[rows], dtype=torch.float32) for k, v in data.blocks.items()}


def augment(blocks: dict[str, torch.Tensor], specs: Mapping[str, Mapping], rng: np.random.Generator) -> dict:
    """Random flips and quarter turns of tiles and images: the phantom's (and a slide's) risk has no orientation.

    Without it the image tokenisers memorise the few hundred training patients' follow-up
    (training C ≈ 1.0 within 30 epochs) instead of learning the texture.
    """
    out = dict(blocks)
    for name, block in blocks.items():
        if specs[name]["kind"] in ("tiles", "image"):
            turned = torch.rot90(block, int(rng.integers(4)), dims=(-2, -1))
            out[name] = torch.flip(turned, (-1,)) if rng.random() < 0.5 else turned
    return out


def fit_network(data: CohortArrays, specs: Mapping[str, Mapping], config: FitConfig = FitConfig(),
                droppable: list[str] | None = None) -> tuple[RecurrenceNet, list[dict]]:
    """Train a fresh network (mini-batch Cox loss, random modality dropout); returns it in eval mode.

    ``droppable`` names the blocks modality dropout may hide (default: all); the first block of
    a clinical-only cohort cannot be dropped anyway, since a patient always keeps one.
    """
    check_outcomes(data.time, data.event, "training cohort")
    check_blocks(data.blocks, {"modalities": specs})
    torch.manual_seed(config.seed)
    rng = np.random.default_rng([config.seed, 11])
    model = RecurrenceNet(network_config(specs, config))
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(config.epochs, 1))
    may_drop = [droppable is None or n in droppable for n in data.names]
    time, event = torch.as_tensor(data.time, dtype=torch.float32), torch.as_tensor(data.event)
    history = []
    for epoch in range(config.epochs):
        model.train()
        order = rng.permutation(len(data))
        n_batches = max(1, int(np.ceil(len(order) / config.batch_size)))
        losses = []
        for batch in np.array_split(order, n_batches):
            if not data.event[batch].any() or len(batch) < 2:
                continue  # no event: the partial likelihood is empty
            present = drop_modalities(data.present[batch], config.modality_dropout, rng, may_drop)
            out = model(augment(tensors(data, batch), specs, rng), torch.as_tensor(present))
            loss = cox_loss(out["log_risk"], time[batch], event[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        scheduler.step()
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)) if losses else None})
        if (epoch + 1) % 20 == 0 or epoch + 1 == config.epochs:
            log.debug("epoch %d/%d Cox loss %.4f", epoch + 1, config.epochs, history[-1]["train_loss"] or float("nan"))
    return model.eval(), history


@torch.no_grad()
def predict_risk(model: RecurrenceNet, data: CohortArrays, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(log-risk (N,), read-out attention weights over the modalities (N, M)) in eval mode."""
    model.eval()
    risks, weights = [], []
    for start in range(0, len(data), batch_size):
        rows = np.arange(start, min(start + batch_size, len(data)))
        out = model(tensors(data, rows), torch.as_tensor(data.present[rows]))
        risks.append(out["log_risk"].numpy())
        weights.append(out["modality_weights"].numpy())
    return np.concatenate(risks), np.concatenate(weights)
