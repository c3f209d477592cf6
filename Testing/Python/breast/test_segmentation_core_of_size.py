"""A first choice many times the clinical size, cut to the tumour-sized piece that stands out inside it."""

from __future__ import annotations

import numpy as np
import pytest

from responseai.breast.segmentation.extent import ExtentChoice, yardstick
from responseai.breast.segmentation.outline import core_of_size

SPACING = (1.0, 1.0, 1.0)


def _ball(shape, centre, radius) -> np.ndarray:
    z, y, x = np.indices(shape)
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius ** 2


def _spilled(tumour_uptake: float, necrotic: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 10 mm tumour (ball) at one end of a 60 × 24 × 24 mm block of enhancing parenchyma (uptake 0.5)."""
    shape = (30, 30, 70)
    outline = np.zeros(shape, bool)
    outline[3:27, 3:27, 3:63] = True
    tumour = _ball(shape, (15, 15, 14), 10)
    uptake = np.where(outline, 0.5, 0.05).astype(np.float32)
    uptake[tumour] = tumour_uptake
    if necrotic:
        uptake[_ball(shape, (15, 15, 14), 4)] = 0.1
    return outline | tumour, uptake, tumour


def _channels(uptake: np.ndarray) -> np.ndarray:
    """Network input (pre, post1, post2, post1 − pre) with ``uptake`` as early enhancement and a plateau (post2 =
    post1): the tumour-likeness is then the uptake itself."""
    return np.stack([np.full(uptake.shape, 0.3, np.float32), 0.3 + uptake, 0.3 + uptake, uptake])


@pytest.mark.parametrize("necrotic", [False, True])
def test_the_tumour_sized_piece_that_stands_out_is_found(necrotic):
    outline, uptake, tumour = _spilled(1.0, necrotic)
    piece = core_of_size(outline, _channels(uptake), np.pi / 6 * 20 ** 3 / 1000, SPACING, contrast=1.25)
    assert piece is not None
    # a necrotic centre falls under the cut; hole filling (finish_outline) completes it in the product
    ring = tumour & (uptake > 0.2)
    assert (piece & ring).sum() / ring.sum() > 0.95 and (piece & ~tumour).sum() < 0.05 * tumour.sum()


def test_nothing_is_cut_when_nothing_stands_out():
    outline, uptake, _ = _spilled(0.55)  # the "tumour" enhances like the parenchyma: maybe the wrong structure
    assert core_of_size(outline, _channels(uptake), np.pi / 6 * 20 ** 3 / 1000, SPACING, contrast=1.25) is None


def test_the_selection_cuts_a_spilled_first_choice_only_with_a_size_and_the_card_option():
    from responseai.breast.segmentation.inference import select_candidates

    outline, uptake, tumour = _spilled(1.0)
    probability = np.where(outline, 0.9, 0.0).astype(np.float32)
    channels = _channels(uptake)
    region = np.ones(uptake.shape, bool)
    stick = yardstick({"tumour_size_mm": 20.0})  # 4.2 ml; the outline (34.6 ml) is 8 x
    with_core = ExtentChoice(2.0, core_contrast=1.25)
    cut = select_candidates(probability, 0.5, region, channels, SPACING, expected=stick, extent_choice=with_core)
    assert cut.cut_from_ml == pytest.approx(outline.sum() / 1000) and not cut.by_extent
    assert abs(int(cut.chosen.sum()) - int(tumour.sum())) < 0.15 * tumour.sum()
    for rule, size in ((ExtentChoice(2.0), stick), (with_core, None)):
        kept = select_candidates(probability, 0.5, region, channels, SPACING, expected=size, extent_choice=rule)
        assert kept.cut_from_ml is None and kept.chosen.sum() == outline.sum()


def test_the_card_entry_round_trips_and_is_checked():
    rule = ExtentChoice(2.0, core_contrast=1.25)
    assert ExtentChoice.from_card(rule.to_card()) == rule
    assert ExtentChoice.from_card({"factor": 2}).core_contrast is None
    with pytest.raises(ValueError, match="core_contrast"):
        ExtentChoice(2.0, core_contrast=0.5)


def test_the_user_is_told_the_outline_was_cut_in_the_record_and_the_report():
    from responseai.breast.inference import segmentation_findings
    from responseai.breast.report import build_report
    from responseai.breast.segmentation.inference import ExamSegmentation
    from responseai.image import Image

    mask = np.zeros((10, 20, 20), np.uint8)
    mask[3:7, 5:15, 5:15] = 1  # 400 voxels of 1 mm: 0.4 ml
    found = ExamSegmentation(Image(mask), None, "left", 3, 0, 0.9, None, None, cut_from_ml=3.2)
    findings = segmentation_findings(found)
    assert findings["outline_cut_from_ml"] == 3.2
    assert "3.2 ml" in findings["outline_caution"] and "0.4 ml" in findings["outline_caution"]
    assert "outline_caution" not in segmentation_findings(ExamSegmentation(Image(mask), None, "left", 3, 0, 0.9,
                                                                           None, None))
    record = {"case_id": "c1", "pcr_probability": 0.4, "predicted_class": "no pCR", "threshold": 0.3,
              "attention_in_mask": 0.5, "pointing_game_hit": True, "clinical_used": {"tumour_size_mm": 9.0},
              "missing_clinical": [], "inputs": {}, "model_card": {}, "tumour_volume_ml": 0.4, **findings}
    assert "cut to the 0.4 ml piece" in build_report(record)["headline"]["caution"]


def test_slicer_results_table_says_the_outline_was_cut(slicer_app):
    from BreastResponseAILib.logic import _extent_row

    caution = "the model's outline (3.2 ml) was far larger than the clinical tumour size allows"
    assert _extent_row({"outline_caution": caution, "clinical_size_yardstick": "a 9 mm sphere"}) == caution
    assert _extent_row({"clinical_size_yardstick": "a 9 mm sphere"}) == "fits a 9 mm sphere"


def test_the_evaluation_counts_the_cuts_and_whether_they_kept_the_tumour():
    import pandas as pd

    from responseai.breast.segmentation.evaluation import _outline_change_line, cut_summary

    table = pd.DataFrame({"cut_to_size": [True, True, False], "found": [True, False, True]})
    assert cut_summary(table) == {"cut": 2, "found": 1}
    line = _outline_change_line({"cut_to_size": cut_summary(table)}, "cut_to_size")
    assert "cut to the piece of that size: 2 exams, the tumour in 1" in line
    assert _outline_change_line({"cut_to_size": {"cut": 0, "found": 0}}, "cut_to_size") == ""


def test_the_training_command_writes_the_cut_into_the_card(tmp_path):
    from training import breast_outline

    from responseai.breast.segmentation.inference import card_extent_choice
    from responseai.resources import model_path
    from responseai.weights import read_card

    weights, out = model_path("breast_seg"), tmp_path / "breast_seg.safetensors"
    assert breast_outline.main(["--weights", str(weights), "--out", str(out), "--version", "9.9.9", "--extent-choice",
                                "2", "--core-contrast", "1.25"]) == 0
    assert card_extent_choice(read_card(out, expected_task="segmentation")) == ExtentChoice(2.0, None, 1.25)
    for bad in (["--core-contrast", "1.25"], ["--extent-choice", "2", "--core-contrast", "0.5"]):
        with pytest.raises(SystemExit):
            breast_outline.main(["--weights", str(weights), "--out", str(out), "--version", "1", *bad])
