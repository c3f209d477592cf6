"""The tumour search kept to the breast the form names (``laterality``), and the caution when a mask is elsewhere."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from responseai.breast.segmentation.evaluation import _side_line, side_summary
from responseai.breast.segmentation.inference import select_candidates
from responseai.breast.segmentation.side import half_of, named_side, side_caution, side_of, world_x
from responseai.errors import ClinicalValueError
from responseai.image import Image

SHAPE = (20, 30, 40)  # z, y, x
RAS_AXIAL = np.diag([-1.0, -1.0, 1.0])  # index x runs to the patient's right: world x falls with it


def _grid(direction=np.eye(3), origin=(-20.0, 0.0, 0.0)) -> Image:
    return Image(np.zeros(SHAPE, np.uint8), (1.0, 1.0, 1.0), origin, direction)


def _two_lesions() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probability with a confident lesion at index x 5–9 and a weaker one at x 30–34, and each alone."""
    first, second = np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)
    first[8:12, 12:18, 5:10] = True
    second[8:12, 12:18, 30:35] = True
    probability = np.where(first, 0.95, np.where(second, 0.7, 0.0)).astype(np.float32)
    return probability, first, second


def test_the_form_side_is_read_and_checked():
    assert named_side({"laterality": "left"}) == "left" and named_side({"laterality": "unknown"}) is None
    assert named_side({}) is None and named_side(None) is None and named_side({"laterality": float("nan")}) is None
    # files written elsewhere: DICOM's Laterality codes, capitals; a bilateral cancer searches both breasts
    assert named_side({"laterality": "L"}) == "left" and named_side({"laterality": "Right"}) == "right"
    assert named_side({"laterality": "B"}) is None and named_side({"laterality": "bilateral"}) is None
    from responseai.breast.constants import MANIFEST_SCHEMA

    column = MANIFEST_SCHEMA.by_name["laterality"]  # a manifest cell reads the same way
    assert column.check("L") == ("left", None) and column.check("B") == (None, None) and column.check("x")[1]
    with pytest.raises(ClinicalValueError, match="Tumour side"):
        named_side({"laterality": "middle"})


@pytest.mark.parametrize("direction", [np.eye(3), RAS_AXIAL, np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0.0]])])
def test_world_x_and_the_half_match_the_voxel_geometry(direction):
    grid = _grid(direction, origin=(7.0, -3.0, 12.0))
    x = world_x(grid)
    for k, j, i in ((0, 0, 0), (5, 17, 33), (19, 29, 39)):
        expected = grid.origin[0] + (grid.direction @ np.array([i, j, k], float))[0]
        assert x[k, j, i] == pytest.approx(expected)
    left = half_of(grid, "left")
    assert np.array_equal(left, x > 0) and np.array_equal(half_of(grid, "right"), ~left)
    voxel = np.zeros(SHAPE, np.uint8)
    voxel[tuple(np.argwhere(left)[0])] = 1  # one voxel in the left half is on the left, as side_of says
    assert side_of(grid.with_array(voxel)) == "left"


def test_candidates_in_the_other_breast_are_set_aside():
    probability, first, second = _two_lesions()
    grid = _grid()  # world x = index x - 20: the confident lesion is on the right, the weaker one on the left
    both = select_candidates(probability, 0.5, None)
    assert both.chosen.astype(bool)[first].all() and both.set_aside_other_side == 0
    left = select_candidates(probability, 0.5, None, named_half=half_of(grid, "left"))
    assert left.chosen.astype(bool)[second].all() and not left.chosen.astype(bool)[first].any()
    assert left.set_aside_other_side == 1 and left.runner_up is None  # the other breast's lesion is not offered
    assert left.other_side_first and not both.other_side_first  # the model's own first choice was the other breast's
    right = select_candidates(probability, 0.5, None, named_half=half_of(grid, "right"))
    assert right.chosen.astype(bool)[first].all() and right.set_aside_other_side == 1 and not right.other_side_first


def test_a_form_side_that_overrules_the_model_first_choice_is_cautioned():
    """A side typed wrong on the form, in an exam whose named breast holds some candidate, would otherwise pass in
    silence: the result says the model's first choice lay in the other breast."""
    from responseai.breast.inference import segmentation_findings
    from responseai.breast.segmentation.inference import ExamSegmentation

    def findings(first_elsewhere: bool, side: str = "left") -> dict:
        return segmentation_findings(ExamSegmentation(_grid(), None, side, 2, 0, 0.9, None, None, named_side="left",
                                                      set_aside_other_side=1, other_side_first=first_elsewhere))

    caution = findings(True)["side_caution"]
    assert "first choice was a lesion in the right breast" in caution and "followed the form to the left" in caution
    assert "side_caution" not in findings(False)
    assert "side_caution" not in findings(True, side="right")  # a mask outside the named breast has its own caution


def test_no_candidate_in_the_named_breast_searches_both_and_the_user_is_told():
    probability, first, _ = _two_lesions()
    probability[probability < 0.9] = 0.0  # only the right-sided lesion remains
    grid = _grid()
    found = select_candidates(probability, 0.5, None, named_half=half_of(grid, "left"))
    assert found.chosen.astype(bool)[first].all() and found.set_aside_other_side == 0
    mask_side = side_of(grid.with_array(found.chosen))
    caution = side_caution(mask_side, "left", model_mask=True)
    assert mask_side == "right" and "right breast but the form names the left" in caution and "no tumour" in caution
    assert "no tumour" not in side_caution("right", "left", model_mask=False)
    assert side_caution("left", "left", True) is None and side_caution("left", None, True) is None


def test_the_evaluation_counts_the_exams_the_side_changed():
    table = pd.DataFrame({"side_named": [True, True, True, False], "set_aside_other_side": [2, 0, 1, 0],
                          "other_side_first": [True, False, True, False], "found": [True, True, False, True]})
    summary = side_summary(table)
    assert summary == {"named": 3, "set_aside": 2, "set_aside_found": 1, "other_side_first": 2,
                       "other_side_first_found": 1}
    assert "named the tumour's breast in 3 exams" in _side_line(summary) and "in 1 of those" in _side_line(summary)
    assert "lay in the other breast (the user is cautioned to check the form's side) in 2" in _side_line(summary)
    assert _side_line({"named": 0, "set_aside": 0, "set_aside_found": 0}) == ""


def test_a_user_mask_in_the_other_breast_is_flagged_in_the_result_and_report(tmp_path):
    from responseai.breast.demo import demo_case
    from responseai.breast.inference import make_case, result_record, run_case
    from responseai.breast.report import build_report

    case = demo_case()
    side = side_of(case.mask)
    other = "left" if side == "right" else "right"
    wrong = make_case("side-1", case.phases, {**case.clinical, "laterality": other}, case.mask)
    record = result_record(run_case(wrong))
    assert record["tumour_side"] == side and record["clinical_used"]["laterality"] == other
    assert f"{side} breast but the form names the {other}" in record["side_caution"]
    assert "no tumour candidate" not in record["side_caution"]  # the user's mask, not the model's search
    report = build_report({**record, "model_card": {}})
    assert record["side_caution"] in report["headline"]["caution"]
    assert f"patient's {side} breast (the form names the {other}" in json.dumps(report)
    right = result_record(run_case(make_case("side-2", case.phases, {**case.clinical, "laterality": side}, case.mask)))
    assert "side_caution" not in right


def test_the_midline_is_read_between_the_breasts_not_at_the_scanner_origin():
    """A table offset of +100 mm puts both breasts at world x > 0; the gap between them still parts the sides."""
    from responseai.breast.segmentation.side import midline_mm

    grid = _grid(origin=(100.0, 0.0, 0.0))  # world x = index x + 100
    region = np.zeros(SHAPE, bool)
    region[5:15, 5:25, 2:12] = True  # the patient's right breast: world x 102–111
    region[5:15, 5:25, 28:38] = True  # left: 128–137
    midline = midline_mm(grid, region)
    assert 111 < midline < 128 and midline_mm(grid, region[:, :, :20]) == 0.0 and midline_mm(grid, None) == 0.0
    blob = np.zeros(SHAPE, np.uint8)
    blob[8:11, 10:14, 5:9] = 1
    assert side_of(grid.with_array(blob)) == "left" and side_of(grid.with_array(blob), midline) == "right"
    assert not half_of(grid, "left", midline)[..., 5:9].any() and half_of(grid, "left", midline)[..., 30:].all()


def test_an_exam_shifted_off_the_scanner_origin_keeps_its_tumour_side():
    from responseai.breast.demo import demo_case
    from responseai.breast.segmentation.inference import segment_exam

    case = demo_case()
    shift = lambda image: Image(image.array, image.spacing, (image.origin[0] + 160.0, *image.origin[1:]),  # noqa: E731
                                image.direction)
    true_side = side_of(case.mask)
    shifted = segment_exam({name: shift(image) for name, image in case.phases.items()},
                           clinical={"laterality": true_side})
    assert side_of(shift(case.mask)) == "left" != true_side  # the scanner's x = 0 alone would name the wrong breast
    assert shifted.side == true_side and shifted.midline_mm > 100
    assert (shifted.mask.array.astype(bool) & (case.mask.array > 0)).sum() > 0.8 * (case.mask.array > 0).sum()
