"""`responseai predict kinetics --manifest`: a phantom cohort through the single-case code path, a broken case recorded.

Three phantom patients as `responseai synth kinetics` writes them (their pCR label column is part
of the schema, so the manifest validates as written); the third one's late phase is made NaN.
The table must hold FTV and ΔFTV per case, the broken case an input error, and a cohort case's
result.json must be what `responseai predict kinetics` writes for the same files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from responseai.cli import main
from responseai.io import read_image, write_image
from responseai.kinetics.inference import INPUT_FILES


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """Three phantom patients (baseline + follow-up); the third one's baseline post2 is all NaN."""
    folder = tmp_path_factory.mktemp("kinetics-cohort")
    assert main(["synth", "kinetics", "--n", "3", "--seed", "5", "--out", str(folder), "--workers", "1"]) == 0
    manifest, truth = pd.read_csv(folder / "manifest.csv"), pd.read_csv(folder / "truth.csv")
    assert set(manifest["pcr"]) <= {0, 1} and truth["pcr"].astype(int).tolist() == manifest["pcr"].tolist()
    broken = folder / pd.read_csv(folder / "manifest.csv").loc[2, "post2"]
    image = read_image(broken)
    write_image(image.with_array(np.full(image.shape, np.nan, np.float32)), broken)
    return folder


@pytest.fixture(scope="module")
def predicted(cohort: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kinetics-predictions")
    assert main(["predict", "kinetics", "--manifest", str(cohort / "manifest.csv"), "--out", str(out)]) == 2
    return out


def test_table_has_ftv_and_delta_ftv_and_records_the_broken_case(cohort: Path, predicted: Path):
    manifest = pd.read_csv(cohort / "manifest.csv")
    table = pd.read_csv(predicted / "predictions.csv")
    assert table["case_id"].tolist() == manifest["patient_id"].tolist()
    assert table["status"].tolist() == ["ok", "ok", "error"]
    assert table.loc[2, "error_type"] == "InvalidImageError" and "NaN" in table.loc[2, "message"]
    assert not (predicted / manifest.loc[2, "patient_id"]).exists()
    done = table.iloc[:2]
    assert {"ftv_ml", "followup_ftv_ml", "delta_ftv_ml", "delta_ftv_percent", "worst_curve"} <= set(table.columns)
    assert (done["ftv_ml"] > 0).all() and done["delta_ftv_percent"].notna().all()
    for row, (_, case) in zip(done.itertuples(), manifest.iloc[:2].iterrows()):
        record = json.loads((predicted / row.output / "result.json").read_text(encoding="utf-8"))
        assert record["family"] == "kinetics" and record["case_id"] == case["patient_id"]
        assert row.ftv_ml == pytest.approx(record["baseline"]["ftv_ml"])
        assert row.delta_ftv_percent == pytest.approx(record["changes"]["delta_ftv_percent"])
    summary = json.loads((predicted / "summary.json").read_text(encoding="utf-8"))
    assert (summary["ok"], summary["error"], summary["failed"]) == (2, 1, 0)


def test_a_cohort_case_is_the_single_case_command(cohort: Path, predicted: Path, tmp_path: Path):
    row = pd.read_csv(cohort / "manifest.csv").iloc[0]
    argv = ["predict", "kinetics", "--patient-id", row["patient_id"], "--out", str(tmp_path / "single")]
    for name in (name for name in INPUT_FILES if isinstance(row.get(name), str)):  # the phantom gives phases, no dce
        argv += [f"--{name.replace('_', '-')}", str(cohort / row[name])]
    assert main(argv) == 0
    single = json.loads((tmp_path / "single" / "result.json").read_text(encoding="utf-8"))
    batch = json.loads((predicted / row["patient_id"] / "result.json").read_text(encoding="utf-8"))
    single.pop("inputs"), batch.pop("inputs")  # relative vs absolute paths of the same files
    assert _rounded(batch) == _rounded(single)


def _rounded(value, digits: int = 6):
    """JSON with floats rounded: ITK's multithreaded registration differs between runs in the 13th digit."""
    if isinstance(value, dict):
        return {key: _rounded(item, digits) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item, digits) for item in value]
    return round(value, digits) if isinstance(value, float) else value
