"""Hierarchical cross-attention fusion with learnable missing-modality compensation and a Cox head (seed 001).

One network, configured by its model card, over whichever token blocks a cohort has:

- **tokenisers** — ``tiles``: a small CNN per RGB pathology tile, one token per tile;
  ``image``: a small CNN over the ultrasound image, one token per cell of its last feature map
  (+ position embedding); ``vector``: a sentence embedding projected to a few tokens;
  ``grouped``: one token per clinical variable or gene = W_v·x_v + e_v (value embedding +
  variable embedding; a categorical variable's one-hot columns form one group);
- **intra-modality** cross-attention: ``n_queries`` learnable queries attend over the block's
  tokens; their mean is the modality's summary token (+ a modality embedding);
- **missing modalities** — with ``compensation`` the summary of a missing block is replaced by a
  learned per-modality embedding plus a projection of the mean of the *present* summaries
  (so it is conditioned on them) and a "missing" presence embedding; without it the block is
  only masked out of attention and pooling (the ablation the paper compares against);
- **inter-modality** cross-attention (every summary attends to the visible summaries), one
  fusion transformer layer, then a learned read-out query whose attention weights over the
  modality tokens are reported per patient;
- **Cox head**: a bias-free linear log-risk (the baseline hazard lives in the card).

Training uses random modality dropout (:func:`drop_modalities`) so compensation is learnt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from responseai.errors import ResponseAIError


class TokenBlockError(ResponseAIError):
    """A modality's input block has the wrong shape or width for the model; the message names both."""


class NoModalityError(ResponseAIError):
    """Every modality of a patient is missing: there is nothing to fuse."""


def _cnn(in_channels: int, width: int, d_model: int) -> nn.Sequential:
    """Three strided conv blocks: 32 px → 4 px, 48 px → 6 px; small enough to train on CPU."""
    layers: list[nn.Module] = []
    channels = [in_channels, width, 2 * width, d_model]
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.GELU()]
    return nn.Sequential(*layers)


class TileTokens(nn.Module):
    """(B, T, C, H, W) tiles → (B, T, d): one token per tile (global average of the CNN map)."""

    def __init__(self, spec: Mapping, d_model: int) -> None:
        super().__init__()
        self.cnn = _cnn(int(spec["channels"]), int(spec.get("width", 16)), d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        return self.cnn(x.flatten(0, 1)).mean((2, 3)).view(b, t, -1)


class ImageTokens(nn.Module):
    """(B, C, H, W) image → (B, h·w, d): one token per cell of the last feature map, with position."""

    def __init__(self, spec: Mapping, d_model: int) -> None:
        super().__init__()
        self.cnn = _cnn(int(spec["channels"]), int(spec.get("width", 16)), d_model)
        cells = (int(spec["size"]) // 8) ** 2
        self.position = nn.Parameter(torch.zeros(cells, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cnn(x).flatten(2).transpose(1, 2) + self.position


class VectorTokens(nn.Module):
    """(B, D) embedding (report text) → (B, k, d): k learned projections the queries can choose from."""

    def __init__(self, spec: Mapping, d_model: int) -> None:
        super().__init__()
        self.k = int(spec.get("tokens", 4))
        self.project = nn.Sequential(nn.LayerNorm(int(spec["dim"])), nn.Linear(int(spec["dim"]), self.k * d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(x).view(x.shape[0], self.k, -1)


class GroupedTokens(nn.Module):
    """(B, F) features → (B, G, d): token g = W_g·x_g + e_g over the columns of group g."""

    def __init__(self, spec: Mapping, d_model: int) -> None:
        super().__init__()
        groups = [int(w) for w in spec["groups"]]
        width = max(groups)
        index = torch.full((len(groups), width), -1, dtype=torch.long)
        start = 0
        for g, w in enumerate(groups):
            index[g, :w] = torch.arange(start, start + w)
            start += w
        self.register_buffer("index", index, persistent=False)
        self.value = nn.Parameter(torch.randn(len(groups), width, d_model) * (1.0 / np.sqrt(width)))
        self.variable = nn.Parameter(torch.randn(len(groups), d_model) * 0.02)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = torch.where(self.index >= 0, x[:, self.index.clamp_min(0)], torch.zeros((), dtype=x.dtype))
        return self.norm(torch.einsum("bgk,gkd->bgd", padded, self.value) + self.variable)


TOKENISERS = {"tiles": TileTokens, "image": ImageTokens, "vector": VectorTokens, "grouped": GroupedTokens}


def expected_shape(spec: Mapping) -> tuple:
    """The per-patient shape a block must have (None: any length), for :func:`check_blocks`."""
    kind = spec["kind"]
    if kind == "tiles":
        return (None, int(spec["channels"]), int(spec["size"]), int(spec["size"]))
    if kind == "image":
        return (int(spec["channels"]), int(spec["size"]), int(spec["size"]))
    if kind == "vector":
        return (int(spec["dim"]),)
    return (int(sum(spec["groups"])),)


def check_blocks(blocks: Mapping[str, np.ndarray], config: Mapping) -> None:
    """Refuse an unknown block or one whose per-patient shape differs from the card's (batch first)."""
    specs = config["modalities"]
    for name, block in blocks.items():
        if name not in specs:
            raise TokenBlockError(f"the model has no '{name}' block; it takes {', '.join(specs)}")
        want, got = expected_shape(specs[name]), tuple(np.shape(block))[1:]
        if len(got) != len(want) or any(w is not None and w != g for w, g in zip(want, got)):
            shown = tuple("any" if w is None else w for w in want)
            raise TokenBlockError(f"{name}: block of per-patient shape {got} does not fit the model, which expects "
                                  f"{shown}" + (f" ({want[0]} features)" if specs[name]["kind"] == "grouped" else ""))


class RecurrenceNet(nn.Module):
    """Tokenise → intra-modality query attention → compensate / mask → inter-modality fusion → log-risk."""

    def __init__(self, config: Mapping) -> None:
        super().__init__()
        self.config = dict(config)
        d, heads, n_q = int(config["d_model"]), int(config["n_heads"]), int(config["n_queries"])
        self.names: list[str] = list(config["modalities"])
        self.compensation = bool(config["compensation"])
        dropout = float(config.get("dropout", 0.1))
        self.tokenisers = nn.ModuleDict({m: TOKENISERS[s["kind"]](s, d) for m, s in config["modalities"].items()})
        self.queries = nn.ParameterDict({m: nn.Parameter(torch.randn(n_q, d) * 0.1) for m in self.names})
        self.intra = nn.ModuleDict({m: nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
                                    for m in self.names})
        self.intra_norm = nn.LayerNorm(d)
        self.modality_embedding = nn.Parameter(torch.randn(len(self.names), d) * 0.02)
        self.presence_embedding = nn.Parameter(torch.zeros(2, d))  # 0: missing (compensated), 1: present
        self.compensation_base = nn.Parameter(torch.randn(len(self.names), d) * 0.02)
        self.compensation_context = nn.ModuleDict({m: nn.Linear(d, d) for m in self.names})
        self.inter = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.inter_norm = nn.LayerNorm(d)
        self.fusion = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout, batch_first=True, norm_first=True)
        self.readout = nn.Parameter(torch.randn(1, 1, d) * 0.1)
        self.readout_attention = nn.MultiheadAttention(d, 1, batch_first=True)
        self.head = nn.Linear(d, 1, bias=False)

    def summaries(self, blocks: Mapping[str, torch.Tensor], batch: int) -> torch.Tensor:
        """(B, M, d) modality summary tokens (a block absent from ``blocks`` is all zeros)."""
        out = []
        for m in self.names:
            if m not in blocks:
                out.append(self.modality_embedding.new_zeros(batch, self.modality_embedding.shape[1]))
                continue
            tokens = self.tokenisers[m](blocks[m])
            query = self.queries[m].expand(batch, -1, -1)
            attended, _ = self.intra[m](query, tokens, tokens, need_weights=False)
            out.append(self.intra_norm(attended.mean(1)))
        return torch.stack(out, 1) + self.modality_embedding

    def compensate(self, summary: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Missing summaries → learned embedding + projection of the mean present summary."""
        weight = present.unsqueeze(-1).to(summary.dtype)
        context = (summary * weight).sum(1) / weight.sum(1).clamp_min(1.0)
        filled = torch.stack([self.compensation_base[i] + self.compensation_context[m](context)
                              for i, m in enumerate(self.names)], 1) + self.modality_embedding
        return torch.where(present.unsqueeze(-1), summary, filled) + self.presence_embedding[present.long()]

    def forward(self, blocks: Mapping[str, torch.Tensor], present: torch.Tensor) -> dict[str, torch.Tensor]:
        """``present`` (B, M) bool in :attr:`names` order → log-risk (B,) and read-out weights (B, M)."""
        present = present.bool()
        if not present.any(1).all():
            raise NoModalityError("a patient has every modality missing: nothing to predict from")
        summary = self.summaries(blocks, present.shape[0])
        if self.compensation:
            tokens, hidden = self.compensate(summary, present), None
        else:
            tokens, hidden = summary * present.unsqueeze(-1), ~present
        attended, _ = self.inter(tokens, tokens, tokens, key_padding_mask=hidden, need_weights=False)
        fused = self.fusion(self.inter_norm(tokens + attended), src_key_padding_mask=hidden)
        pooled, weights = self.readout_attention(self.readout.expand(len(fused), -1, -1), fused, fused,
                                                 key_padding_mask=hidden)
        return {"log_risk": self.head(pooled[:, 0]).squeeze(-1), "modality_weights": weights[:, 0]}


def build_model(card_or_config: Mapping) -> RecurrenceNet:
    """The network a card describes (``architecture.config``), or from a bare config."""
    config = card_or_config.get("architecture", {}).get("config", card_or_config)
    return RecurrenceNet(config)


def drop_modalities(present: np.ndarray, p: float, rng: np.random.Generator,
                    droppable: Sequence[bool] | None = None) -> np.ndarray:
    """Hide each present, droppable modality with probability ``p``, never all of a patient's."""
    if p <= 0:
        return present
    droppable = np.ones(present.shape[1], bool) if droppable is None else np.asarray(droppable, bool)
    keep = present & ~((rng.random(present.shape) < p) & droppable)
    lost = ~keep.any(1)
    for row in np.flatnonzero(lost):  # give back one of the patient's own modalities
        keep[row, rng.choice(np.flatnonzero(present[row]))] = True
    return keep
