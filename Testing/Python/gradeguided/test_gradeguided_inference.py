"""Grade-guided inference for one case: result fields, missing modalities, input errors, the CLI main."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from responseai.errors import GeometryMismatchError, MissingPhaseError
from responseai.gradeguided.preprocess import (
    PetSuvRangeError, Sample, UnknownClinicalColumnError, UnknownGradeError,
)
from responseai.image import Image
from responseai.io import read_image, write_image
from responseai.gradeguided.phantom import MODALITIES, generate_case
from training.gradeguided import WEIGHTS_NAME, TrainConfig, train_gradeguided


def train_tiny_model(out: Path, modality_dropout: float = 0.2) -> Path:
    """A few-second real training run (24 cases, 16³ ROI, 2 epochs): real card, real preprocessing."""
    torch.set_num_threads(1)
    samples = []
    for index in range(24):
        case = generate_case(77, index)
        split = "val" if index % 4 == 0 else "train"
        samples.append(Sample(case.patient_id, case.images, case.mask, case.clinical, case.grade - 1, case.response,
                              split, case.pfs_months, case.pfs_event, case.site.name))
    config = TrainConfig(epochs=2, batch_size=8, roi_size=16, roi_spacing_mm=3.0, modality_dropout=modality_dropout)
    train_gradeguided(samples, out, config)
    return out / WEIGHTS_NAME


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    return train_tiny_model(tmp_path_factory.mktemp("gg-tiny"))


@pytest.fixture(scope="module")
def case():
    return generate_case(5, 2)


def test_prediction_fields_and_map_on_the_mask_grid(tiny_weights, case):
    from responseai.gradeguided.inference import predict_gradeguided

    result = predict_gradeguided(case.images, case.mask, case.clinical, None, tiny_weights)
    assert result.grade_source == "predicted" and result.grade_used == result.predicted_grade
    assert sum(result.grade_probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert 0.0 <= result.response_probability <= 1.0
    assert result.response_class == ("responder" if result.response_probability >= result.threshold else "non-responder")
    assert set(result.alpha) == {"resnet", "direct", "encoded", "clinical"}
    assert sum(result.alpha.values()) == pytest.approx(1.0, abs=1e-5)
    assert result.subtype in result.subtype_probabilities and len(result.clinical_contributions) == 5
    assert not result.spatial_map.grid_differences(case.mask)
    assert 0.0 <= result.spatial_map.array.min() and result.spatial_map.array.max() <= 1.0
    assert result.spatial_map.array.max() > 0
    biopsy = predict_gradeguided(case.images, case.mask, case.clinical, "GIII", tiny_weights)
    assert biopsy.grade_source == "biopsy" and biopsy.grade_used == "G3"
    json.dumps(result.record(), allow_nan=False)


def test_missing_modalities_are_named_and_zero_filled(tiny_weights, case):
    from responseai.gradeguided.inference import predict_gradeguided

    images = {**case.images, "pet": None, "mr_t2": None}
    result = predict_gradeguided(images, case.mask, {"age": "61", "stage": "II"}, None, tiny_weights)
    assert result.missing_modalities == ["mr_t2", "pet"] and "zero channels" in result.notes[0]
    assert set(result.missing_clinical) == {"pdl1", "egfr", "afp", "treatment"}
    with pytest.raises(MissingPhaseError, match="at least one of"):
        predict_gradeguided({m: None for m in MODALITIES}, case.mask, {}, None, tiny_weights)


def test_model_without_modality_dropout_refuses_missing_modalities(tmp_path, case):
    from responseai.gradeguided.inference import predict_gradeguided

    weights = train_tiny_model(tmp_path, modality_dropout=0.0)
    with pytest.raises(MissingPhaseError, match="missing modality volume.*pet.*needs all of"):
        predict_gradeguided({**case.images, "pet": None}, case.mask, {}, None, weights)
    from responseai.gradeguided.evaluation import missing_modality_auc

    with pytest.raises(ValueError, match="without modality dropout"):
        missing_modality_auc(weights, seed=7, n_test=4, n_external=4, n_boot=5)


def test_input_errors_are_specific(tiny_weights, case):
    from responseai.gradeguided.inference import predict_gradeguided

    counts = case.images["pet"].with_array(case.images["pet"].array * 1000)
    with pytest.raises(PetSuvRangeError, match="not SUV"):
        predict_gradeguided({**case.images, "pet": counts}, case.mask, {}, None, tiny_weights)
    far = Image(case.images["ct_art"].array, case.images["ct_art"].spacing, (900.0, 0.0, 0.0))
    with pytest.raises(GeometryMismatchError, match="ct_art"):
        predict_gradeguided({**case.images, "ct_art": far}, case.mask, {}, None, tiny_weights)
    with pytest.raises(UnknownGradeError, match="G4"):
        predict_gradeguided(case.images, case.mask, {}, "G4", tiny_weights)
    with pytest.raises(UnknownClinicalColumnError, match="ki67"):
        predict_gradeguided(case.images, case.mask, {"ki67": 20}, None, tiny_weights)


def test_main_writes_result_and_map_and_logs_progress(tiny_weights, case, tmp_path, caplog):
    from responseai.gradeguided.inference import main

    inputs = tmp_path / "in"
    args = []
    for name, option in (("ct_nc", "--ct-nc"), ("ct_art", "--ct-art"), ("mr_t1", "--mri-t1"), ("pet", "--pet")):
        args += [option, str(write_image(case.images[name], inputs / f"{name}.nrrd"))]
    args += ["--mask", str(write_image(case.mask, inputs / "mask.nrrd")), "--clinical", '{"age": 55, "egfr": "mutant"}',
             "--biopsy-grade", "2", "--weights", str(tiny_weights), "--out", str(tmp_path / "out")]
    caplog.set_level("INFO")
    assert main(args) == 0
    record = json.loads((tmp_path / "out" / "result.json").read_text())
    assert record["grade_source"] == "biopsy" and record["missing_modalities"] == ["ct_pv", "mr_t2"]
    heat = read_image(tmp_path / "out" / "subtype_map.nrrd")
    assert not heat.grid_differences(case.mask)
    assert any("PROGRESS 100" in r.getMessage() for r in caplog.records)
    assert main([*args[:-2], "--out", str(tmp_path / "bad"), "--clinical", '{"ki67": 1}']) == 2
    assert not (tmp_path / "bad").exists()
    np.testing.assert_array_less(-1e-6, heat.array)


def test_modality_importance_covers_the_present_modalities_and_sums_to_one(tiny_weights, case):
    from responseai.gradeguided.inference import predict_gradeguided

    images = {**case.images, "mr_t2": None}
    result = predict_gradeguided(images, case.mask, case.clinical, None, tiny_weights)
    importance = result.modality_importance
    assert list(importance) == ["ct_nc", "ct_art", "ct_pv", "mr_t1", "pet"]
    assert all(value >= 0.0 for value in importance.values())
    assert sum(importance.values()) == pytest.approx(1.0, abs=1e-9)
    assert result.record()["modality_importance"] == importance
    single = predict_gradeguided({"pet": case.images["pet"]}, case.mask, {}, None, tiny_weights)
    assert single.modality_importance == {"pet": pytest.approx(1.0)}


def test_missing_modality_cost_is_measured_per_channel_group(tiny_weights, tmp_path):
    from responseai.gradeguided.evaluation import MISSING_GROUPS, main, missing_modality_auc

    report = missing_modality_auc(tiny_weights, seed=7, n_test=24, n_external=16, n_boot=20)
    assert set(report["auc"]) == set(MISSING_GROUPS) and report["n_test"] + report["n_external"] == 40
    for entry in report["auc"].values():
        for cohort in ("test", "external"):
            assert 0.0 <= entry[cohort]["value"] <= 1.0
            assert entry[cohort]["ci_low"] <= entry[cohort]["value"] <= entry[cohort]["ci_high"]
    assert main(["--weights", str(tiny_weights), "--out", str(tmp_path), "--n-test", "12", "--n-external", "8",
                 "--n-boot", "10"]) == 0
    assert "| PET |" in (tmp_path / "missing_modalities.md").read_text()
