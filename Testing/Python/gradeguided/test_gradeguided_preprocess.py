"""Seed 003 preprocessing: ROI grid, fitted statistics, SMOTE on training strata, input errors."""

from __future__ import annotations

import numpy as np
import pytest

from responseai.errors import ClinicalValueError, GeometryMismatchError, InvalidImageError
from responseai.gradeguided.preprocess import (
    PetSuvRangeError, RoiSpec, UnknownClinicalColumnError, UnknownGradeError, encode_clinical,
    fit_clinical_encoder, parse_grade, preprocess_images, resample_case, smote_oversample,
)
from responseai.image import Image
from responseai.gradeguided.phantom import generate_case


@pytest.fixture(scope="module")
def case():
    return generate_case(31, 2)


MRI_CV = (("mr_t1", 0.11), ("mr_t2", 0.18))
QUANTITATIVE_STATS = {"tumour_mean": (("ct_nc", 50.0), ("ct_art", 100.0), ("ct_pv", 120.0), ("pet", 3.0)),
                      "tumour_std": (("ct_nc", 15.0), ("ct_art", 40.0), ("ct_pv", 35.0), ("pet", 1.5))}


def test_roi_is_masked_and_on_the_reference_grid(case):
    spec = RoiSpec(size=24, spacing_mm=2.0, tumour_cv=MRI_CV, **QUANTITATIVE_STATS)
    x = preprocess_images(case.images, case.mask, spec)
    _, roi = resample_case(case.images, case.mask, spec)
    assert x.shape == (6, 24, 24, 24) and x.dtype == np.float32
    assert np.all(x[:, ~roi] == 0) and roi.sum() > 100
    assert abs(x[3][roi].mean()) < 1e-3  # MRI: centred on its own tumour mean


def test_mri_scaling_ignores_scanner_gain_but_keeps_heterogeneity():
    """A per-image z-score would give every tumour unit spread; cv · mean keeps the texture."""
    spec = RoiSpec(tumour_cv=MRI_CV, **QUANTITATIVE_STATS)
    solid = [c for c in (generate_case(33, i) for i in range(40)) if c.truth["necrotic_fraction"] == 0]
    smooth = min(solid, key=lambda c: c.truth["heterogeneity"])
    rough = max(solid, key=lambda c: c.truth["heterogeneity"])
    spread = {}
    for label, c in (("smooth", smooth), ("rough", rough)):
        x = preprocess_images(c.images, c.mask, spec)
        brighter = {**c.images, "mr_t1": c.images["mr_t1"].with_array(c.images["mr_t1"].array * 3.0)}
        np.testing.assert_allclose(preprocess_images(brighter, c.mask, spec)[3], x[3], atol=1e-4)
        spread[label] = x[3][x[3] != 0].std()
    assert rough.truth["heterogeneity"] - smooth.truth["heterogeneity"] > 0.4
    assert spread["rough"] > 1.5 * spread["smooth"]


def test_pet_outside_suv_range_is_refused(case):
    images = dict(case.images)
    images["pet"] = images["pet"].with_array(images["pet"].array * 1000.0)  # Bq/mL, not SUV
    with pytest.raises(PetSuvRangeError, match="not SUV"):
        preprocess_images(images, case.mask, RoiSpec())
    assert issubclass(PetSuvRangeError, InvalidImageError)


def test_modality_not_overlapping_is_a_geometry_error(case):
    images = dict(case.images)
    t2 = images["mr_t2"]
    images["mr_t2"] = Image(t2.array, t2.spacing, tuple(np.asarray(t2.origin) + 500.0), t2.direction)
    with pytest.raises(GeometryMismatchError, match="mr_t2"):
        preprocess_images(images, case.mask, RoiSpec())


def test_grade_labels_and_unknown_grade():
    assert [parse_grade(v) for v in ("G1", "GII", "3", 2, "grade 3", None, "")] == [0, 1, 2, 1, 2, None, None]
    with pytest.raises(UnknownGradeError, match="G4"):
        parse_grade("G4")


def test_unknown_clinical_column_and_bad_value():
    records = [generate_case(32, i).clinical for i in range(12)]
    encoder = fit_clinical_encoder(records)
    with pytest.raises(UnknownClinicalColumnError, match="ki67"):
        encode_clinical(encoder, [{**records[0], "ki67": 20}])
    with pytest.raises(ClinicalValueError, match="EGFR"):
        encode_clinical(encoder, [{**records[0], "egfr": "amplified"}])
    assert encode_clinical(encoder, records).shape == (12, len(encoder.feature_names))


def test_smote_balances_strata_and_pairs_with_same_stratum_case():
    rng = np.random.default_rng(0)
    clinical = rng.normal(size=(40, 5)).astype(np.float32)
    grade = np.repeat([0, 1, 2], [20, 12, 8])
    response = (np.arange(40) % 3 == 0).astype(int)
    extra, pair, g, r = smote_oversample(clinical, grade, response, seed=0)
    stratum = grade * 2 + response
    counts = np.bincount(np.concatenate([stratum, g * 2 + r]))
    assert len(extra) > 0 and counts.min() == counts.max()
    np.testing.assert_array_equal(stratum[pair], g * 2 + r)
