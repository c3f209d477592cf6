"""The breast phantom cohort: determinism, manifest, prevalence, and the planted shortcut."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pandas as pd
import pytest

from responseai.breast.constants import BREAST_SCHEMA
from responseai.clinical import records_from_frame, validate_clinical
from responseai.io import read_image
from responseai.breast.phantom import PHASES, write_cohort
from responseai.breast.shortcut import shortcut_auc


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """The acceptance cohort: 200 patients, seed 1 (≈ 25 s on 2 cores)."""
    out = tmp_path_factory.mktemp("cohort")
    return out, write_cohort(out, n=200, seed=1, workers=2)


def test_same_seed_gives_identical_bytes_whatever_the_workers(tmp_path: Path):
    write_cohort(tmp_path / "a", n=6, seed=5, workers=1)
    write_cohort(tmp_path / "b", n=6, seed=5, workers=2)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 6 * 4 + 3
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", [str(f) for f in files], shallow=False)
    assert not mismatch and not errors
    other = write_cohort(tmp_path / "c", n=6, seed=6, workers=1)
    assert not filecmp.cmp(tmp_path / "a" / "manifest.csv", tmp_path / "c" / "manifest.csv", shallow=False)
    assert len(other) == 6


def test_manifest_has_every_column_and_valid_clinical_values(cohort):
    out, manifest = cohort
    for column in ("patient_id", "site", "external", "split", *PHASES, "mask", *BREAST_SCHEMA, "pcr"):
        assert column in manifest.columns
    assert manifest["patient_id"].is_unique
    for record in records_from_frame(manifest, BREAST_SCHEMA):
        validate_clinical(record, BREAST_SCHEMA)
    assert manifest["ki67"].isna().any(), "missing values must occur, as in a real cohort"
    row = manifest.iloc[0]
    images = {name: read_image(out / row[name], name) for name in (*PHASES, "mask")}
    assert all(not images[n].grid_differences(images["post1"]) for n in images)


def test_prevalence_sites_and_external_marking(cohort):
    _, manifest = cohort
    assert 0.20 <= manifest["pcr"].mean() <= 0.35
    assert manifest["site"].nunique() >= 5
    external = manifest[manifest["external"] == 1]
    assert set(external["site"]) == {"E"} and (external["split"] == "external").all()
    assert set(manifest.loc[manifest["external"] == 0, "split"]) == {"train", "val"}
    assert manifest.groupby("site")["pcr"].mean().between(0.05, 0.6).all()


def test_shortcut_outside_the_tumour_works_on_training_sites_only(cohort):
    out, manifest = cohort
    auc = shortcut_auc(out, manifest)
    assert auc["training_sites_auc"] >= 0.7
    assert abs(auc["external_site_auc"] - 0.5) <= 0.1
