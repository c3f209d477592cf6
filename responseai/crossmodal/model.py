"""Shared MONAI ViT encoder with modality adapters, MixStyle, three heads and their losses.

Why this shape (seeds 002 / 004): one encoder for both modalities lets mammogram and pathology
patches live in one token space (needed for the cross-attention evidence); small bottleneck
adapters per modality (zero-initialised residuals after every transformer block, < 5 % of the
encoder's parameters) carry what is modality-specific, and they — with the LayerNorms — are
the only weights test-time adaptation may move. The mammogram is fed as three identical
channels so the patch embedding is shared too.

* MixStyle (training only, after the first ``mixstyle_layers`` blocks, probability
  ``mixstyle_p``): each sample's token mean / std is mixed with those of a sample of the same
  class from *another* domain — the site style changes, the diagnosis does not. Plain MixStyle
  (any partner, two blocks, p = 0.5) kept the classification loss near chance in development
  runs on the phantom (exploratory, not a shipped command), because a ViT's token statistics
  carry content (nuclear density) as well as style.
* Heads on the fused patient vector ``[z_mammo·has_m, z_patho·has_p, has_m, has_p]`` (a missing
  modality is a zero vector plus its flag, trained with modality dropout): a 2-layer MLP
  (512 hidden) for the four classes; a cumulative-link ordinal grade head
  ``P(Y ≤ k) = σ(θ_k − wᵀΦ)`` with thresholds kept ordered (θ₁ + cumulative softplus).
  Localisation is per mammogram token: each token predicts its patch's mask logits
  (loss Dice + 0.5·BCE).
* Losses: InfoNCE between the projected mammogram and pathology vectors of the same patient
  (τ = 0.07, other patients of the batch are negatives), IRM penalty per domain
  (squared gradient of the domain's classification loss w.r.t. a dummy scale w = 1), combined
  by learned uncertainty weights ``Σ L_t / (2σ_t²) + log σ_t`` (σ_t initialised to 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from monai.networks.nets import ViT
from torch import nn

from responseai.crossmodal.constants import CLASSES, GRADES, MODALITIES

TASKS = ("classification", "localisation", "grade", "alignment")
TEMPERATURE = 0.07


@dataclass(frozen=True)
class ModelConfig:
    """Encoder and head sizes; the default is the small CPU model, :meth:`paper` the seed's ViT-B/16."""

    image_size: int = 64
    patch_size: int = 8
    hidden_size: int = 96
    mlp_dim: int = 192
    num_layers: int = 4
    num_heads: int = 4
    adapter_dim: int = 8
    embed_dim: int = 64
    head_hidden: int = 512
    mixstyle_layers: int = 1
    mixstyle_p: float = 0.3
    mixstyle_alpha: float = 0.1

    @classmethod
    def paper(cls) -> "ModelConfig":
        return cls(image_size=224, patch_size=16, hidden_size=768, mlp_dim=3072, num_layers=12, num_heads=12,
                   adapter_dim=64, embed_dim=256)

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    def to_dict(self) -> dict:
        return asdict(self)


class Adapter(nn.Module):
    """Bottleneck residual adapter: x + up(GELU(down(x))), ``up`` zero-initialised (starts as identity)."""

    def __init__(self, dim: int, bottleneck: int) -> None:
        super().__init__()
        self.down, self.up = nn.Linear(dim, bottleneck), nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(F.gelu(self.down(x)))


def mixstyle(tokens: torch.Tensor, domains: torch.Tensor, alpha: float, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Mix each sample's token mean / std with a partner from another domain, of the same class when known.

    In a ViT the per-channel token statistics carry content as well as style (nuclear density
    moves the mean of a pathology tile's tokens), so mixing an invasive tile with a normal one's
    statistics also mixes the diagnosis: with labels the partner shares the class and differs in
    domain, falling back to any other domain, then to anyone.
    """
    batch = tokens.shape[0]
    mu = tokens.mean(1, keepdim=True)
    sigma = (tokens.var(1, keepdim=True) + 1e-6).sqrt()
    normed = (tokens - mu) / sigma
    scores = torch.rand(batch, batch, device=tokens.device) + (domains[:, None] != domains[None]).float()
    if labels is not None:
        scores = scores + 2 * (labels[:, None] == labels[None]).float()
    scores.fill_diagonal_(-1.0)
    partner = scores.argmax(1)
    lam = torch.distributions.Beta(alpha, alpha).sample((batch, 1, 1)).to(tokens)
    mu_mix = lam * mu + (1 - lam) * mu[partner].detach()
    sigma_mix = lam * sigma + (1 - lam) * sigma[partner].detach()
    return normed * sigma_mix + mu_mix


class CrossModalNet(nn.Module):
    """Mammogram (1 × S × S in [−1, 1]) + pathology (3 × S × S) → class logits, grade score, mask logits."""

    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        self.config = config
        d = config.hidden_size
        self.encoder = ViT(in_channels=3, img_size=config.image_size, patch_size=config.patch_size, hidden_size=d,
                           mlp_dim=config.mlp_dim, num_layers=config.num_layers, num_heads=config.num_heads,
                           spatial_dims=2, classification=False)
        self.adapters = nn.ModuleDict({m: nn.ModuleList(Adapter(d, config.adapter_dim) for _ in range(config.num_layers))
                                       for m in MODALITIES})
        self.project = nn.Linear(d, config.embed_dim)
        fused = 2 * d + 2
        self.classifier = nn.Sequential(nn.Linear(fused, config.head_hidden), nn.GELU(), nn.Dropout(0.1),
                                        nn.Linear(config.head_hidden, len(CLASSES)))
        self.grade_score = nn.Linear(fused, 1)
        self.grade_first = nn.Parameter(torch.tensor(-1.0))
        self.grade_gaps = nn.Parameter(torch.zeros(len(GRADES) - 2))
        self.localiser = nn.Linear(d, config.patch_size ** 2)
        self.log_sigma = nn.Parameter(torch.zeros(len(TASKS)))

    # ----------------------------------------------------------------------------- encoder
    def encode(self, images: torch.Tensor, modality: str, domains: torch.Tensor | None = None,
               labels: torch.Tensor | None = None) -> torch.Tensor:
        """Token features (B, N, D); MixStyle only in training and only with domain labels."""
        if modality == "mammogram":
            images = images.expand(-1, 3, -1, -1)
        x = self.encoder.patch_embedding(images)
        for i, (block, adapter) in enumerate(zip(self.encoder.blocks, self.adapters[modality])):
            x = adapter(block(x))
            if (self.training and domains is not None and i < self.config.mixstyle_layers
                    and torch.rand(()) < self.config.mixstyle_p):
                x = mixstyle(x, domains, self.config.mixstyle_alpha, labels)
        return self.encoder.norm(x)

    def thresholds(self) -> torch.Tensor:
        """Ordered cut-points θ₁ < θ₂ < … (first + cumulative softplus gaps + a fixed minimum gap)."""
        gaps = F.softplus(self.grade_gaps) + 0.1
        return torch.cat([self.grade_first[None], self.grade_first + torch.cumsum(gaps, 0)])

    def heads(self, z_m: torch.Tensor, z_p: torch.Tensor, has_m: torch.Tensor, has_p: torch.Tensor) -> dict:
        hm, hp = has_m.float()[:, None], has_p.float()[:, None]
        fused = torch.cat([z_m * hm, z_p * hp, hm, hp], 1)
        return {"logits": self.classifier(fused), "grade_score": self.grade_score(fused)[:, 0]}

    def mask_logits(self, tokens_m: torch.Tensor) -> torch.Tensor:
        """(B, N, D) mammogram tokens → (B, 1, S, S) lesion logits, one patch per token."""
        b, g, p = tokens_m.shape[0], self.config.grid, self.config.patch_size
        patches = self.localiser(tokens_m).reshape(b, g, g, p, p)
        return patches.permute(0, 1, 3, 2, 4).reshape(b, 1, g * p, g * p)

    def forward(self, mammogram: torch.Tensor, pathology: torch.Tensor, has_m: torch.Tensor, has_p: torch.Tensor,
                domains: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> dict:
        tokens_m = self.encode(mammogram, "mammogram", domains, labels)
        tokens_p = self.encode(pathology, "pathology", domains, labels)
        z_m, z_p = tokens_m.mean(1), tokens_p.mean(1)
        out = self.heads(z_m, z_p, has_m, has_p)
        out.update(mask_logits=self.mask_logits(tokens_m), tokens_m=tokens_m, tokens_p=tokens_p,
                   emb_m=F.normalize(self.project(z_m), dim=1), emb_p=F.normalize(self.project(z_p), dim=1))
        return out


def adapter_fraction(model: CrossModalNet) -> float:
    """Adapter parameters / encoder parameters (the seed asks for < 5 %)."""
    adapters = sum(p.numel() for p in model.adapters.parameters())
    return adapters / sum(p.numel() for p in model.encoder.parameters())


def grade_probabilities(model: CrossModalNet, score: torch.Tensor) -> torch.Tensor:
    """Cumulative link → per-grade probabilities (B, K)."""
    cumulative = torch.sigmoid(model.thresholds()[None] - score[:, None])
    ones, zeros = torch.ones_like(score)[:, None], torch.zeros_like(score)[:, None]
    cumulative = torch.cat([zeros, cumulative, ones], 1)
    return cumulative[:, 1:] - cumulative[:, :-1]


def ordinal_loss(model: CrossModalNet, score: torch.Tensor, grade: torch.Tensor) -> torch.Tensor:
    """K−1 binary cross-entropies on ``1[Y ≤ k]``; cases without a grade (−1) are left out."""
    keep = grade >= 0
    if not keep.any():
        return score.sum() * 0
    logits = model.thresholds()[None] - score[keep, None]
    targets = (grade[keep, None] <= torch.arange(logits.shape[1], device=score.device)[None]).float()
    return F.binary_cross_entropy_with_logits(logits, targets)


def localisation_loss(mask_logits: torch.Tensor, mask: torch.Tensor, has_m: torch.Tensor) -> torch.Tensor:
    """Dice (lesion cases) + 0.5 · pixel BCE (every case with a mammogram, so normals learn 'no lesion')."""
    if not has_m.any():
        return mask_logits.sum() * 0
    logits, target = mask_logits[has_m], mask[has_m].float()
    bce = F.binary_cross_entropy_with_logits(logits, target)
    lesion = target.flatten(1).sum(1) > 0
    if not lesion.any():
        return 0.5 * bce
    prob = torch.sigmoid(logits[lesion]).flatten(1)
    t = target[lesion].flatten(1)
    dice = 1 - ((2 * (prob * t).sum(1) + 1) / (prob.sum(1) + t.sum(1) + 1)).mean()
    return dice + 0.5 * bce


def info_nce(emb_m: torch.Tensor, emb_p: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """Symmetric InfoNCE on cosine similarity; row i of each is the same patient."""
    if len(emb_m) < 2:
        return emb_m.sum() * 0
    logits = emb_m @ emb_p.T / temperature
    target = torch.arange(len(emb_m), device=emb_m.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def irm_penalty(logits: torch.Tensor, labels: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
    """Σ_d ‖∇_{w | w = 1} CE_d(w · logits)‖² (IRMv1)."""
    scale = torch.ones((), device=logits.device, requires_grad=True)
    penalty = logits.sum() * 0
    for d in domains.unique():
        sel = domains == d
        loss = F.cross_entropy(logits[sel] * scale, labels[sel])
        (grad,) = torch.autograd.grad(loss, scale, create_graph=True)
        penalty = penalty + grad.pow(2)
    return penalty


def multitask_loss(model: CrossModalNet, out: dict, batch: dict, irm_weight: float = 0.0) -> tuple[torch.Tensor, dict]:
    """Uncertainty-weighted sum of the task losses (+ IRM); returns (total, per-task values)."""
    both = batch["has_m"] & batch["has_p"]
    losses = {
        "classification": F.cross_entropy(out["logits"], batch["label"]),
        "localisation": localisation_loss(out["mask_logits"], batch["mask"], batch["has_m"]),
        "grade": ordinal_loss(model, out["grade_score"], batch["grade"]),
        "alignment": info_nce(out["emb_m"][both], out["emb_p"][both]),
    }
    total = sum(loss * torch.exp(-2 * s) / 2 + s for loss, s in zip(losses.values(), model.log_sigma))
    if irm_weight > 0:
        losses["irm"] = irm_penalty(out["logits"], batch["label"], batch["domain"])
        total = total + irm_weight * losses["irm"]
    return total, {k: float(v.detach()) for k, v in losses.items()}


def build_model(card: dict) -> CrossModalNet:
    """The network a model card describes (used by :func:`responseai.weights.load_model`)."""
    return CrossModalNet(ModelConfig(**card["architecture"]["config"]))
