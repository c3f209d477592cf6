"""`responseai predict recurrence` end to end on phantom files: result.json, missing modalities, bad input, report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from responseai.cli import main as cli


def _args(case: Path, weights: Path, out: Path, *, pathology=True, ultrasound=True, report=True) -> list[str]:
    argv = ["predict", "recurrence", "--clinical", str(case / "clinical.json"), "--weights", str(weights),
            "--out", str(out)]
    if pathology and (case / "tiles").is_dir() and any((case / "tiles").iterdir()):
        argv += ["--pathology", str(case / "tiles")]
    if ultrasound and (case / "ultrasound.png").exists():
        argv += ["--ultrasound", str(case / "ultrasound.png")]
    if report and (case / "report.txt").exists():
        argv += ["--report-text", str(case / "report.txt")]
    return argv


def _full_case(phantom_files: Path) -> Path:
    return next(p for p in sorted(phantom_files.iterdir())
                if p.is_dir() and (p / "ultrasound.png").exists() and (p / "report.txt").exists()
                and any((p / "tiles").iterdir()))


def test_prediction_writes_risk_group_rfs_and_attention(tiny_recurrence, phantom_files, tmp_path):
    case = _full_case(phantom_files)
    assert cli(_args(case, tiny_recurrence, tmp_path / "out")) == 0
    record = json.loads((tmp_path / "out" / "result.json").read_text(encoding="utf-8"))
    assert record["family"] == "recurrence" and record["case_id"] == "out"
    assert record["risk_group"] in ("low", "intermediate", "high")
    rfs = record["rfs_probability"]
    assert list(rfs) == ["3y", "5y", "7y"] and 1 >= rfs["3y"] >= rfs["5y"] >= rfs["7y"] >= 0
    assert set(record["modality_weights"]) == {"pathology", "ultrasound", "report", "clinical"}
    assert sum(record["modality_weights"].values()) == pytest.approx(1.0, abs=1e-4)
    assert record["missing_modalities"] == [] and record["survival_curve"]["rfs"][0] == 1.0
    assert (tmp_path / "out" / "model_card.json").is_file()


def test_missing_pathology_is_compensated_and_named(tiny_recurrence, phantom_files, tmp_path):
    case = _full_case(phantom_files)
    assert cli(_args(case, tiny_recurrence, tmp_path / "out", pathology=False)) == 0
    record = json.loads((tmp_path / "out" / "result.json").read_text(encoding="utf-8"))
    assert record["missing_modalities"] == ["pathology"] and record["missing_handling"] == "compensated"
    assert "learned compensation" in record["notes"][0]


def test_report_has_pdf_json_and_the_survival_curve(tiny_recurrence, phantom_files, tmp_path):
    case = _full_case(phantom_files)
    assert cli(_args(case, tiny_recurrence, tmp_path / "pred")) == 0
    assert cli(["report", "--prediction", str(tmp_path / "pred"), "--out", str(tmp_path / "report")]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))
    assert report["report_type"] == "recurrence" and report["images"][0]["file"] == "snapshots/survival_curve.png"
    assert (tmp_path / "report" / "report.pdf").stat().st_size > 5000
    assert (tmp_path / "report" / "snapshots" / "survival_curve.png").is_file()
    titles = [s["title"] for s in report["sections"]]
    assert titles == ["Inputs", "Recurrence risk", "Modality attention", "Model card"]


@pytest.mark.parametrize("problem, message", [
    ("nothing", "every modality is missing"),
    ("empty_report", "report text 1 is empty"),
    ("genes", "no gene block"),
    ("no_tiles", "no tile images"),
    ("bad_clinical", "Age"),
])
def test_bad_input_is_refused_with_a_specific_message(tiny_recurrence, phantom_files, tmp_path, caplog, problem, message):
    case = _full_case(phantom_files)
    argv = _args(case, tiny_recurrence, tmp_path / "out")
    if problem == "nothing":
        argv = ["predict", "recurrence", "--weights", str(tiny_recurrence), "--out", str(tmp_path / "out")]
    elif problem == "empty_report":
        (tmp_path / "empty.txt").write_text("  \n", encoding="utf-8")
        argv += ["--report-text", str(tmp_path / "empty.txt")]
    elif problem == "genes":
        argv += ["--genes", "[0.1, 0.2]"]
    elif problem == "no_tiles":
        (tmp_path / "tiles").mkdir()
        argv += ["--pathology", str(tmp_path / "tiles")]
    else:
        argv[argv.index("--clinical") + 1] = '{"age": 250}'
    assert cli(argv) == 2
    assert message in caplog.text
    assert not (tmp_path / "out").exists()


def test_the_shipped_model_verifies_and_predicts_a_phantom_case():
    from responseai.recurrence.inference import DEFAULT, predict_recurrence
    from responseai.recurrence.phantom import generate_case

    assert DEFAULT.is_file() and DEFAULT.with_suffix(".json").is_file()
    result = predict_recurrence(generate_case(4242, 0))
    assert result.model_name == "recurrence-phantom" and result.missing_handling == "compensated"
    assert 0 <= result.rfs_probability["7y"] <= result.rfs_probability["3y"] <= 1
