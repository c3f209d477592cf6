"""Model pieces: adapter budget, heads, ordinal link, losses, missing modality."""

from __future__ import annotations

import pytest
import torch

from responseai.crossmodal.model import (
    CrossModalNet, ModelConfig, adapter_fraction, grade_probabilities, info_nce, irm_penalty, mixstyle, multitask_loss,
)

SMALL = ModelConfig(image_size=32, patch_size=8, hidden_size=32, mlp_dim=64, num_layers=2, num_heads=2, adapter_dim=2,
                    embed_dim=16, head_hidden=32)


@pytest.mark.parametrize("config", [ModelConfig(), ModelConfig.paper()], ids=["cpu", "paper"])
def test_adapters_are_under_five_percent_of_the_encoder(config):
    model = CrossModalNet(config)
    assert adapter_fraction(model) < 0.05
    if config.hidden_size == 768:
        assert model.config.image_size == 224 and model.config.patch_size == 16 and len(model.encoder.blocks) == 12


def _batch(n=6, size=32):
    torch.manual_seed(0)
    return {"mammogram": torch.randn(n, 1, size, size), "pathology": torch.randn(n, 3, size, size),
            "has_m": torch.ones(n, dtype=torch.bool), "has_p": torch.ones(n, dtype=torch.bool),
            "label": torch.arange(n) % 4, "grade": torch.tensor([-1, -1, 0, 1, 2, 0])[:n],
            "domain": torch.arange(n) % 3, "mask": torch.rand(n, 1, size, size) > 0.9}


def test_forward_shapes_losses_and_backward():
    model = CrossModalNet(SMALL).train()
    b = _batch()
    out = model(b["mammogram"], b["pathology"], b["has_m"], b["has_p"], b["domain"])
    assert out["logits"].shape == (6, 4) and out["mask_logits"].shape == (6, 1, 32, 32)
    assert out["tokens_m"].shape == (6, 16, 32)
    total, parts = multitask_loss(model, out, b, irm_weight=1.0)
    assert set(parts) == {"classification", "localisation", "grade", "alignment", "irm"}
    total.backward()
    assert model.log_sigma.grad is not None and model.adapters["pathology"][0].up.weight.grad is not None


def test_ordinal_thresholds_stay_ordered_and_probabilities_sum_to_one():
    model = CrossModalNet(SMALL)
    with torch.no_grad():
        model.grade_gaps.fill_(-20.0)
    t = model.thresholds()
    assert (t[1:] > t[:-1]).all()
    probs = grade_probabilities(model, torch.linspace(-5, 5, 7))
    assert torch.allclose(probs.sum(1), torch.ones(7)) and (probs >= 0).all()
    assert probs[0].argmax() == 0 and probs[-1].argmax() == 2  # higher score → higher grade


def test_info_nce_rewards_same_patient_pairs():
    emb = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
    assert info_nce(emb, emb) < info_nce(emb, emb.roll(1, 0))


def test_irm_penalty_is_positive_for_random_logits():
    labels, domains = torch.tensor([0, 1, 0, 1]), torch.tensor([0, 0, 1, 1])
    assert irm_penalty(torch.randn(4, 2), labels, domains) > 0


def test_mixstyle_changes_statistics_only_in_training():
    tokens = torch.randn(6, 16, 8) * torch.arange(1, 7).float()[:, None, None]
    mixed = mixstyle(tokens, torch.tensor([0, 0, 1, 1, 2, 2]), 0.1)
    assert mixed.shape == tokens.shape and not torch.allclose(mixed.std(1), tokens.std(1))
    model = CrossModalNet(SMALL).eval()
    x = torch.randn(2, 1, 32, 32)
    assert torch.equal(model.encode(x, "mammogram", torch.tensor([0, 1])), model.encode(x, "mammogram"))


def test_one_modality_still_gives_a_prediction():
    model = CrossModalNet(SMALL).eval()
    b = _batch(2)
    has = torch.tensor([True, False])
    out = model(b["mammogram"], b["pathology"], has, ~has)
    assert torch.isfinite(out["logits"]).all()
