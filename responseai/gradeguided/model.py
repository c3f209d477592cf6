"""Grade-guided multimodal fusion network (seed 003), sized for a CPU.

Three imaging streams over the 6-channel tumour ROI (CT ×3, MRI ×2, PET):

- **ResNet** stream: MONAI ``ResNet`` (basic blocks, small widths, ``conv1_t_stride=2``) run
  up to its last stage, then one transformer encoder layer over the 2³ patch tokens (the
  "CNN–Transformer" long-range step) and mean pooling;
- **Direct** stream: 2× downsampled input, 3 × Conv-BN-ReLU-Pool (8→16→32), two FC → 16-d;
- **Encoded** stream: two convolutions pooled inside the ROI (mean and std of each map) plus
  the input's first-order ROI moments (:func:`roi_moments`) → 57-d. The paper's adaptive
  average pool keeps 2³ spatial cells; pooling inside the tumour gives the ROI-level
  distributions (spread, necrotic tail, uptake) that grade and response depend on.

Clinical: an MLP plus a graph convolution over variables (nodes = encoded clinical features,
adjacency = thresholded |correlation| on the training set, kept as a buffer so it travels with
the weights) → ``clinical_dim``.

Fusion: ``ĥ_k = W_k h_k``; ``α_k = softmax_k(wᵀ ReLU(U ĥ_k + V e_g))``; ``z = Σ α_k ĥ_k``
(a convex combination); final vector = concat(z, the original stream vectors, e_g). The grade
embedding ``e_g`` comes from the biopsy / pathological grade when given, else from the grading
head's distribution (soft ``Σ p_g e_g``). The grading head reads the *unfused* stream vectors so
that the grade estimate never depends on itself.

Heads: grading (G logits); prototype subtypes (``u`` = a projection of the final vector on
the unit sphere, ``q_m ∝ exp(−‖u − μ_m‖²/τ)``, compactness loss); response logit
``Σ_g c_g (w_gᵀ f + b_g) + Σ_m q_m ρ_m``: **one linear model per grade** over the final vector
``f`` (``c`` = one-hot biopsy grade, else the predicted distribution) — where the grade enters
as a structural prior: it chooses which features count — plus a learnt response shift ``ρ_m``
per subtype, trained also alone (``subtype_response`` loss, weight 0.1) so that the subtypes are
pushed towards response phenotypes. Subtypes are named by the responder rate of the training
cases they hold (:func:`order_subtypes`). The unguided ablations have one linear model.
Entropy regulariser on α weighted by grade confidence. Not built: the dictionary-
reconstruction branch (λ2) and the response-status training context (it would need the label
at inference), and the clinical–imaging alignment loss.

Ablations (``config["ablation"]``): ``imaging_only`` (three streams, unguided gate),
``early_fusion`` (raw clinical vector concatenated with the stream vectors, no gate),
``deep_fusion`` (gate and clinical encoder without grade), ``grade_guided`` (full model).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.nets.resnet import ResNet
from scipy import ndimage
from torch import nn

ABLATIONS = ("imaging_only", "early_fusion", "deep_fusion", "grade_guided")
DEFAULT_CONFIG = {
    "ablation": "grade_guided", "in_channels": 6, "n_clinical": 18, "n_grades": 3, "n_subtypes": 3,
    "resnet_planes": [8, 16, 32, 64], "fusion_dim": 32, "grade_dim": 16, "node_dim": 8,
    "clinical_dim": 32, "subtype_dim": 16, "tau": 0.5, "dropout": 0.2,
}
LOSS_WEIGHTS = {"grade": 1.0, "response": 1.0, "compactness": 0.1, "balance": 0.1, "entropy": 0.01, "subtype_response": 0.1}
UNKNOWN_GRADE = -1
TASK = "grade_response_subtype"  # the model card's task (checked when the weights are loaded)


class ResNetStream(nn.Module):
    """MONAI ResNet trunk + one transformer layer over its last-stage patch tokens."""

    def __init__(self, in_channels: int, planes: Sequence[int]) -> None:
        super().__init__()
        self.trunk = ResNet("basic", [1, 1, 1, 1], list(planes), spatial_dims=3, n_input_channels=in_channels,
                            conv1_t_size=3, conv1_t_stride=2, no_max_pool=True, feed_forward=False)
        self.out_dim = planes[-1]
        self.position = nn.Parameter(torch.zeros(1, 8, self.out_dim))
        self.transformer = nn.TransformerEncoderLayer(self.out_dim, nhead=4, dim_feedforward=2 * self.out_dim,
                                                      dropout=0.0, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.trunk
        x = t.act(t.bn1(t.conv1(x)))
        x = t.layer4(t.layer3(t.layer2(t.layer1(x))))
        tokens = F.adaptive_avg_pool3d(x, 2).flatten(2).transpose(1, 2)  # (B, 8, C)
        return self.transformer(tokens + self.position).mean(1)


class DirectStream(nn.Module):
    """Downsampled input through three Conv-BN-ReLU-Pool blocks and two FC layers → 16-d."""

    out_dim = 16

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        blocks, width = [nn.AvgPool3d(2)], in_channels
        for out in (8, 16, 32):
            blocks += [nn.Conv3d(width, out, 3, padding=1), nn.BatchNorm3d(out), nn.ReLU(), nn.MaxPool3d(2)]
            width = out
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool3d(2), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(32 * 8, 32), nn.ReLU(), nn.Linear(32, self.out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _roi_mask(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, Z, Y, X) 1 where any channel is non-zero: the ROI, since inputs are image ⊙ mask."""
    return (x.abs().sum(1, keepdim=True) > 0).to(x.dtype)


def _masked_mean_std(x: torch.Tensor, roi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation of ``x`` over the voxels where ``roi`` is 1."""
    dims = (2, 3, 4)
    weight = roi / roi.sum(dims, keepdim=True).clamp_min(1.0)
    mean = (x * weight).sum(dims)
    var = (((x - mean[..., None, None, None]) ** 2) * weight).sum(dims)
    return mean, (var + 1e-6).sqrt()


def roi_moments(x: torch.Tensor) -> torch.Tensor:
    """First-order statistics of each channel inside the ROI.

    Per channel: mean, standard deviation, and the mean excess above +1 and below −1 (soft
    upper / lower tail masses, differentiable stand-ins for percentiles); plus the ROI volume
    in thousands of voxels. A zeroed (missing) channel gives zeros. ``x``: (B, C, Z, Y, X).
    """
    roi = _roi_mask(x)
    mean, std = _masked_mean_std(x, roi)
    tails, _ = _masked_mean_std(torch.cat([F.relu(x - 1), F.relu(-x - 1)], 1), roi)
    return torch.cat([mean, std, tails, roi.sum((2, 3, 4)) / 1000.0], 1)


class EncodedStream(nn.Module):
    """Two convolutions pooled inside the ROI (mean and std of 16 maps), plus the input's ROI moments.

    The paper's adaptive average pool keeps 2³ spatial cells, which a response that does not
    depend on where in the ROI a feature sits cannot use; pooling *inside the tumour* with
    first and second moments gives texture (spread), necrosis (tail mass) and uptake level
    directly. The input's own moments (:func:`roi_moments`) are appended, batch-normalised, so
    the fusion always sees the classical first-order radiomics of every channel.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv3d(in_channels, 16, 3, padding=1), nn.ReLU(),
                                 nn.Conv3d(16, 16, 3, stride=2, padding=1), nn.ReLU())
        self.out_dim = 32 + 4 * in_channels + 1
        self.norm = nn.BatchNorm1d(self.out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.net(x)
        mean, std = _masked_mean_std(features, F.adaptive_max_pool3d(_roi_mask(x), features.shape[2:]))
        return self.norm(torch.cat([mean, std, roi_moments(x)], 1))


class ClinicalGraphEncoder(nn.Module):
    """MLP over the clinical vector plus one graph convolution over its variables."""

    def __init__(self, n_features: int, node_dim: int, out_dim: int) -> None:
        super().__init__()
        self.register_buffer("adjacency", torch.eye(n_features))
        self.node_weight = nn.Parameter(torch.randn(n_features, node_dim) * 0.1)
        self.node_bias = nn.Parameter(torch.zeros(n_features, node_dim))
        self.graph = nn.Linear(node_dim, node_dim)
        self.mlp = nn.Sequential(nn.Linear(n_features, out_dim), nn.ReLU())
        self.out = nn.Sequential(nn.Linear(out_dim + n_features * node_dim, out_dim), nn.ReLU())

    def normalised_adjacency(self) -> torch.Tensor:
        """Symmetric normalisation D^-½ A D^-½ (Kipf & Welling)."""
        degree = self.adjacency.sum(1).clamp_min(1e-6).rsqrt()
        return degree[:, None] * self.adjacency * degree[None, :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = x[:, :, None] * self.node_weight + self.node_bias  # (B, P, node_dim)
        nodes = F.relu(self.graph(self.normalised_adjacency() @ nodes))
        return self.out(torch.cat([self.mlp(x), nodes.flatten(1)], 1))


class GatedFusion(nn.Module):
    """α_k = softmax_k(wᵀ ReLU(U ĥ_k + V e_g)); z = Σ α_k ĥ_k. Without V when unguided."""

    def __init__(self, dims: Sequence[int], fusion_dim: int, grade_dim: int | None) -> None:
        super().__init__()
        self.align = nn.ModuleList(nn.Linear(d, fusion_dim) for d in dims)
        self.u = nn.Linear(fusion_dim, fusion_dim)
        self.v = nn.Linear(grade_dim, fusion_dim, bias=False) if grade_dim else None
        self.w = nn.Linear(fusion_dim, 1, bias=False)

    def forward(self, features: Sequence[torch.Tensor], grade_embedding: torch.Tensor | None):
        aligned = torch.stack([w(h) for w, h in zip(self.align, features)], 1)  # (B, K, d)
        hidden = self.u(aligned)
        if self.v is not None:
            hidden = hidden + self.v(grade_embedding)[:, None, :]
        alpha = torch.softmax(self.w(F.relu(hidden)).squeeze(-1), dim=1)
        return (alpha[..., None] * aligned).sum(1), alpha


class GradeGuidedNet(nn.Module):
    """Imaging streams + clinical graph encoder + (grade-guided) fusion + three heads."""

    def __init__(self, config: Mapping) -> None:
        super().__init__()
        self.config = {**DEFAULT_CONFIG, **dict(config)}
        c = self.config
        if c["ablation"] not in ABLATIONS:
            raise ValueError(f"unknown ablation '{c['ablation']}'; choose one of {', '.join(ABLATIONS)}")
        self.ablation = c["ablation"]
        self.resnet = ResNetStream(c["in_channels"], c["resnet_planes"])
        self.direct = DirectStream(c["in_channels"])
        self.encoded = EncodedStream(c["in_channels"])
        dims = [self.resnet.out_dim, DirectStream.out_dim, self.encoded.out_dim]
        if self.ablation in ("deep_fusion", "grade_guided"):
            self.clinical = ClinicalGraphEncoder(c["n_clinical"], c["node_dim"], c["clinical_dim"])
            dims.append(c["clinical_dim"])
        elif self.ablation == "early_fusion":
            dims.append(c["n_clinical"])
        self.source_names = ["resnet", "direct", "encoded", "clinical"][: len(dims)]
        guided = self.ablation == "grade_guided"
        self.fusion = None if self.ablation == "early_fusion" else GatedFusion(dims, c["fusion_dim"], c["grade_dim"] if guided else None)
        self.grade_embedding = nn.Embedding(c["n_grades"], c["grade_dim"]) if guided else None
        base = sum(dims)
        final = base + (0 if self.fusion is None else c["fusion_dim"]) + (c["grade_dim"] if guided else 0)
        self.grade_head = nn.Sequential(nn.Linear(base, 32), nn.ReLU(), nn.Linear(32, c["n_grades"]))
        self.subtype_projection = nn.Sequential(nn.Linear(final, 32), nn.ReLU(), nn.Linear(32, c["subtype_dim"]))
        self.dropout = nn.Dropout(c["dropout"])
        self.response_head = nn.Linear(final, c["n_grades"] if guided else 1)
        self.prototypes = nn.Parameter(torch.randn(c["n_subtypes"], c["subtype_dim"]))
        self.subtype_response = nn.Parameter(torch.zeros(c["n_subtypes"]))  # ρ_m: logit shift of subtype m

    def set_adjacency(self, adjacency: np.ndarray | torch.Tensor) -> None:
        """Install the training-set variable graph (no-op for ablations without the graph)."""
        if hasattr(self, "clinical"):
            self.clinical.adjacency.copy_(torch.as_tensor(adjacency, dtype=torch.float32))

    def _sources(self, image: torch.Tensor, clinical: torch.Tensor) -> list[torch.Tensor]:
        sources = [self.resnet(image), self.direct(image), self.encoded(image)]
        if hasattr(self, "clinical"):
            sources.append(self.clinical(clinical))
        elif self.ablation == "early_fusion":
            sources.append(clinical)
        return sources

    @staticmethod
    def grade_weights(grade: torch.Tensor | None, grade_probs: torch.Tensor) -> torch.Tensor:
        """One-hot of the given grade where known (≥ 0), else the predicted distribution."""
        if grade is None:
            return grade_probs
        hard = F.one_hot(grade.clamp_min(0), grade_probs.shape[1]).to(grade_probs.dtype)
        return torch.where((grade >= 0)[:, None], hard, grade_probs)

    def _response_logit(self, features: torch.Tensor, grade_weights: torch.Tensor) -> torch.Tensor:
        """Grade-guided: one linear response model per grade, mixed by the grade weights
        (Σ_g c_g (w_gᵀ f + b_g)); unguided ablations: a single linear model."""
        logits = self.response_head(features)
        return (logits * grade_weights).sum(1) if logits.shape[1] > 1 else logits.squeeze(1)

    def forward(self, image: torch.Tensor, clinical: torch.Tensor, grade: torch.Tensor | None = None) -> dict:
        """``grade``: class index per case, ``UNKNOWN_GRADE`` (−1) where no biopsy grade is known."""
        sources = self._sources(image, clinical)
        base = torch.cat(sources, 1)
        grade_logits = self.grade_head(base)
        grade_probs = torch.softmax(grade_logits, 1)
        weights = self.grade_weights(grade, grade_probs)
        context = None if self.grade_embedding is None else weights @ self.grade_embedding.weight
        parts = [base]
        alpha = torch.zeros(image.shape[0], 0, device=image.device)
        if self.fusion is not None:
            fused, alpha = self.fusion(sources, context)
            parts.insert(0, fused)
        if context is not None:
            parts.append(context)
        final = torch.cat(parts, 1)
        u = F.normalize(self.subtype_projection(final), dim=1)
        prototypes = F.normalize(self.prototypes, dim=1)
        distance = ((u[:, None, :] - prototypes[None]) ** 2).sum(-1)
        subtype_probs = torch.softmax(-distance / self.config["tau"], 1)
        subtype_logit = subtype_probs @ self.subtype_response
        response = self._response_logit(self.dropout(final), weights) + subtype_logit
        return {"grade_logits": grade_logits, "grade_probs": grade_probs, "alpha": alpha, "response_logit": response,
                "subtype_logit": subtype_logit, "subtype_probs": subtype_probs, "subtype_distance": distance,
                "embedding": u}


def order_subtypes(model: GradeGuidedNet, order: Sequence[int]) -> None:
    """Renumber the prototypes (and their ρ) in place so that new index k is old prototype ``order[k]``.

    Prototype indices are arbitrary after training, while the card names them S1, S2, … in
    index order; training calls this with the prototypes sorted by responder rate. Every output except the subtype order is unchanged.
    """
    order = torch.as_tensor(list(order), dtype=torch.long)
    with torch.no_grad():
        model.prototypes.copy_(model.prototypes[order])
        model.subtype_response.copy_(model.subtype_response[order])


def grade_guided_loss(outputs: Mapping[str, torch.Tensor], grade: torch.Tensor, response: torch.Tensor,
                      weights: Mapping[str, float] = LOSS_WEIGHTS) -> tuple[torch.Tensor, dict[str, float]]:
    """L = L_grade + L_resp + λ1 (L_compact + L_balance) + λ_ent L_ent (λ1 = 0.1; no reconstruction term).

    Compactness alone is minimised by putting every case on one prototype (observed: all
    held-out cases in one subtype, and a collapsed ``u`` that no longer carries response), so
    a balance term log M − H(mean q) keeps all M prototypes in use.

    The entropy term is (2c − 1)·H(α) with c the grade confidence: it rewards dispersed
    weights when the grade is uncertain (c near 1/G) and focused ones when it is clear.
    """
    terms = {
        "grade": F.cross_entropy(outputs["grade_logits"], grade),
        "response": F.binary_cross_entropy_with_logits(outputs["response_logit"], response.float()),
        "compactness": (outputs["subtype_probs"] * outputs["subtype_distance"]).sum(1).mean(),
        "subtype_response": F.binary_cross_entropy_with_logits(outputs["subtype_logit"], response.float()),
    }
    usage = outputs["subtype_probs"].mean(0)
    terms["balance"] = np.log(usage.numel()) + (usage * usage.clamp_min(1e-8).log()).sum()
    alpha = outputs["alpha"]
    if alpha.shape[1]:
        confidence = outputs["grade_probs"].max(1).values.detach()
        entropy = -(alpha * alpha.clamp_min(1e-8).log()).sum(1)
        terms["entropy"] = ((2 * confidence - 1) * entropy).mean()
    total = sum(weights[k] * v for k, v in terms.items())
    return total, {k: float(v.detach()) for k, v in terms.items()}


def build_model(card: Mapping) -> GradeGuidedNet:
    """Network from a model card's ``architecture.config`` (for :func:`responseai.weights.load_model`)."""
    return GradeGuidedNet(card["architecture"]["config"])


def predict_arrays(model: GradeGuidedNet, image: np.ndarray, clinical: np.ndarray, grade: np.ndarray | None,
                   batch_size: int = 32) -> dict[str, np.ndarray]:
    """Batched inference on preprocessed arrays; ``grade`` None (or −1 entries) means not known."""
    device = next(model.parameters()).device
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for start in range(0, len(image), batch_size):
            sl = slice(start, start + batch_size)
            given = None if grade is None else torch.as_tensor(grade[sl], device=device)
            out = model(torch.as_tensor(image[sl], device=device), torch.as_tensor(clinical[sl], device=device), given)
            out["response_prob"] = torch.sigmoid(out["response_logit"])
            for key in ("grade_probs", "response_prob", "subtype_probs", "alpha", "embedding"):
                parts.setdefault(key, []).append(out[key].cpu().numpy())
    return {key: np.concatenate(values) for key, values in parts.items()}


def clinical_contributions(model: GradeGuidedNet, image: torch.Tensor, clinical: torch.Tensor,
                           grade: torch.Tensor | None, feature_names: Sequence[str], top: int = 5) -> list[list[tuple[str, float]]]:
    """Per case, the ``top`` clinical features by |gradient × input| on the response logit.

    Gradient × input is zero for a feature at the training mean, which is what a clinician
    expects: an average value explains nothing. Signs: positive pushes towards response.
    """
    clinical = clinical.clone().requires_grad_(True)
    model.zero_grad()
    model(image, clinical, grade)["response_logit"].sum().backward()
    scores = (clinical.grad * clinical).detach().cpu().numpy()
    order = np.argsort(-np.abs(scores), axis=1)[:, :top]
    return [[(feature_names[j], float(row[j])) for j in idx] for row, idx in zip(scores, order)]


def subtype_map(model: GradeGuidedNet, image: torch.Tensor, clinical: torch.Tensor,
                grade: torch.Tensor | None = None, smooth_vox: float = 1.0) -> np.ndarray:
    """Subtype-sensitive spatial map per case on the ROI grid, in [0, 1].

    |∂ q_assigned / ∂ input × input| summed over channels, lightly smoothed, zero outside the
    ROI (where every channel is 0) and scaled by its maximum: where changing the image would
    most change the case's subtype assignment.
    """
    image = image.clone().requires_grad_(True)
    model.zero_grad()
    probs = model(image, clinical, grade)["subtype_probs"]
    probs.gather(1, probs.argmax(1, keepdim=True)).sum().backward()
    saliency = (image.grad * image).abs().sum(1).detach().cpu().numpy()
    roi = (image.detach().abs().sum(1) > 0).cpu().numpy()
    maps = []
    for case, inside in zip(saliency, roi):
        smoothed = ndimage.gaussian_filter(case, smooth_vox) * inside
        maps.append(smoothed / smoothed.max() if smoothed.max() > 0 else smoothed)
    return np.stack(maps).astype(np.float32)


def modality_importance(model: GradeGuidedNet, image: np.ndarray, clinical: np.ndarray, grade: np.ndarray | None,
                        channels: Sequence[str], present: Sequence[str]) -> dict[str, float]:
    """One case: per present modality, |Δ response probability| when its channel is zeroed, summing to 1.

    The α gate weighs source *streams*, each of which sees every channel, so it cannot say how
    much CT, MRI or PET mattered; removing one modality and watching the response move can.
    Zeroing is the model's own "missing" state (the tumour mean after z-scoring), which a model
    trained with modality dropout has seen, so the perturbed input stays in its distribution.
    ``image``/``clinical``/``grade`` carry a batch of one; all variants run in one batch. When no
    modality moves the probability at all, each gets an equal share.
    """
    variants = np.repeat(image, len(present) + 1, axis=0)
    for row, name in enumerate(present, start=1):
        variants[row, list(channels).index(name)] = 0.0
    n = len(variants)
    probs = predict_arrays(model, variants, np.repeat(clinical, n, 0),
                           None if grade is None else np.repeat(grade, n, 0))["response_prob"]
    changes = np.abs(probs[1:] - probs[0]).astype(np.float64)
    total = changes.sum()
    shares = changes / total if total > 0 else np.full(len(present), 1.0 / len(present))
    return {name: float(share) for name, share in zip(present, shares)}
