"""A pCR cohort from a manifest, preprocessed once and held in memory; batched network outputs.

Training fits on it and the evaluation scores trained runs on it, both through these functions,
so the crops, the clinical encoding and the prior correction are the same in both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from responseai.breast.constants import BREAST_SCHEMA
from responseai.breast.pcr.features import cohort_features
from responseai.breast.pcr.model import PCRNet
from responseai.breast.pcr.preprocess import PreparedCase, prepare_case
from responseai.clinical import ClinicalEncoder, records_from_frame
from responseai.io import read_image


@dataclass
class Cohort:
    """Preprocessed crops cached in memory: each case is read and resampled exactly once."""

    frame: pd.DataFrame
    images: np.ndarray  # N×C×Z×Y×X float32
    masks: np.ndarray  # N×Z×Y×X uint8
    clinical: np.ndarray  # N×F float32 (encoded with the training encoder)
    radiomics: np.ndarray  # N×F float32: the tumour's kinetic features (features.FEATURES) on the crop
    labels: np.ndarray  # N int
    encoder: ClinicalEncoder
    manifest: Path
    extra: dict = field(default_factory=dict)

    def rows(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.frame["split"].to_numpy() == split)


def load_case(row: pd.Series, root: Path, config: dict) -> PreparedCase:
    """Read one manifest row's phases + mask and build the model crop."""
    phases = {name: read_image(root / row[name], name) for name in ("pre", "post1", "post2") if isinstance(row.get(name), str)}
    mask = read_image(root / row["mask"], "tumour mask")
    return prepare_case(phases, mask, config)


def load_cohort(manifest: Path, config: dict, splits: tuple[str, ...] = ("train", "val"),
                encoder: ClinicalEncoder | None = None, show_progress: bool = True) -> Cohort:
    """Load the manifest rows of ``splits``; fit the clinical encoder on train rows if none given."""
    manifest = Path(manifest)
    frame = pd.read_csv(manifest)
    frame = frame[frame["split"].isin(splits)].reset_index(drop=True)
    if frame.empty:
        raise ValueError(f"{manifest}: no rows with split in {splits}")
    records = records_from_frame(frame, BREAST_SCHEMA)
    if encoder is None:
        train_records = [r for r, s in zip(records, frame["split"]) if s == "train"]
        if not train_records:
            raise ValueError(f"{manifest}: no split == 'train' rows to fit the clinical encoder on")
        encoder = ClinicalEncoder(tuple(BREAST_SCHEMA.values())).fit(train_records)
    cases = [load_case(row, manifest.parent, config)
             for _, row in tqdm(frame.iterrows(), total=len(frame), desc="loading crops", disable=not show_progress)]
    images, masks = np.stack([c.image for c in cases]), np.stack([c.mask for c in cases])
    return Cohort(
        frame=frame,
        images=images,
        masks=masks,
        clinical=encoder.transform(records),
        radiomics=cohort_features(images, masks),
        labels=frame["pcr"].to_numpy().astype(int),
        encoder=encoder,
        manifest=manifest,
    )


@torch.no_grad()
def predict_logits(model: PCRNet, cohort: Cohort, rows: np.ndarray, device: torch.device,
                   batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Raw logits and attention maps (feature grid) of ``rows``; eval mode, no augmentation."""
    model.eval()
    logits, attentions = [], []
    for start in range(0, len(rows), batch_size):
        idx = rows[start : start + batch_size]
        image = torch.from_numpy(cohort.images[idx]).to(device)
        clinical = torch.from_numpy(cohort.clinical[idx]).to(device) if model.config["clinical"] else None
        radiomics = torch.from_numpy(cohort.radiomics[idx]).to(device) if model.config["radiomics"] else None
        out = model.forward_all(image, clinical, radiomics)
        logits.append(out.logit.cpu().numpy())
        attentions.append(out.attention.cpu().numpy())
    return np.concatenate(logits), np.concatenate(attentions)


def prior_offset(labels: np.ndarray) -> float:
    """Logit correction from the balanced-sampling prior (0.5) back to the training prevalence."""
    prevalence = float(np.clip(labels.mean(), 1e-3, 1 - 1e-3))
    return float(np.log(prevalence / (1 - prevalence)))


def probabilities(logits: np.ndarray, offset: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(logits + offset)))
