"""The blind held-out phantom (responseai.breast.phantom_blind): format, determinism, anatomy and clinical sense.

Checked by reading the written files back, as the project's evaluation will."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from responseai.breast import phantom_blind as pb
from responseai.breast.constants import MANIFEST_SCHEMA
from responseai.io import read_image
from responseai.manifest import read_manifest

SEED, N = 3, 3


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("blind")
    assert pb.main(["--n", str(N), "--seed", str(SEED), "--out", str(out)]) == 0
    return out


def _arrays(folder):
    images = {n: sitk.ReadImage(str(folder / f"{n}.nrrd")) for n in (*pb.PHASES, "mask", "anatomy")}
    return images, {n: sitk.GetArrayFromImage(v) for n, v in images.items()}


def _rows(cohort):
    return list(csv.DictReader((cohort / "manifest.csv").open()))


def test_manifest_validates_and_files_read(cohort):
    manifest = read_manifest(cohort / "manifest.csv", MANIFEST_SCHEMA)
    assert len(manifest.frame) == N
    assert list(_rows(cohort)[0]) == list(pb.MANIFEST_COLUMNS)
    assert _rows(cohort)[0]["patient_id"] == f"BB{SEED:03d}-0000"
    meta = json.loads((cohort / "cohort.json").read_text())
    assert meta["generator"] == "breast-phantom-blind" and meta["version"] == "blind-1.0"
    assert set(meta["label_rule"]["weights"]) and len(list(csv.DictReader((cohort / "truth.csv").open()))) == N
    image = read_image(cohort / _rows(cohort)[0]["post1"], "post1")
    assert image is not None


def test_deterministic(cohort, tmp_path):
    pb.generate_case(SEED, 1, tmp_path)
    pid = f"BB{SEED:03d}-0001"
    for name in ("post1", "mask"):
        again = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "images" / pid / f"{name}.nrrd")))
        first = sitk.GetArrayFromImage(sitk.ReadImage(str(cohort / "images" / pid / f"{name}.nrrd")))
        assert again.dtype == first.dtype and np.array_equal(again, first)


def test_anatomy_and_enhancement(cohort):
    for row in _rows(cohort):
        images, a = _arrays(cohort / "images" / row["patient_id"])
        mask, anatomy = a["mask"] > 0, a["anatomy"]
        assert a["pre"].dtype == np.int16 and a["mask"].dtype == np.uint8
        assert mask.any() and set(np.unique(anatomy[mask])) == {1 if row["laterality"] == "left" else 2}
        assert set(np.unique(anatomy)) <= set(pb.ANATOMY_CODES)
        centre = np.argwhere(mask).mean(0)[::-1]
        x = images["mask"].TransformContinuousIndexToPhysicalPoint(centre.tolist())[0]
        midline = np.mean([images["mask"].TransformContinuousIndexToPhysicalPoint(
            np.argwhere(anatomy == code).mean(0)[::-1].tolist())[0] for code in (1, 2)])
        assert (x > midline) == (row["laterality"] == "left")  # LPS +x is the patient's left
        sub = a["post1"].astype(np.float32) - a["pre"].astype(np.float32)
        breast = np.isin(anatomy, (1, 2)) & ~mask
        assert sub[mask].mean() > 2 * np.median(sub[breast])
        assert np.median(sub[anatomy == 3]) > np.median(sub[mask])


def test_clinical_consistency(cohort):
    for row in _rows(cohort):
        size, d2, d3 = (float(row[k]) for k in ("tumour_size_mm", "tumour_size_2_mm", "tumour_size_3_mm"))
        assert size >= d2 >= d3 > 0
        if row["ct_stage"] != "T4":
            assert row["ct_stage"] == ("T1" if size <= 20 else "T2" if size <= 50 else "T3")
        er, pr, her2 = (row[k] == "positive" for k in ("er", "pr", "her2"))
        ki67 = float(row["ki67"])
        expected = ("luminal_b" if (er or pr) else "her2_enriched") if her2 else (
            "triple_negative" if not (er or pr) else "luminal_a" if er and ki67 < 20 else "luminal_b")
        assert row["molecular_subtype"] == expected
        assert 25 <= int(row["age"]) <= 80 and row["pcr"] in ("0", "1")


def test_label_ceilings_split_the_rule_into_its_image_and_clinical_parts():
    """A cohort whose label follows only the image terms has an image ceiling of 1 and a clinical one near 0.5 (its
    clinical rest is a constant plus unrelated noise): the split reads the rule's weights and truth.csv's columns."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    n = 400
    truth = pd.DataFrame({"washout_fraction": rng.uniform(0, 1, n), "rim": rng.integers(0, 2, n),
                          "heterogeneity": rng.uniform(0, 0.6, n), "peritumoural": rng.integers(0, 2, n),
                          "spiculated": rng.integers(0, 2, n)})
    weights = pb.LABEL_RULE["weights"]
    image = sum(weights[t] * (truth[c] + offset) for t, (c, offset) in pb.IMAGE_TERMS.items())
    clinical = rng.normal(0, 1, n)
    truth["pcr"] = (image > np.median(image)).astype(int)
    truth["pcr_logit"] = image + clinical
    ceilings = pb.label_ceilings(truth)
    assert ceilings["auc_image_terms"] == 1.0 and ceilings["prevalence"] == 0.5
    assert ceilings["auc_clinical_terms"] == pytest.approx(roc_auc_score(truth["pcr"], clinical))
    assert abs(ceilings["auc_clinical_terms"] - 0.5) < 0.1
