"""The mask-extent caution: a mask far larger or smaller than the clinical size is flagged, never corrected."""

from __future__ import annotations

import math

import pytest

from responseai.breast.inference import extent_findings
from responseai.breast.report import build_report
from responseai.breast.segmentation.extent import EXTENT_LIMITS, extent_caution, extent_ratio, sphere_volume_ml


def test_sphere_volume_and_ratio():
    assert sphere_volume_ml(20.0) == pytest.approx(4 / 3 * math.pi * 10**3 / 1000)
    assert extent_ratio(2 * sphere_volume_ml(30.0), 30.0) == pytest.approx(2.0)
    for unusable in (None, "", "30", float("nan"), 0.0, -5.0, True):
        assert extent_ratio(10.0, unusable) is None  # no size on the form: no check, no number


@pytest.mark.parametrize("factor, flagged, words", [(1.0, False, None), (0.3, False, None), (2.4, False, None),
                                                     (4.0, True, "enhancing parenchyma"), (0.1, True, "only part")])
def test_caution_outside_the_limits_only(factor, flagged, words):
    caution = extent_caution(factor * sphere_volume_ml(25.0), 25.0)
    assert (caution is not None) == flagged
    if flagged:
        assert words in caution and "25 mm" in caution and "check its outline" in caution


def test_findings_and_report_row_carry_the_caution():
    spilled = extent_findings(5 * sphere_volume_ml(20.0), 20.0)
    assert spilled["mask_to_clinical_size_ratio"] == pytest.approx(5.0) and "5.0 ×" in spilled["extent_caution"]
    assert extent_findings(sphere_volume_ml(20.0), 20.0) == {"mask_to_clinical_size_ratio": 1.0}
    assert extent_findings(3.0, None) == {}
    record = {"case_id": "c1", "pcr_probability": 0.4, "predicted_class": "no pCR", "threshold": 0.3,
              "attention_in_mask": 0.5, "pointing_game_hit": True, "clinical_used": {"tumour_size_mm": 20.0},
              "missing_clinical": [], "inputs": {}, "model_card": {}, "tumour_volume_ml": 21.0, **spilled}
    findings = next(section for section in build_report(record)["sections"] if section["title"] == "Findings")
    rows = dict(findings["rows"])
    row = rows[f"Mask volume / sphere of the clinical size (expected {EXTENT_LIMITS[0]:g}-{EXTENT_LIMITS[1]:g})"]
    assert row.startswith("5.00 - outside the expected range: check the outline")
    headline = build_report(record)["headline"]
    assert headline["caution"] == spilled["extent_caution"]  # in red under the pCR number, not only in the findings
    record.update(extent_findings(sphere_volume_ml(20.0), 20.0))
    record.pop("extent_caution")
    assert "caution" not in build_report(record)["headline"]


def test_the_evaluation_counts_flags_on_masks_that_needed_checking_and_on_the_rest():
    import pandas as pd

    from responseai.breast.segmentation.evaluation import _extent_line, extent_caution_summary

    table = pd.DataFrame({
        "found": [True, True, True, False, True, True],
        "false_positive_on_distractor": [False, False, False, False, True, False],
        "volume_ml": [9.0, 2.0, 2.0, 0.0, 1.0, 2.0],
        "reference_volume_ml": [2.0, 2.0, 2.0, 2.0, 2.0, 2.0],
        "extent_ratio": [4.0, 1.0, 3.0, 0.0, 0.1, None],  # spill flagged, fine, fine but flagged, miss, distractor, no size
    })
    summary = extent_caution_summary(table)
    assert summary == {"n_checked": 5, "limits": list(EXTENT_LIMITS), "flagged": 4, "needs_checking": 3,
                       "flagged_of_needs_checking": 3, "flagged_of_fine": 1}
    assert "flagged 3 of the 3 masks that needed checking" in _extent_line(summary) and "1 of the 2 others" in _extent_line(summary)
    assert extent_caution_summary(table.drop(columns="extent_ratio")) == {"n_checked": 0}


def test_the_pdf_prints_the_caution_under_the_headline(tmp_path):
    import pypdf

    from responseai.reports.writer import write_report

    record = {"case_id": "c2", "pcr_probability": 0.4, "predicted_class": "no pCR", "threshold": 0.3,
              "attention_in_mask": 0.5, "pointing_game_hit": True, "clinical_used": {"tumour_size_mm": 20.0},
              "missing_clinical": [], "inputs": {}, "model_card": {"name": "breast_pcr", "version": "1.4.0", "sha256": "0" * 64},
              "tumour_volume_ml": 21.0,
              **extent_findings(5 * sphere_volume_ml(20.0), 20.0)}
    files = write_report(build_report(record), {}, tmp_path / "report")
    first_page = pypdf.PdfReader(files["pdf"]).pages[0].extract_text()
    assert "Check before use: the tumour mask" in first_page
    assert first_page.index("Check before use") < first_page.index("Findings")
