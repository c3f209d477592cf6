"""`responseai predict recurrence --manifest`: a phantom cohort through the single-case code path, a broken case recorded.

Four phantom patients as `responseai synth recurrence` writes them (the manifest read as is);
one case's ultrasound file is overwritten with bytes that are no image. The table must hold the
risk, group, RFS at 3 / 5 / 7 years and the missing modalities per case, the broken case an
input error (exit code 2, the others still predicted), and a cohort case's result.json must be
what `responseai predict recurrence` writes for the same files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from responseai.cli import main

N_CASES = 4


def _manifest(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "manifest.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """Four phantom patients; the last one with an ultrasound gets a file that is not an image."""
    folder = tmp_path_factory.mktemp("recurrence-cohort")
    assert main(["synth", "recurrence", "--n", str(N_CASES), "--seed", "7", "--out", str(folder)]) == 0
    manifest = _manifest(folder)
    broken = manifest[manifest["ultrasound"] != ""].index[-1]
    (folder / manifest.loc[broken, "ultrasound"]).write_bytes(b"not a picture")
    return folder


@pytest.fixture(scope="module")
def predicted(cohort: Path, tiny_recurrence: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("recurrence-predictions")
    argv = ["predict", "recurrence", "--manifest", str(cohort / "manifest.csv"), "--weights", str(tiny_recurrence),
            "--out", str(out)]
    assert main(argv) == 2
    return out


def test_table_has_risk_rfs_missing_modalities_and_records_the_broken_case(cohort: Path, predicted: Path):
    manifest = _manifest(cohort)
    table = pd.read_csv(predicted / "predictions.csv", keep_default_na=False)
    assert table["case_id"].tolist() == manifest["case_id"].tolist()
    broken = manifest[manifest["ultrasound"] != ""].index[-1]
    assert table.loc[broken, "status"] == "error" and table.loc[broken, "error_type"] == "InputFileError"
    assert "not a readable image" in table.loc[broken, "message"]
    assert not (predicted / manifest.loc[broken, "case_id"]).exists()
    done = table.drop(index=broken)
    assert (done["status"] == "ok").all()
    assert set(done["risk_group"]) <= {"low", "intermediate", "high"}
    rfs = done[["rfs_3y", "rfs_5y", "rfs_7y"]].astype(float)
    assert ((rfs["rfs_3y"] >= rfs["rfs_5y"]) & (rfs["rfs_5y"] >= rfs["rfs_7y"])).all() and rfs.le(1).all().all()
    for row in done.itertuples():
        record = json.loads((predicted / row.output / "result.json").read_text(encoding="utf-8"))
        assert record["family"] == "recurrence" and record["case_id"] == row.case_id
        assert float(row.risk_score) == pytest.approx(record["risk_score"])
        assert row.missing_modalities == ";".join(record["missing_modalities"])
        expected = [m for m in ("pathology", "ultrasound", "report") if not manifest.loc[row.Index, m]]
        assert record["missing_modalities"] == expected
    summary = json.loads((predicted / "summary.json").read_text(encoding="utf-8"))
    assert (summary["ok"], summary["error"], summary["failed"]) == (N_CASES - 1, 1, 0)


def test_a_cohort_case_is_the_single_case_command(cohort: Path, predicted: Path, tiny_recurrence: Path,
                                                   tmp_path: Path):
    row = _manifest(cohort).iloc[0]
    argv = ["predict", "recurrence", "--case-id", row["case_id"], "--weights", str(tiny_recurrence),
            "--clinical", str(cohort / row["clinical"]), "--out", str(tmp_path / "single")]
    for column, option in (("pathology", "--pathology"), ("ultrasound", "--ultrasound"), ("report", "--report-text")):
        argv += [option, str(cohort / row[column])] if row[column] else []
    assert main(argv) == 0
    single = json.loads((tmp_path / "single" / "result.json").read_text(encoding="utf-8"))
    batch = json.loads((predicted / row["case_id"] / "result.json").read_text(encoding="utf-8"))
    single.pop("inputs"), batch.pop("inputs")  # relative vs absolute paths of the same files
    assert batch == single


def test_a_bad_clinical_column_is_refused_before_any_case(cohort: Path, tiny_recurrence: Path, tmp_path: Path,
                                                          caplog):
    _manifest(cohort).iloc[:1].assign(age="250").to_csv(cohort / "bad_age.csv", index=False)
    argv = ["predict", "recurrence", "--manifest", str(cohort / "bad_age.csv"), "--weights", str(tiny_recurrence),
            "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    assert "line 2, column 'age', value '250'" in caplog.text and not (tmp_path / "out").exists()
