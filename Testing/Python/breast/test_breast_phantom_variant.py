"""The independent validation phantom: deterministic, plausible anatomy on every site's grid, documented rule."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from responseai.breast.constants import BREAST_VARIABLES
from responseai.breast.phantom_variant import (
    GENERATOR_VERSION, LABEL_RULE, MANIFEST_COLUMNS, PHASES, SITES, case_record, generate_case, label_ceilings,
    main, pcr_logit,
)
from responseai.io import read_image

MAX_VOXELS = 2_500_000


@pytest.fixture(scope="module")
def cases():
    """One patient (the same anatomy) rendered on every validation site."""
    return {site.name: generate_case(5, 1, site=site) for site in SITES}


def _world(image, mask: np.ndarray) -> np.ndarray:
    """LPS coordinates (mm) of the voxels where ``mask`` is set."""
    k, j, i = np.nonzero(mask)
    ijk = np.column_stack([i, j, k]) * np.asarray(image.spacing)
    return ijk @ image.direction.T + np.asarray(image.origin)


def _find(seed: int, kinetic: int) -> int:
    return next(i for i in range(200) if case_record(seed, i)["kinetic"] == kinetic)


def test_site_table_holds_out_every_site_with_sagittal_and_flipped_axial_grids():
    assert GENERATOR_VERSION == "variant-1.0" and PHASES == ("pre", "post1", "post2")
    assert all(site.external for site in SITES)
    assert sum(site.weight for site in SITES) == pytest.approx(1.0)
    sagittal = axial_flipped = 0
    for site in SITES:
        direction = np.asarray(site.direction, float).reshape(3, 3)
        np.testing.assert_allclose(direction.T @ direction, np.eye(3), atol=1e-9)
        slice_axis = np.abs(direction[:, 2])
        sagittal += slice_axis[0] > 0.99
        axial_flipped += slice_axis[2] > 0.99 and not np.allclose(direction, np.eye(3))
        assert np.prod(site.size) <= MAX_VOXELS
        assert 0.9 <= min(site.spacing[:2]) and max(site.spacing[:2]) <= 1.5 and 1.5 <= site.spacing[2] <= 3.0
    assert sagittal >= 1 and axial_flipped >= 1
    assert len({site.fat_suppressed for site in SITES}) == 2


def test_manifest_columns_reuse_the_clinical_schema():
    names = tuple(v.name for v in BREAST_VARIABLES)
    assert MANIFEST_COLUMNS == ("patient_id", "site", "external", "split", "pre", "post1", "post2", "mask",
                                *names, "pcr", "anatomy")


def test_phases_mask_and_anatomy_share_one_grid(cases):
    for name, case in cases.items():
        site = next(s for s in SITES if s.name == name)
        assert case.patient_id == "BV005-0001" and set(case.phases) == set(PHASES)
        for image in (*case.phases.values(), case.anatomy):
            assert not image.grid_differences(case.mask)
        for image in case.phases.values():
            assert image.array.dtype == np.int16 and image.array.min() >= 0
        np.testing.assert_allclose(case.mask.direction, np.asarray(site.direction).reshape(3, 3), atol=1e-9)
        np.testing.assert_allclose(case.mask.direction.T @ case.mask.direction, np.eye(3), atol=1e-9)
        assert case.mask.shape == tuple(site.size[::-1]) and np.linalg.norm(case.mask.origin) > 10
        assert case.truth["orientation"] == site.orientation
        assert case.truth["fat_suppressed"] == int(site.fat_suppressed)


def test_bilateral_anatomy_breasts_in_front_of_the_chest_and_heart_behind(cases):
    for case in cases.values():
        labels = case.anatomy.array
        for label in (1, 2, 3, 4, 5, 8, 9):
            assert (labels == label).any(), f"{case.site.name}: label {label} missing"
        left, right, heart = (_world(case.anatomy, labels == k).mean(axis=0) for k in (1, 2, 3))
        wall = _world(case.anatomy, labels == 9).mean(axis=0)
        assert left[0] - right[0] > 100  # the left breast lies to the patient's left (+x in LPS)
        assert left[1] < wall[1] < heart[1] and right[1] < wall[1]  # breasts anterior (−y), heart posterior


def test_heart_enhances_strongly_at_post1_and_washes_out(cases):
    for case in cases.values():
        heart = case.anatomy.array == 3
        pre, post1, post2 = (case.phases[p].array[heart].astype(float).mean() for p in PHASES)
        assert post1 > 2.5 * pre and post2 < post1
        lungs = case.phases["post1"].array[case.anatomy.array == 8].astype(float).mean()
        assert lungs < 0.3 * post1


def test_tumour_lies_inside_one_breast_and_is_the_same_patient_on_every_site(cases):
    truths = [case.truth for case in cases.values()]
    for case in cases.values():
        breast = 1 if case.truth["side"] == 0 else 2
        under = np.unique(case.anatomy.array[case.mask.array > 0])
        assert case.mask.array.sum() > 20 and under.tolist() == [breast]
        assert case.truth["enhancing_volume_ml"] > 0
    for key in ("side", "kinetic_type", "rim", "heterogeneity", "peritumoural", "pcr_logit", "tumour_diameter_mm"):
        assert len({t[key] for t in truths}) == 1
    assert len({case.pcr for case in cases.values()}) == 1
    assert len({json.dumps(case.clinical, sort_keys=True) for case in cases.values()}) == 1


def test_washout_tumours_fade_and_persistent_ones_rise():
    washout = generate_case(8, _find(8, 2))
    persistent = generate_case(8, _find(8, 0))
    for case, falls in ((washout, True), (persistent, False)):
        inside = case.mask.array > 0
        post1, post2 = (case.phases[p].array[inside].astype(float).mean() for p in ("post1", "post2"))
        pre = case.phases["pre"].array[inside].astype(float).mean()
        assert post1 > 1.5 * pre
        assert (post2 < 0.95 * post1) if falls else (post2 > post1)
    assert washout.truth["kinetic_type"] == 2 and washout.truth["washout_fraction"] > 0.5


def test_written_cohort_is_byte_identical_across_workers_and_from_the_cli(tmp_path):
    assert main(["--n", "2", "--seed", "4", "--out", str(tmp_path / "a"), "--workers", "1"]) == 0
    assert main(["--n", "2", "--seed", "4", "--out", str(tmp_path / "b"), "--workers", "2"]) == 0
    first, second = (pd.read_csv(tmp_path / name / "manifest.csv") for name in ("a", "b"))
    pd.testing.assert_frame_equal(first, second)
    assert tuple(first.columns) == MANIFEST_COLUMNS
    assert (first["split"] == "external").all() and (first["external"] == 1).all()
    assert first["patient_id"].tolist() == ["BV004-0000", "BV004-0001"]
    for _, row in first.iterrows():
        for column in ("pre", "post1", "post2", "mask", "anatomy"):
            assert (tmp_path / "a" / row[column]).read_bytes() == (tmp_path / "b" / row[column]).read_bytes()
    anatomy = read_image(tmp_path / "a" / first.loc[0, "anatomy"])
    assert not anatomy.grid_differences(read_image(tmp_path / "a" / first.loc[0, "post1"]))
    truth = pd.read_csv(tmp_path / "a" / "truth.csv")
    for column in ("kinetic_type", "rim", "heterogeneity", "peritumoural", "side", "enhancing_volume_ml",
                   "pcr_logit", "image_logit", "clinical_logit", "orientation", "fat_suppressed"):
        assert column in truth.columns
    # the two parts of the label rule add up to it (the evaluation scores each part as a ceiling)
    np.testing.assert_allclose(truth["image_logit"] + truth["clinical_logit"], truth["pcr_logit"])
    meta = json.loads((tmp_path / "a" / "cohort.json").read_text())
    assert meta["label_rule"] == LABEL_RULE and meta["version"] == GENERATOR_VERSION
    assert all(site["external"] for site in meta["sites"])


def test_label_rule_mixes_image_and_clinical_terms_with_a_high_ceiling():
    favourable = pcr_logit({"washout_fraction": 0.9, "rim": 0, "heterogeneity": 0.2, "peritumoural": 0},
                           {"her2": 1, "triple_negative": 0, "er": 0, "ki67": 60, "t_stage": 2})
    unfavourable = pcr_logit({"washout_fraction": 0.05, "rim": 1, "heterogeneity": 0.8, "peritumoural": 1},
                             {"her2": 0, "triple_negative": 0, "er": 1, "ki67": 10, "t_stage": 3})
    assert favourable > 2 and unfavourable < -4
    ceilings = label_ceilings(n=4000)
    assert 0.2 < ceilings["prevalence"] < 0.38
    assert 0.8 < ceilings["auc_combined"] < 0.92
    assert ceilings["auc_image_terms"] > 0.65 and ceilings["auc_clinical_terms"] > 0.65
