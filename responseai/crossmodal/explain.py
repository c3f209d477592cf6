"""Cross-attention between mammogram and pathology patches: where on the mammogram, which tissue.

``A_ij = softmax_j(q_i · k_j / √D)`` with q / k the projected (alignment-space) tokens of
mammogram patch i and pathology patch j, as in the seed. The seed's heatmap ``α_i = Σ_j A_ij``
is identically 1 under a softmax over j, so the heatmap here is the same sum over the *other*
normalisation, ``α_i = Σ_j softmax_i(q_i · k_j / √D)``: how much of the pathology patches'
attention lands on mammogram patch i (scaled to [0, 1] by its maximum). The high-attention
region is the top 10 % of mammogram patches (at least one); the evidence is the K pathology
patches with the largest mean ``A_ij`` over that region. It shows association in the learned
embedding, not causation, and is only as meaningful as the alignment (see docs/crossmodal.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from responseai.crossmodal.constants import TOP_K
from responseai.crossmodal.model import CrossModalNet

HIGH_FRACTION = 0.10


@dataclass
class Evidence:
    """The heatmap on the patch grid and the chosen pathology patches."""

    heatmap: np.ndarray  # (g, g) in [0, 1]
    high_patches: np.ndarray  # flat indices of the high-attention mammogram patches
    top_patches: list[tuple[int, int, int, float]]  # (tile index, patch row, patch col, mean attention)


@torch.no_grad()
def cross_attention(model: CrossModalNet, tokens_m: torch.Tensor, tokens_p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(A row-softmax over pathology patches (N, M), α over mammogram patches (N,)); tokens (N, D), (M, D)."""
    q, k = model.project(tokens_m), model.project(tokens_p)
    logits = q @ k.T / math.sqrt(q.shape[1])
    return logits.softmax(1), logits.softmax(0).sum(1)


def evidence(model: CrossModalNet, tokens_m: torch.Tensor, tokens_p: torch.Tensor, k: int = TOP_K) -> Evidence:
    """Heatmap, high-attention region and the top-k pathology patches (``tokens_p`` (T, M, D) for T tiles)."""
    grid = model.config.grid
    per_tile = tokens_p.shape[1]
    attention, alpha = cross_attention(model, tokens_m, tokens_p.reshape(-1, tokens_p.shape[-1]))
    alpha = alpha / alpha.max()
    n_high = max(1, int(round(HIGH_FRACTION * len(alpha))))
    high = torch.topk(alpha, n_high).indices
    score = attention[high].mean(0)
    top = torch.topk(score, min(k, len(score)))
    patches = [(int(j) // per_tile, (int(j) % per_tile) // grid, int(j) % grid, float(s))
               for s, j in zip(top.values, top.indices)]
    return Evidence(alpha.reshape(grid, grid).numpy(), high.numpy(), patches)
