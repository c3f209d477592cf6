"""Fixtures of the cross-modal tests: a tiny untrained model saved as real weights + card."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """An untrained small CrossModalNet written through ``save_model`` (the code path, not the accuracy)."""
    import torch

    from responseai.crossmodal.constants import CLASSES, DOMAINS, GRADES, MODALITIES, TASK
    from responseai.crossmodal.model import CrossModalNet, ModelConfig
    from responseai.weights import save_model

    torch.manual_seed(0)
    config = ModelConfig(image_size=32, patch_size=8, hidden_size=32, mlp_dim=64, num_layers=2, num_heads=2,
                         adapter_dim=2, embed_dim=16, head_hidden=32)
    path = tmp_path_factory.mktemp("cm-weights") / "crossmodal.safetensors"
    card = {"name": "crossmodal-test", "version": "0.0.0", "task": TASK,
            "architecture": {"name": "CrossModalNet", "config": config.to_dict()},
            "inputs": {"modalities": list(MODALITIES), "domains": list(DOMAINS)},
            "classes": {"diagnosis": list(CLASSES), "grade": list(GRADES)}, "threshold": None,
            "preprocessing": {"image_size": 32}, "training_data": {"cohort": "none (untrained test model)"},
            "metrics": {}}
    save_model(CrossModalNet(config), card, path)
    return path
