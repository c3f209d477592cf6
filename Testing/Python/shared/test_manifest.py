"""Manifest schema validation: column maps, normalised copies, the schema table."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from responseai.breast.constants import MANIFEST_SCHEMA as BREAST
from responseai.manifest import ManifestError, parse_column_map, prepare_manifest, read_manifest

from bad_input_cases import breast_manifest


def test_column_map_from_option_or_json_file(tmp_path: Path):
    assert parse_column_map("age=AGE, pcr=PCR_LABEL") == {"age": "AGE", "pcr": "PCR_LABEL"}
    (tmp_path / "map.json").write_text(json.dumps({"split": "SET"}), encoding="utf-8")
    assert parse_column_map(str(tmp_path / "map.json")) == {"split": "SET"}
    with pytest.raises(ManifestError, match="'age' is not schema_name=CSV_COLUMN"):
        parse_column_map("age")


def test_a_real_cohorts_names_are_mapped_and_training_reads_a_normalised_copy(tmp_path: Path):
    cohort = tmp_path / "hospital"
    breast_manifest(cohort, edit=lambda f: f.rename(columns={"split": "SET", "pcr": "PCR_LABEL", "age": "age_y"}))
    columns = "split=SET,pcr=PCR_LABEL,age=age_y"
    checked = prepare_manifest(cohort / "manifest.csv", BREAST, columns, tmp_path / "run",
                               require=("split", "site", "mask", "pcr"), need_splits=("train", "val"))
    assert checked == tmp_path / "run" / "manifest.csv"
    copy = pd.read_csv(checked)
    assert {"split", "pcr", "age"} <= set(copy.columns) and not {"SET", "PCR_LABEL", "age_y"} & set(copy.columns)
    assert copy["pcr"].tolist() == [0, 1, 0, 1] and Path(copy.loc[0, "post1"]).is_absolute()
    read_manifest(checked, BREAST, require=("split", "pcr"))  # the copy is itself a valid manifest
    # without a map, training reads the manifest it was given
    plain = breast_manifest(tmp_path / "plain")
    assert prepare_manifest(plain, BREAST, None, tmp_path / "run2") == Path(plain)
    assert not (tmp_path / "run2").exists()


def test_every_violation_is_listed_in_one_error(tmp_path: Path):
    def break_it(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.astype(object)
        frame.loc[1, "age"], frame.loc[2, "er"], frame.loc[3, "pre"] = 7, "maybe", "gone.nrrd"
        return frame

    with pytest.raises(ManifestError) as caught:
        read_manifest(breast_manifest(tmp_path, edit=break_it), BREAST)
    problems = caught.value.problems
    assert [p.split(",")[0] for p in problems] == ["line 3", "line 4", "line 5"]
    assert "3 problems" in str(caught.value)


def test_schema_table_lists_every_column():
    table = BREAST.describe()
    assert table.loc[table["column"] == "age", "allowed"].item() == "18–100 years"
    assert table.loc[table["required"], "column"].tolist() == ["patient_id"]  # the images: pre + post1, or dce


def test_a_row_gives_its_phases_or_one_dynamic_series(tmp_path: Path):
    """``dce`` may replace pre / post1 / post2 for prediction; a row with neither is refused by line; training and
    evaluation, which read the phases by name, still require them."""
    def dynamic_rows(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.astype(object)
        frame.loc[0, ["dce", "dce_frames"]] = frame.loc[0, "post1"], "0,1"
        frame.loc[0, ["pre", "post1", "post2"]] = ""
        frame.loc[2, ["pre", "post1"]] = ""
        return frame

    manifest = breast_manifest(tmp_path, edit=dynamic_rows)
    with pytest.raises(ManifestError) as caught:
        read_manifest(manifest, BREAST)
    assert caught.value.problems == ["line 4, column 'pre', value '': empty, but required (or fill 'dce')",
                                     "line 4, column 'post1', value '': empty, but required (or fill 'dce')"]
    frame = pd.read_csv(manifest).drop(index=2)
    frame.to_csv(manifest, index=False)
    rows = read_manifest(manifest, BREAST).frame
    assert rows.loc[0, "dce"].endswith(".nrrd") and rows.loc[0, "dce_frames"] == "0,1"
    with pytest.raises(ManifestError, match="line 2, column 'pre', value '': empty, but required"):
        read_manifest(manifest, BREAST, require=("pre", "post1"))
