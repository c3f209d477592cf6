"""The fusion network: shapes, masks vs compensation, modality dropout, bad blocks, and that it learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from responseai.recurrence.fit import CohortArrays, FitConfig, fit_network, network_config, predict_risk
from responseai.recurrence.model import NoModalityError, RecurrenceNet, TokenBlockError, check_blocks, drop_modalities

SPECS = {"pathology": {"kind": "tiles", "channels": 3, "size": 32, "width": 4},
         "ultrasound": {"kind": "image", "channels": 1, "size": 48, "width": 4},
         "report": {"kind": "vector", "dim": 8, "tokens": 2},
         "clinical": {"kind": "grouped", "groups": [2, 3, 1]}}


def _blocks(n: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"pathology": torch.randn(n, 2, 3, 32, 32), "ultrasound": torch.randn(n, 1, 48, 48),
            "report": torch.randn(n, 8), "clinical": torch.randn(n, 6)}


@pytest.mark.parametrize("compensation", [True, False])
def test_forward_gives_a_risk_and_weights_over_present_modalities(compensation):
    model = RecurrenceNet(network_config(SPECS, FitConfig(d_model=8, n_heads=2, compensation=compensation))).eval()
    present = torch.tensor([[True, True, True, True], [False, True, False, True]])
    out = model(_blocks(2), present)
    assert out["log_risk"].shape == (2,) and out["modality_weights"].shape == (2, 4)
    assert torch.allclose(out["modality_weights"].sum(1), torch.ones(2))
    if not compensation:  # a masked modality gets no attention and cannot change the risk
        assert out["modality_weights"][1, 0] == 0 and out["modality_weights"][1, 2] == 0
        changed = _blocks(2)
        changed["pathology"][1] += 5.0
        assert torch.allclose(model(changed, present)["log_risk"][1], out["log_risk"][1])


def test_every_modality_missing_is_refused():
    model = RecurrenceNet(network_config(SPECS, FitConfig(d_model=8, n_heads=2)))
    with pytest.raises(NoModalityError, match="every modality missing"):
        model(_blocks(2), torch.tensor([[True, False, False, False], [False] * 4]))


def test_a_block_of_the_wrong_width_names_the_block_and_the_width():
    with pytest.raises(TokenBlockError, match=r"clinical: .*\(5,\).*\(6,\) \(6 features\)"):
        check_blocks({"clinical": np.zeros((3, 5))}, {"modalities": SPECS})
    with pytest.raises(TokenBlockError, match="no 'molecular' block"):
        check_blocks({"molecular": np.zeros((3, 76))}, {"modalities": SPECS})
    check_blocks({k: v.numpy() for k, v in _blocks(2).items()}, {"modalities": SPECS})


def test_modality_dropout_never_hides_every_modality():
    rng = np.random.default_rng(0)
    present = rng.random((500, 4)) < 0.7
    present[:, 3] |= ~present.any(1)
    kept = drop_modalities(present, 0.9, rng, [True, True, True, False])
    assert kept.any(1).all() and not (kept & ~present).any() and kept[:, 3].sum() == present[:, 3].sum()


def test_the_network_learns_a_clinical_risk():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 3)).astype(np.float32)
    time = rng.exponential(np.exp(-1.5 * x[:, 0])) + 0.01
    event = rng.random(300) < 0.8
    data = CohortArrays(["clinical"], {"clinical": x}, np.ones((300, 1), bool), time, event)
    torch.set_num_threads(1)
    model, history = fit_network(data, {"clinical": {"kind": "grouped", "groups": [1, 1, 1]}},
                                 FitConfig(d_model=8, n_heads=2, epochs=25, lr=1e-2, modality_dropout=0.0))
    from sksurv.metrics import concordance_index_censored

    c = concordance_index_censored(event, time, predict_risk(model, data)[0])[0]
    oracle = concordance_index_censored(event, time, x[:, 0])[0]
    assert c > oracle - 0.05 and history[-1]["train_loss"] < history[0]["train_loss"]


def test_training_refuses_outcomes_it_cannot_learn_from():
    from responseai.recurrence.survival import SurvivalDataError

    data = CohortArrays(["clinical"], {"clinical": np.zeros((4, 1), np.float32)}, np.ones((4, 1), bool),
                        np.array([1.0, 2.0, 3.0, 4.0]), np.zeros(4, bool))
    with pytest.raises(SurvivalDataError, match="every patient is censored"):
        fit_network(data, {"clinical": {"kind": "grouped", "groups": [1]}}, FitConfig(epochs=1))
