"""The mask-extent caution: a mask far larger or smaller than the clinical size is flagged; its outline is never reshaped."""

from __future__ import annotations

import math

import numpy as np
import pytest

from responseai.breast.inference import extent_findings
from responseai.breast.report import build_report
from responseai.breast.segmentation.extent import (
    ELLIPSOID_LIMITS,
    EXTENT_LIMITS,
    check_diameters,
    ellipsoid_volume_ml,
    extent_caution,
    extent_ratio,
    principal_diameters_mm,
    sphere_volume_ml,
)
from responseai.errors import ClinicalValueError
from responseai.image import Image


def _size(mm, second=None, third=None):
    return {"tumour_size_mm": mm, "tumour_size_2_mm": second, "tumour_size_3_mm": third}


def test_sphere_volume_and_ratio():
    assert sphere_volume_ml(20.0) == pytest.approx(4 / 3 * math.pi * 10**3 / 1000)
    assert extent_ratio(2 * sphere_volume_ml(30.0), _size(30.0)) == pytest.approx(2.0)
    for unusable in (None, "", "30", float("nan"), 0.0, -5.0, True):
        assert extent_ratio(10.0, _size(unusable)) is None  # no size on the form: no check, no number


def test_three_diameters_use_their_ellipsoid_and_tighter_limits():
    """A mask twice an elongated tumour fits the sphere of its largest diameter but not its ellipsoid."""
    tumour = ellipsoid_volume_ml(30.0, 15.0, 12.0)
    assert tumour == pytest.approx(4 / 3 * math.pi * 15 * 7.5 * 6 / 1000)
    assert extent_caution(2 * tumour, _size(30.0)) is None  # 0.42 × the 30 mm sphere
    caution = extent_caution(2 * tumour, _size(30.0, 15.0, 12.0))
    assert "30 × 15 × 12 mm ellipsoid" in caution and "2.0 ×" in caution
    assert extent_caution(0.8 * tumour, _size(30.0, 15.0, 12.0)) is None
    assert extent_ratio(tumour, _size(30.0, 15.0, None)) == pytest.approx(tumour / sphere_volume_ml(30.0))  # one missing
    assert ELLIPSOID_LIMITS[1] < 2 <= EXTENT_LIMITS[1]


@pytest.mark.parametrize("values, words", [(_size(20.0, 25.0, 10.0), "2nd diameter: 25 mm is larger"),
                                           (_size(20.0, 15.0, 21.0), "3rd diameter: 21 mm is larger"),
                                           (_size(None, 15.0, None), "without the tumour size")])
def test_diameters_that_contradict_the_largest_are_refused(values, words):
    with pytest.raises(ClinicalValueError, match=words):
        check_diameters(values)
    check_diameters(_size(20.0, 20.0, 8.0))  # equal to the largest is fine


def test_principal_diameters_of_a_rotated_ellipsoid():
    """Extents along the mask's own axes, whatever the grid's orientation: a 40 × 20 × 12 mm ellipsoid
    rotated 30° in-plane on a 0.5 × 0.5 × 1 mm grid with a non-identity direction."""
    z, y, x = np.mgrid[:40, :120, :120].astype(float)
    px, py, pz = (x - 60) * 0.5, (y - 60) * 0.5, (z - 20) * 1.0
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    u, v = c * px + s * py, -s * px + c * py
    mask = ((u / 20) ** 2 + (v / 10) ** 2 + (pz / 6) ** 2 <= 1).astype(np.uint8)
    flip = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
    diameters = principal_diameters_mm(Image(mask, (0.5, 0.5, 1.0), (10.0, -5.0, 3.0), np.reshape(flip, (3, 3))))
    assert diameters == pytest.approx((40.0, 20.0, 12.0), abs=1.5)
    assert principal_diameters_mm(Image(np.zeros((3, 3, 3), np.uint8), (1, 1, 1), (0, 0, 0), np.eye(3))) == (0, 0, 0)


@pytest.mark.parametrize("factor, flagged, words", [(1.0, False, None), (0.3, False, None), (2.4, False, None),
                                                     (4.0, True, "enhancing parenchyma"), (0.1, True, "only part")])
def test_caution_outside_the_limits_only(factor, flagged, words):
    caution = extent_caution(factor * sphere_volume_ml(25.0), _size(25.0))
    assert (caution is not None) == flagged
    if flagged:
        assert words in caution and "25 mm" in caution and "check its outline" in caution


def test_findings_and_report_row_carry_the_caution():
    spilled = extent_findings(5 * sphere_volume_ml(20.0), _size(20.0))
    assert spilled["mask_to_clinical_size_ratio"] == pytest.approx(5.0) and "5.0 ×" in spilled["extent_caution"]
    assert extent_findings(sphere_volume_ml(20.0), _size(20.0)) == {
        "mask_to_clinical_size_ratio": 1.0, "clinical_size_yardstick": "a 20 mm sphere", "extent_limits": list(EXTENT_LIMITS)}
    assert extent_findings(3.0, _size(None)) == {}
    record = {"case_id": "c1", "pcr_probability": 0.4, "predicted_class": "no pCR", "threshold": 0.3,
              "attention_in_mask": 0.5, "pointing_game_hit": True, "clinical_used": {"tumour_size_mm": 20.0},
              "missing_clinical": [], "inputs": {}, "model_card": {}, "tumour_volume_ml": 21.0, **spilled}
    findings = next(section for section in build_report(record)["sections"] if section["title"] == "Findings")
    rows = dict(findings["rows"])
    row = rows[f"Mask volume / a 20 mm sphere (expected {EXTENT_LIMITS[0]:g}-{EXTENT_LIMITS[1]:g})"]
    assert row.startswith("5.00 - outside the expected range: check the outline")
    record.update(extent_findings(2 * ellipsoid_volume_ml(20.0, 12.0, 10.0), _size(20.0, 12.0, 10.0)),
                  mask_diameters_mm=[26.0, 15.5, 12.0])
    rows = dict(next(s for s in build_report(record)["sections"] if s["title"] == "Findings")["rows"])
    low, high = ELLIPSOID_LIMITS
    assert rows[f"Mask volume / the 20 × 12 × 10 mm ellipsoid (expected {low:g}-{high:g})"].startswith("2.00 - outside")
    assert rows["Mask diameters (principal axes)"] == "26 × 15.5 × 12 mm"
    record["clinical_used"] = _size(20.0, 12.0, 10.0)
    used = dict(next(s for s in build_report(record)["sections"] if s["title"] == "Clinical values used")["rows"])
    assert "Tumour size (mm)" in used and not any("diameter" in label for label in used)  # not a model input
    record.update(spilled)
    headline = build_report(record)["headline"]
    assert headline["caution"] == spilled["extent_caution"]  # in red under the pCR number, not only in the findings
    record.update(extent_findings(sphere_volume_ml(20.0), _size(20.0)))
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
        # spill flagged, fine, fine but flagged, miss, distractor, no size
        "extent_flagged": [True, False, True, True, True, None],
        "extent_yardstick": ["sphere", "ellipsoid", "ellipsoid", "sphere", "sphere", None],
    })
    summary = extent_caution_summary(table)
    assert summary == {"n_checked": 5, "yardsticks": {"sphere": 3, "ellipsoid": 2}, "flagged": 4, "needs_checking": 3,
                       "flagged_of_needs_checking": 3, "flagged_of_fine": 1}
    line = _extent_line(summary)
    assert "flagged 3 of the 3 masks that needed checking" in line and "1 of the 2 others" in line
    assert "3 against the sphere, 2 against the ellipsoid" in line
    assert extent_caution_summary(table.drop(columns="extent_flagged")) == {"n_checked": 0}


def test_the_pdf_prints_the_caution_under_the_headline(tmp_path):
    import pypdf

    from responseai.reports.writer import write_report

    record = {"case_id": "c2", "pcr_probability": 0.4, "predicted_class": "no pCR", "threshold": 0.3,
              "attention_in_mask": 0.5, "pointing_game_hit": True, "clinical_used": {"tumour_size_mm": 20.0},
              "missing_clinical": [], "inputs": {}, "model_card": {"name": "breast_pcr", "version": "1.4.0", "sha256": "0" * 64},
              "tumour_volume_ml": 21.0,
              **extent_findings(5 * sphere_volume_ml(20.0), _size(20.0))}
    files = write_report(build_report(record), {}, tmp_path / "report")
    first_page = pypdf.PdfReader(files["pdf"]).pages[0].extract_text()
    assert "Check before use: the tumour mask" in first_page
    assert first_page.index("Check before use") < first_page.index("Findings")


def test_the_form_marks_the_diameter_that_contradicts_the_largest():
    """The Slicer form's rule across fields (shown in red before Apply), on the raw text the form holds."""
    from responseai.breast.constants import form_errors

    assert form_errors({"tumour_size_mm": "25", "tumour_size_2_mm": "18", "tumour_size_3_mm": ""}) == {}
    errors = form_errors({"tumour_size_mm": "18", "tumour_size_2_mm": "25", "tumour_size_3_mm": "abc"})
    assert list(errors) == ["tumour_size_2_mm"] and "25 mm is larger than the tumour size (18 mm)" in errors["tumour_size_2_mm"]
    assert "without the tumour size" in form_errors({"tumour_size_mm": "", "tumour_size_3_mm": "12"})["tumour_size_3_mm"]

