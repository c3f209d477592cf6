"""Grade-guided fusion network: shapes, convex α, biopsy-grade override, weights round trip, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from responseai.gradeguided.preprocess import Sample
from responseai.gradeguided.reference import design, grade_interactions, roi_statistics
from responseai.gradeguided.model import (
    ABLATIONS, GradeGuidedNet, build_model, clinical_contributions, order_subtypes, predict_arrays,
    roi_moments, subtype_map,
)
from responseai.gradeguided.phantom import assign_split, generate_case
from responseai.weights import load_model
from training.gradeguided import TASK, WEIGHTS_NAME, TrainConfig, train_gradeguided


def _inputs(batch: int = 4, size: int = 16, n_clinical: int = 18):
    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch, 6, size, size, size, generator=generator), torch.randn(batch, n_clinical, generator=generator)


@pytest.mark.parametrize("ablation", ABLATIONS)
def test_forward_shapes_and_alpha_is_convex(ablation):
    torch.manual_seed(0)
    model = GradeGuidedNet({"ablation": ablation}).eval()
    image, clinical = _inputs()
    out = model(image, clinical, torch.tensor([0, 1, 2, -1]))
    assert out["grade_logits"].shape == (4, 3) and out["response_logit"].shape == (4,)
    assert out["subtype_probs"].shape == (4, 3)
    torch.testing.assert_close(out["subtype_probs"].sum(1), torch.ones(4))
    alpha = out["alpha"]
    expected_sources = {"imaging_only": 3, "early_fusion": 0, "deep_fusion": 4, "grade_guided": 4}[ablation]
    assert alpha.shape == (4, expected_sources)
    if expected_sources:
        assert torch.all(alpha >= 0)
        torch.testing.assert_close(alpha.sum(1), torch.ones(4))


def test_biopsy_grade_overrides_the_predicted_grade():
    torch.manual_seed(1)
    model = GradeGuidedNet({"ablation": "grade_guided"}).eval()
    image, clinical = _inputs(batch=1)
    with torch.no_grad():
        outputs = [model(image, clinical, torch.tensor([g])) for g in (0, 1, 2, -1)]
        soft = model(image, clinical, None)
    responses = [o["response_logit"].item() for o in outputs]
    assert len({round(r, 6) for r in responses[:3]}) == 3  # the given grade changes the answer
    assert responses[3] == pytest.approx(soft["response_logit"].item())  # −1 means "use the prediction"
    torch.testing.assert_close(outputs[0]["grade_probs"], outputs[2]["grade_probs"])  # grading ignores the given grade
    unguided = GradeGuidedNet({"ablation": "deep_fusion"}).eval()
    with torch.no_grad():
        a, b = (unguided(image, clinical, torch.tensor([g]))["response_logit"] for g in (0, 2))
    torch.testing.assert_close(a, b)


def test_response_is_one_linear_model_per_grade_mixed_by_the_grade_weights():
    torch.manual_seed(3)
    model = GradeGuidedNet({"ablation": "grade_guided"}).eval()
    features = torch.randn(2, model.response_head.in_features)
    per_grade = model.response_head(features)
    for g in range(3):
        onehot = torch.nn.functional.one_hot(torch.tensor([g, g]), 3).float()
        torch.testing.assert_close(model._response_logit(features, onehot), per_grade[:, g])
    soft = torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.2, 0.2]])
    torch.testing.assert_close(model._response_logit(features, soft), (per_grade * soft).sum(1))
    assert GradeGuidedNet({"ablation": "deep_fusion"}).response_head.out_features == 1


def test_renumbering_subtypes_changes_nothing_but_their_order():
    """Index 0 is S1 in the card; training renumbers the prototypes by responder rate."""
    torch.manual_seed(5)
    model = GradeGuidedNet({"ablation": "grade_guided"}).eval()
    with torch.no_grad():
        model.subtype_response.copy_(torch.tensor([-1.0, 2.0, 0.5]))
    image, clinical = _inputs(batch=3)
    with torch.no_grad():
        before = model(image, clinical, torch.tensor([0, 1, 2]))
        order_subtypes(model, [1, 2, 0])
        after = model(image, clinical, torch.tensor([0, 1, 2]))
    assert model.subtype_response.tolist() == [2.0, 0.5, -1.0]
    torch.testing.assert_close(after["response_logit"], before["response_logit"])
    torch.testing.assert_close(after["subtype_probs"], before["subtype_probs"][:, [1, 2, 0]])


def test_roi_moments_match_numpy():
    image = torch.zeros(1, 2, 8, 8, 8)
    image[0, :, 2:6, 2:6, 2:6] = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(4))
    moments = roi_moments(image)[0].numpy()
    inside = image[0, :, 2:6, 2:6, 2:6].reshape(2, -1).numpy()
    np.testing.assert_allclose(moments[:2], inside.mean(1), atol=1e-5)
    np.testing.assert_allclose(moments[2:4], inside.std(1), atol=1e-3)
    np.testing.assert_allclose(moments[4:6], np.clip(inside - 1, 0, None).mean(1), atol=1e-5)
    np.testing.assert_allclose(moments[6:8], np.clip(-inside - 1, 0, None).mean(1), atol=1e-5)
    assert moments[8] == pytest.approx(64 / 1000)
    reference = roi_statistics(image.numpy())[0]
    np.testing.assert_allclose(reference[:2], inside.mean(1), atol=1e-5)
    assert reference[-1] == pytest.approx(64 / 1000)


def test_reference_grade_interactions_need_known_grades():
    x = grade_interactions(np.ones((3, 2)), np.array([0, 1, 2]), 3)
    assert x.shape == (3, 3 + 3 * 2) and x[1].tolist() == [0, 1, 0, 0, 0, 1, 1, 0, 0]
    with pytest.raises(ValueError, match="known grade"):
        grade_interactions(np.ones((2, 2)), np.array([0, -1]), 3)
    assert design(np.zeros((2, 6, 4, 4, 4)), np.ones((2, 5)), np.array([0, 2]), 3, False).shape == (2, 4 * 6 + 1 + 5)


def test_interpretation_outputs():
    torch.manual_seed(2)
    model = GradeGuidedNet({"ablation": "grade_guided"}).eval()
    image, clinical = _inputs(batch=2)
    image[:, :, :3] = 0  # outside the ROI
    maps = subtype_map(model, image, clinical)
    assert maps.shape == (2, 16, 16, 16) and maps.min() >= 0 and maps.max() == pytest.approx(1.0)
    assert np.all(maps[:, :3] == 0)
    names = [f"f{i}" for i in range(18)]
    top = clinical_contributions(model, image, clinical, None, names, top=3)
    assert len(top) == 2 and all(len(t) == 3 and t[0][0] in names for t in top)
    assert abs(top[0][0][1]) >= abs(top[0][2][1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A short real training run on a tiny phantom cohort (20³ ROI, a few epochs)."""
    torch.set_num_threads(1)
    samples = []
    for index in range(96):
        case = generate_case(41, index)
        samples.append(Sample(case.patient_id, case.images, case.mask, case.clinical, case.grade - 1, case.response,
                              assign_split(41, index, case.site), case.pfs_months, case.pfs_event, case.site.name))
    out = tmp_path_factory.mktemp("gg")
    config = TrainConfig(epochs=20, batch_size=8, roi_size=20, roi_spacing_mm=2.4)
    return train_gradeguided(samples, out, config), samples, out


def test_training_learns_grade_on_held_out_cases(trained):
    result, samples, _ = trained
    held = np.array([i for i, s in enumerate(samples) if s.split in ("test", "external")])
    grade = result.inputs.grade[held]
    pred = predict_arrays(result.model, result.inputs.image[held], result.inputs.clinical[held], None)
    accuracy = float(np.mean(pred["grade_probs"].argmax(1) == grade))
    majority = np.bincount(grade).max() / len(grade)
    assert accuracy > majority + 0.1, (accuracy, majority)


def test_saved_model_round_trip_with_card(trained):
    result, _, out = trained
    model, card = load_model(out / WEIGHTS_NAME, build_model, expected_task=TASK)
    assert card["classes"]["grade"] == ["G1", "G2", "G3"] and 0 <= card["threshold"] <= 1
    rates = [r for r in card["metrics"]["train_subtype_responder_rate"] if r is not None]
    assert rates == sorted(rates, reverse=True)  # S1 has the highest responder rate
    assert card["classes"]["subtype"] == ["S1", "S2", "S3"]
    pre = card["preprocessing"]
    assert set(pre["roi"]["tumour_mean"]) == {"ct_nc", "ct_art", "ct_pv", "pet"}
    assert len(pre["adjacency"]) == len(card["inputs"]["clinical_features"])
    torch.testing.assert_close(model.clinical.adjacency, torch.tensor(pre["adjacency"]))
    x = result.inputs
    a = predict_arrays(result.model, x.image[:5], x.clinical[:5], x.grade[:5])
    b = predict_arrays(model, x.image[:5], x.clinical[:5], x.grade[:5])
    np.testing.assert_allclose(a["response_prob"], b["response_prob"], rtol=1e-5, atol=1e-6)


def test_modality_dropout_keeps_at_least_one_channel():
    from training.gradeguided import drop_modalities

    batch = torch.ones(64, 6, 2, 2, 2)
    rng = np.random.default_rng(0)
    assert torch.equal(drop_modalities(batch, 0.0, rng), batch)
    kept = drop_modalities(batch, 1.0, rng)[:, :, 0, 0, 0]
    assert torch.all(kept.sum(1) == 1)  # everything dropped → exactly one channel restored
    partial = drop_modalities(batch, 0.3, rng)[:, :, 0, 0, 0]
    assert torch.all(partial.sum(1) >= 1) and 0.5 < float(partial.mean()) < 0.9


def test_freezing_the_grade_head_leaves_the_rest_trainable():
    from training.gradeguided import _freeze_grade_head

    model = GradeGuidedNet({"ablation": "grade_guided"})
    optimiser = _freeze_grade_head(model, TrainConfig(lr=1e-3, finetune_lr_factor=0.3))
    frozen = {id(p) for p in model.grade_head.parameters()}
    in_optimiser = {id(p) for group in optimiser.param_groups for p in group["params"]}
    assert frozen and not frozen & in_optimiser
    assert in_optimiser == {id(p) for p in model.parameters() if id(p) not in frozen}
    assert optimiser.param_groups[0]["lr"] == pytest.approx(3e-4)


def test_report_json_has_no_nan():
    import json

    from training.gradeguided_ablation import json_safe

    report = json_safe({"a": float("nan"), "b": [np.float32(1.5), np.inf], "c": {"d": np.int64(3)}})
    assert report == {"a": None, "b": [1.5, None], "c": {"d": 3}}
    json.dumps(report, allow_nan=False)
