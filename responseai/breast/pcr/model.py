"""pCR network of seed 000: 3D CNN over DCE channels, tumour-guided spatial attention, clinical fusion.

Architecture (built from MONAI blocks so it stays small enough to train on a CPU)::

    crop (4×Z×Y×X: pre, post1, post2, post1−pre)
      → Convolution(stride 2) → ResidualUnit(stride 2) → ResidualUnit   feature map F (C×z×y×x)
      → attention a = softmax_voxels(conv1×1(F))     [or uniform a = GAP when attention is off]
      → f = Σ_v a_v F_v                                  attended image feature (C)
      → logit = head(f)  [+ fusion_mlp([proj(f), clinical_mlp(c)]) (+ w_c·c)  when clinical is on]
                         [+ w·z(k)  when radiomics is on: k = the tumour's kinetic features]

Why these choices:
- softmax over voxels makes ``a`` a distribution, so the guidance loss KL(m̂‖a) against the
  normalised tumour mask is well defined and the "fraction of attention inside the mask" is
  a plain sum;
- the attention conv is zero-initialised, so a fresh attention module *is* GAP: step 2 starts
  exactly where step 1 ended;
- the fusion MLP's last layer is zero-initialised and added to the image head, so step 3
  starts exactly where step 2 ended and only learns what the clinical vector adds;
- the optional *radiomics* term is the image branch's second half (radiomics-guided deep
  learning): the six kinetic features a radiologist reads off the same crop and mask
  (:mod:`responseai.breast.pcr.features`: enhancement, washout, washout fraction, heterogeneity,
  rim-to-core, peritumoural enhancement), standardised with training statistics kept as buffers
  (so they travel in the weights file) and clipped to ±5 SD against another scanner's outliers.
  Why: a small CNN trained on a few hundred exams does not discover washout or a rim from raw
  phases (its image-only AUC stays at chance here), while these features carry the signal. It
  is present from step 1, so it is part of the image-only steps; Grad-CAM still explains the CNN.

The preprocessing contract (:func:`responseai.breast.pcr.preprocess.prepare_case`) is next door,
so training, inference and evaluation build the crop with one function.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution, ResidualUnit
from torch import nn

from responseai.breast.constants import DCE_CHANNELS

TASK = "pcr"  # the model card's task
DEFAULT_CONFIG: dict = {
    "in_channels": len(DCE_CHANNELS),
    "channels": [16, 32, 48],
    "strides": [2, 2, 1],
    "attention": True,
    "clinical": True,
    "n_clinical": 0,
    "clinical_hidden": 32,
    "fusion_hidden": 32,
    "dropout": 0.2,
    "radiomics": 0,  # number of kinetic features fed beside the CNN (0: none; len(features.FEATURES) with them)
    "norm": "instance",  # encoder normalisation: "instance" (cards before 1.1) or "batch"
    "clinical_linear": False,  # a linear clinical term beside the fusion MLP (1.1 cards)
    "crop_size": [48, 64, 64],  # z, y, x voxels: 60 × 80 × 80 mm, a T3 tumour with its margin
    "spacing": [1.25, 1.25, 1.25],  # x, y, z mm: rim, washout texture and spiculae stay visible
}


def make_config(**overrides) -> dict:
    """A complete architecture config (the card's ``architecture``) from defaults + overrides."""
    config = {**DEFAULT_CONFIG, **overrides}
    unknown = set(config) - set(DEFAULT_CONFIG)
    if unknown:
        raise ValueError(f"unknown architecture key(s): {sorted(unknown)}")
    if config["clinical"] and config["n_clinical"] <= 0:
        raise ValueError("clinical fusion needs n_clinical > 0 (ClinicalEncoder feature count)")
    return config


class Encoder(nn.Sequential):
    """Strided MONAI convolutions: a crop → a coarse feature grid (feature cell ≈ 8 mm).

    ``norm="batch"`` for new models. Why: instance normalisation rescales every feature map of every
    crop to zero mean and unit variance, so the global average of the last map carries almost
    nothing that differs between patients — the image-only step 1 (GAP) could not fit even its
    own training rows (train AUC 0.45). Batch statistics keep "this tumour enhances more than most".
    """

    def __init__(self, in_channels: int, channels: list[int], strides: list[int], norm: str = "instance") -> None:
        layers: list[nn.Module] = [Convolution(3, in_channels, channels[0], strides=strides[0], kernel_size=3, norm=norm)]
        for c_in, c_out, stride in zip(channels[:-1], channels[1:], strides[1:]):
            layers.append(ResidualUnit(3, c_in, c_out, strides=stride, kernel_size=3, subunits=2, norm=norm))
        super().__init__(*layers)


class SpatialAttention(nn.Module):
    """Softmax-over-voxels attention from a 1×1×1 conv; zero-initialised (= GAP at start)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.score = nn.Conv3d(channels, 1, kernel_size=1)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.score(features).flatten(1)  # B × voxels
        return torch.softmax(logits, dim=1).view(features.shape[0], *features.shape[2:])


class ClinicalBranch(nn.Module):
    """MLP over encoded clinical features (z-scores, one-hots and missing-value indicators)."""

    def __init__(self, n_features: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU())

    def forward(self, clinical: torch.Tensor) -> torch.Tensor:
        return self.net(clinical)


@dataclass
class PCROutput:
    """Logit (B), attention over the feature grid (B×z×y×x, sums to 1) and the attended feature."""

    logit: torch.Tensor
    attention: torch.Tensor
    feature: torch.Tensor


class PCRNet(nn.Module):
    """The seed-000 network; ``config`` switches attention and clinical fusion on or off."""

    def __init__(self, config: Mapping) -> None:
        super().__init__()
        self.config = dict(config)
        channels = list(config["channels"])
        self.encoder = Encoder(config["in_channels"], channels, list(config["strides"]), config["norm"])
        self.attention = SpatialAttention(channels[-1]) if config["attention"] else None
        self.dropout = nn.Dropout(config["dropout"])
        self.head = nn.Linear(channels[-1], 1)
        if config["clinical"]:
            self.clinical_branch = ClinicalBranch(config["n_clinical"], config["clinical_hidden"], config["dropout"])
            self.image_proj = nn.Linear(channels[-1], config["clinical_hidden"])
            self.fusion = nn.Sequential(
                nn.Linear(2 * config["clinical_hidden"], config["fusion_hidden"]), nn.ReLU(),
                nn.Linear(config["fusion_hidden"], 1),
            )
            nn.init.zeros_(self.fusion[-1].weight)
            nn.init.zeros_(self.fusion[-1].bias)
            if config["clinical_linear"]:  # zero: step 3 still starts where step 2 ended
                self.clinical_linear = nn.Linear(config["n_clinical"], 1)
                nn.init.zeros_(self.clinical_linear.weight)
                nn.init.zeros_(self.clinical_linear.bias)
        if config["radiomics"]:
            n = int(config["radiomics"])
            self.register_buffer("radiomics_mean", torch.zeros(n))
            self.register_buffer("radiomics_scale", torch.ones(n))
            self.radiomics_head = nn.Linear(n, 1)
            nn.init.zeros_(self.head.weight)  # the model starts as the kinetic-feature regression (below)
            nn.init.zeros_(self.head.bias)

    def set_radiomics_statistics(self, features: np.ndarray, labels: np.ndarray | None = None) -> None:
        """Standardise the kinetic features with these (training) rows' mean and SD; with ``labels``,
        start the radiomics term at their class-balanced logistic regression.

        Why the closed-form start: Adam moves a weight by about the learning rate per step, so the
        few hundred steps of a step-1 run cannot carry a linear head to coefficients near 1 (the
        jointly trained term ended at train AUC 0.45). Starting from the regression, the CNN
        learns what the features miss instead of having to rediscover them.
        """
        self.radiomics_mean.copy_(torch.from_numpy(features.mean(0).astype(np.float32)))
        self.radiomics_scale.copy_(torch.from_numpy(np.maximum(features.std(0), 1e-6).astype(np.float32)))
        if labels is None:
            return
        from sklearn.linear_model import LogisticRegression

        with torch.no_grad():
            z = self._standardise(torch.from_numpy(features.astype(np.float32)))
        fit = LogisticRegression(max_iter=2000, class_weight="balanced").fit(z.numpy(), labels)
        with torch.no_grad():
            self.radiomics_head.weight.copy_(torch.from_numpy(fit.coef_.astype(np.float32)))
            self.radiomics_head.bias.copy_(torch.from_numpy(fit.intercept_.astype(np.float32)))

    def radiomics_logit(self, radiomics: torch.Tensor | None) -> torch.Tensor:
        if radiomics is None:
            raise ValueError("this model reads the tumour's kinetic features: pass them (features.kinetic_features)")
        return self.radiomics_head(self._standardise(radiomics)).squeeze(1)

    def _standardise(self, radiomics: torch.Tensor) -> torch.Tensor:
        """Training z-scores, clipped at ±5 SD (another scanner's outlier cannot swing the logit unboundedly)."""
        return ((radiomics - self.radiomics_mean) / self.radiomics_scale).clamp(-5.0, 5.0)

    def attend(self, features: torch.Tensor) -> torch.Tensor:
        """Attention distribution over the feature grid; uniform (GAP) without the module."""
        if self.attention is not None:
            return self.attention(features)
        n_vox = int(np.prod(features.shape[2:]))
        return torch.full((features.shape[0], *features.shape[2:]), 1.0 / n_vox, device=features.device)

    def forward_all(self, image: torch.Tensor, clinical: torch.Tensor | None = None,
                    radiomics: torch.Tensor | None = None) -> PCROutput:
        features = self.encoder(image)
        attention = self.attend(features)
        # product + sum (not einsum): its backward hands Grad-CAM a contiguous gradient
        pooled = (features * attention.unsqueeze(1)).flatten(2).sum(2)
        pooled = self.dropout(pooled)
        logit = self.head(pooled).squeeze(1)
        if self.config["radiomics"]:
            logit = logit + self.radiomics_logit(radiomics)
        if self.config["clinical"]:
            if clinical is None:
                raise ValueError("this model fuses clinical variables: pass the encoded clinical vector")
            joint = torch.cat([torch.relu(self.image_proj(pooled)), self.clinical_branch(clinical)], dim=1)
            logit = logit + self.fusion(joint).squeeze(1)
            if self.config["clinical_linear"]:
                logit = logit + self.clinical_linear(clinical).squeeze(1)
        return PCROutput(logit, attention, pooled)

    def forward(self, image: torch.Tensor, clinical: torch.Tensor | None = None,
                radiomics: torch.Tensor | None = None, return_attention: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits as B×1 (the shape MONAI's Grad-CAM expects for class index 0).

        ``return_attention`` also returns the attention map; training goes through ``forward``
        (not :meth:`forward_all`) so that DDP's gradient hooks see every call.
        """
        out = self.forward_all(image, clinical, radiomics)
        return (out.logit.unsqueeze(1), out.attention) if return_attention else out.logit.unsqueeze(1)


def build_model(config_or_card: Mapping) -> PCRNet:
    """Network from an architecture config or from a model card holding one."""
    config = config_or_card.get("architecture", config_or_card)
    return PCRNet(make_config(**config))


def inherit_weights(model: PCRNet, previous: Mapping[str, torch.Tensor]) -> list[str]:
    """Initialise ``model`` from the previous step; returns the names that stay freshly initialised.

    Every tensor of the previous step must be used (no silent drop of learned weights).
    """
    result = model.load_state_dict(dict(previous), strict=False)
    if result.unexpected_keys:
        raise ValueError(f"previous step has weights the new model lacks: {result.unexpected_keys}")
    return list(result.missing_keys)


def mask_target(mask: torch.Tensor, grid: tuple[int, ...], dilation: int = 1) -> torch.Tensor:
    """m̂: the tumour mask dilated (max-pool) and average-pooled to the feature grid, summing to 1.

    Dilation by one voxel at crop resolution keeps a thin rim (where enhancement lives) from
    vanishing at the coarse grid; the small floor keeps KL finite where m̂ is zero.
    """
    m = mask.float().unsqueeze(1)
    if dilation:
        m = F.max_pool3d(m, 2 * dilation + 1, stride=1, padding=dilation)
    pooled = F.adaptive_avg_pool3d(m, grid).squeeze(1)
    flat = pooled.flatten(1) + 1e-6
    return (flat / flat.sum(1, keepdim=True)).view_as(pooled)


def guidance_loss(attention: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_att = KL(m̂ ‖ a), averaged over the batch."""
    a = attention.flatten(1).clamp_min(1e-8)
    m = target.flatten(1)
    return (m * (m.clamp_min(1e-8).log() - a.log())).sum(1).mean()
