"""The third breast phantom (``responseai.breast.phantom_alt``): determinism, manifest, grids, anatomy.

A 3-case cohort is written once (one worker) and one case per site is simulated in memory, so
every orientation is covered in well under 20 s on two CPU cores.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from responseai.breast import phantom_alt as pa
from responseai.breast.constants import MANIFEST_SCHEMA
from responseai.io import read_image
from responseai.manifest import read_manifest

SEED = 5


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("alt")
    assert pa.main(["--n", "3", "--seed", str(SEED), "--out", str(out), "--workers", "1"]) == 0
    return out


@pytest.fixture(scope="module")
def site_cases():
    """One case per site (the site is forced; the other draws do not depend on it)."""
    return {site.name: pa.simulate_case(SEED, 10, site) for site in pa.SITES}


def _world(image, index_kji: np.ndarray) -> np.ndarray:
    return (index_kji[:, ::-1] * np.asarray(image.spacing)) @ image.direction.T + np.asarray(image.origin)


def _check_case(images: dict, mask) -> None:
    """What every case must satisfy, whatever its site."""
    post1 = images["post1"]
    for name in ("pre", "post2", "anatomy"):
        assert images[name].grid_differences(post1) == [], name
    assert mask.grid_differences(post1) == []
    for name in ("pre", "post1", "post2"):
        assert images[name].array.dtype == np.int16
    assert mask.array.dtype == np.uint8 and images["anatomy"].array.dtype == np.uint8
    anatomy, tumour = images["anatomy"].array, mask.array > 0
    assert set(np.unique(anatomy)) <= set(range(11))
    assert tumour.sum() > 20
    assert np.isin(anatomy[tumour], (1, 2)).mean() >= 0.9
    assert (anatomy == 1).sum() > 1000 and (anatomy == 2).sum() > 1000
    # patient's left is +x in LPS, whatever the direction matrix
    left = _world(post1, np.argwhere(anatomy == 1)[::50]).mean(0)
    right = _world(post1, np.argwhere(anatomy == 2)[::50]).mean(0)
    assert left[0] > right[0] + 60
    # breasts hang anteriorly (-y) of the heart and lungs
    lungs = _world(post1, np.argwhere(anatomy == 8)[::50]).mean(0)
    assert left[1] < lungs[1] - 40 and right[1] < lungs[1] - 40
    # the tumour enhances over pre on post1
    pre, p1 = images["pre"].array[tumour].astype(float), post1.array[tumour].astype(float)
    assert p1.mean() > 1.2 * pre.mean()
    in_plane, slice_mm = post1.spacing[:2], post1.spacing[2]
    assert all(0.6 <= s <= 1.5 for s in in_plane) and 1.0 <= slice_mm <= 3.0
    assert np.any(np.abs(np.asarray(post1.origin)) > 1)


def test_cohort_manifest_and_files(cohort):
    manifest = read_manifest(cohort / "manifest.csv", MANIFEST_SCHEMA, require=("split", "mask"), need_splits=("train", "val"))
    frame = manifest.frame
    assert list(frame["patient_id"]) == [f"BA{SEED:03d}-{i:04d}" for i in range(3)]
    assert set(frame["split"]) == {"train", "val"} and set(frame["external"]) == {"0"}
    for column in ("anatomy", "post2", "pcr", "ki67", "ct_stage", "tumour_size_mm"):
        assert frame[column].notna().all(), column
    meta = json.loads((cohort / "cohort.json").read_text())
    assert meta["generator"] == "breast-phantom-alt" and meta["seed"] == SEED and len(meta["sites"]) >= 4
    assert meta["anatomy_codes"]["3"] == "heart"
    hearts = 0
    for _, row in frame.iterrows():
        images = {name: read_image(row[name]) for name in ("pre", "post1", "post2", "anatomy")}
        _check_case(images, read_image(row["mask"]))
        hearts += int((images["anatomy"].array == 3).any())
    assert hearts >= 1


def test_deterministic(cohort):
    """Same seed and index: the same arrays in memory as on disk (written by another call)."""
    case = pa.simulate_case(SEED, 2)
    folder = cohort / "images" / f"BA{SEED:03d}-0002"
    for name in ("pre", "post1", "post2", "anatomy"):
        np.testing.assert_array_equal(case["images"][name].array, read_image(folder / f"{name}.nrrd").array)
    np.testing.assert_array_equal(case["mask"].array, read_image(folder / "mask.nrrd").array)


def test_external_development_cohort_has_the_same_images(cohort, tmp_path):
    """``--external``: every row external (a development set), the images byte-identical."""
    out = tmp_path / "dev"
    assert pa.main(["--n", "1", "--seed", str(SEED), "--out", str(out), "--workers", "1", "--external"]) == 0
    frame = read_manifest(out / "manifest.csv", MANIFEST_SCHEMA, require=("split", "mask"),
                          need_splits=("external",)).frame
    assert list(frame["split"]) == ["external"] and list(frame["external"]) == ["1"]
    assert "development" in json.loads((out / "cohort.json").read_text())["purpose"]
    for name in ("post1.nrrd", "mask.nrrd"):
        first = f"images/BA{SEED:03d}-0000/{name}"
        assert (out / first).read_bytes() == (cohort / first).read_bytes()


def test_every_site(site_cases):
    directions = []
    for name, case in site_cases.items():
        _check_case(case["images"], case["mask"])
        assert (case["images"]["anatomy"].array == 3).any(), f"{name}: heart not in the field of view"
        direction = case["images"]["post1"].direction
        np.testing.assert_allclose(direction.T @ direction, np.eye(3), atol=1e-6)
        directions.append(direction)
    distinct = {tuple(np.round(d, 4).ravel()) for d in directions}
    assert len(distinct) == len(pa.SITES)
    assert any(not np.allclose(np.abs(d), np.round(np.abs(d))) for d in directions), "no oblique site"
    sagittal = site_cases["alt-B-sagittal-fs-1.5T"]["images"]["post1"].direction
    assert abs(sagittal[0, 2]) == 1  # slices step along x


def test_clinical_values_are_plausible(site_cases):
    for case in site_cases.values():
        row = case["row"]
        assert 0 <= row["ki67"] <= 100 and row["histological_grade"] in ("1", "2", "3") and row["pcr"] in (0, 1)
        assert row["ct_stage"] == ("T1" if row["tumour_size_mm"] <= 20 else "T2" if row["tumour_size_mm"] <= 50 else "T3") \
            or row["ct_stage"] == "T4"
        if row["molecular_subtype"] == "triple_negative":
            assert (row["er"], row["pr"], row["her2"]) == ("negative",) * 3
