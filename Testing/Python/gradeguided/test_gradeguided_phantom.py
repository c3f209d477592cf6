"""The grade-guided phantom: deterministic, documented rule, grade alone does not decide response."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from responseai.io import read_image
from responseai.gradeguided.phantom import (
    MODALITIES, SHAPE, SITES, generate_case, response_logit, write_cohort,
)


def test_same_seed_gives_identical_cases_and_other_seed_differs():
    a, b, c = generate_case(3, 5), generate_case(3, 5), generate_case(4, 5)
    for name in MODALITIES:
        np.testing.assert_array_equal(a.images[name].array, b.images[name].array)
    np.testing.assert_array_equal(a.mask.array, b.mask.array)
    assert a.clinical == b.clinical and a.response == b.response and a.pfs_months == b.pfs_months
    assert not np.array_equal(a.images["ct_art"].array, c.images["ct_art"].array)


def test_written_cohort_is_byte_identical_and_readable(tmp_path):
    first = write_cohort(tmp_path / "a", n=6, seed=9, workers=1)
    second = write_cohort(tmp_path / "b", n=6, seed=9, workers=2)
    pd.testing.assert_frame_equal(first, second)
    row = first.iloc[0]
    for name in (*MODALITIES, "mask"):
        assert (tmp_path / "a" / row[name]).read_bytes() == (tmp_path / "b" / row[name]).read_bytes()
    pet = read_image(tmp_path / "a" / row["pet"])
    assert pet.shape == SHAPE and pet.array.min() >= 0 and pet.array.max() < 100
    meta = json.loads((tmp_path / "a" / "cohort.json").read_text())
    assert "G3" in meta["label_rule"] and len(meta["sites"]) == len(SITES)
    assert set(first["split"]) <= {"train", "val", "test", "external"}
    assert (first["split"] == "external").eq(first["external"] == 1).all()


def test_modalities_share_one_grid_and_grade_drives_pet_and_necrosis():
    cases = [generate_case(21, i) for i in range(60)]
    case = cases[0]
    assert all(not image.grid_differences(case.mask) for image in case.images.values())
    grade = np.array([c.grade for c in cases])
    suv = np.array([c.images["pet"].array[c.mask.array > 0].max() for c in cases])
    necrotic = np.array([c.truth["necrotic_fraction"] for c in cases])
    assert suv[grade == 3].mean() > suv[grade == 1].mean() + 2
    assert necrotic[grade == 1].max() == 0 and necrotic[grade == 3].mean() > 0.1


def test_response_within_g3_depends_on_biomarker_and_imaging_not_grade_alone():
    """The documented rule: in G3, heterogeneous EGFR-mutant tumours respond, necrotic PD-L1-high resist."""
    base = {"age": 60, "afp": 10.0, "stage": "II", "treatment": "targeted"}
    responder = response_logit(3, {**base, "egfr": "mutant", "pdl1": 10.0},
                               {"heterogeneity": 0.8, "necrotic_fraction": 0.0, "suv_max": 6.0, "uniformity": 0.3})
    resistant = response_logit(3, {**base, "egfr": "wild-type", "pdl1": 80.0},
                               {"heterogeneity": 0.3, "necrotic_fraction": 0.4, "suv_max": 6.0, "uniformity": 0.3})
    assert responder > 2 and resistant < -2
    cases = [generate_case(22, i) for i in range(300)]
    g3 = [c for c in cases if c.grade == 3 and c.clinical["egfr"] is not None]
    rate = {e: np.mean([c.response for c in g3 if c.clinical["egfr"] == e]) for e in ("mutant", "wild-type")}
    assert rate["mutant"] - rate["wild-type"] > 0.25
    per_grade = [np.mean([c.response for c in cases if c.grade == g]) for g in (1, 2, 3)]
    assert max(per_grade) - min(per_grade) < 0.3  # grade alone is a weak predictor
    assert len({c.truth["subtype"] for c in cases}) == 3
    assert any(c.clinical["pdl1"] is None for c in cases)
