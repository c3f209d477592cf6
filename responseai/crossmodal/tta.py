"""Test-time adaptation to a new site: only LayerNorm affine parameters and the adapters move.

On an unlabelled batch of the target site, ``steps`` Adam steps minimise the mean prediction
entropy plus ``anchor · ‖θ − θ_source‖²`` (the anchor keeps the few adapted weights near what
was learned on the source sites, so a handful of unlabelled cases cannot drag the model away).
The number of steps is fixed (seed: 5–10), with no stopping rule that would need labels.

Why only these weights: they re-express the site's style (normalisation statistics and the
small modality adapters) while the classifier, the heads, the attention and MLP weights — what
the model knows about breast disease — stay bit-identical, which a test checks. The ViT has
LayerNorms only (no BatchNorm running statistics to re-estimate). The adapted model is a copy;
the source model is never changed. A batch smaller than :data:`MIN_BATCH` is refused: entropy
minimisation on a few cases collapses to whatever class those cases happen to share.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass

import torch
from torch import nn

from responseai.crossmodal.model import CrossModalNet
from responseai.errors import ResponseAIError

log = logging.getLogger(__name__)

MIN_BATCH = 8


class AdaptationError(ResponseAIError):
    """Test-time adaptation cannot run on what was given (too few target cases)."""


@dataclass(frozen=True)
class TTAConfig:
    steps: int = 5
    lr: float = 1e-3
    anchor: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


def adaptable_names(model: CrossModalNet) -> list[str]:
    """Parameter names TTA may change: every LayerNorm's weight / bias and every adapter weight."""
    norms = {name for name, module in model.named_modules() if isinstance(module, nn.LayerNorm)}
    return [name for name, _ in model.named_parameters()
            if name.startswith("adapters.") or name.rsplit(".", 1)[0] in norms]


def adapt(model: CrossModalNet, mammogram: torch.Tensor, pathology: torch.Tensor, has_m: torch.Tensor,
          has_p: torch.Tensor, config: TTAConfig = TTAConfig()) -> CrossModalNet:
    """A copy of ``model`` adapted to one unlabelled target batch (see the module docstring)."""
    n = len(has_m)
    if n < MIN_BATCH:
        raise AdaptationError(f"test-time adaptation needs at least {MIN_BATCH} unlabelled cases of the new site, "
                              f"got {n}; run without adaptation or collect more cases")
    adapted = copy.deepcopy(model).eval()  # eval: no dropout, no MixStyle
    names = set(adaptable_names(adapted))
    params = []
    for name, param in adapted.named_parameters():
        param.requires_grad_(name in names)
        if name in names:
            params.append(param)
    source = [p.detach().clone() for p in params]
    optimiser = torch.optim.Adam(params, lr=config.lr)
    for step in range(config.steps):
        out = adapted(mammogram, pathology, has_m, has_p)
        log_p = out["logits"].log_softmax(1)
        entropy = -(log_p.exp() * log_p).sum(1).mean()
        drift = sum(((p - s) ** 2).sum() for p, s in zip(params, source))
        loss = entropy + config.anchor * drift
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        log.debug("TTA step %d: entropy %.4f drift %.2e", step + 1, float(entropy.detach()), float(drift.detach()))
    for param in adapted.parameters():
        param.requires_grad_(True)
    return adapted.eval()
