"""A choice far below the clinical size, grown over the large heterogeneous tumour it is the brightest part of."""

from __future__ import annotations

import numpy as np
import pytest

from responseai.breast.segmentation.extent import ExtentChoice, yardstick
from responseai.breast.segmentation.inference import select_candidates
from responseai.breast.segmentation.outline import grown_to_size

SPACING = (1.0, 1.0, 1.0)
SHAPE = (60, 80, 80)


def _ball(centre, radius) -> np.ndarray:
    z, y, x = np.indices(SHAPE)
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius ** 2


def _large_tumour(tumour_uptake: float = 0.45) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 36 mm tumour enhancing at ``tumour_uptake`` with a 12 mm core at 0.6 (what the network calls tumour), in
    breast tissue whose parenchyma enhances at 0.05-0.2."""
    rng = np.random.default_rng(0)
    tumour, core = _ball((30, 40, 40), 18), _ball((30, 40, 34), 6)
    uptake = rng.uniform(0.05, 0.2, SHAPE).astype(np.float32)
    uptake[tumour] = tumour_uptake
    uptake[core] = 0.6
    return core, uptake, tumour


def _channels(uptake: np.ndarray) -> np.ndarray:
    """Network input (pre, post1, post2, post1 − pre) with ``uptake`` as early enhancement."""
    return np.stack([np.full(uptake.shape, 0.3, np.float32), 0.3 + uptake, 0.3 + uptake, uptake])


def test_the_core_is_grown_over_the_tumour_and_stops_at_the_breast():
    core, uptake, tumour = _large_tumour()
    grown = grown_to_size(core, uptake, np.ones(SHAPE, bool), np.pi / 6 * 36 ** 3 / 1000, SPACING)
    assert grown is not None and grown[core].all()
    dice = 2 * (grown & tumour).sum() / (grown.sum() + tumour.sum())
    assert dice > 0.95


def test_nothing_is_grown_when_the_outline_does_not_stand_out_from_the_breast():
    core, uptake, _ = _large_tumour()
    uptake[:] = 0.6  # everything enhances like the core: no baseline to tell the tumour by
    assert grown_to_size(core, uptake, np.ones(SHAPE, bool), 20.0, SPACING) is None


def test_the_selection_grows_a_small_choice_only_with_a_size_and_the_card_option():
    core, uptake, tumour = _large_tumour()
    probability = np.where(core, 0.9, 0.0).astype(np.float32)
    channels, region = _channels(uptake), np.ones(SHAPE, bool)
    stick = yardstick({"tumour_size_mm": 36.0})  # 24.4 ml; the core (0.9 ml) is 0.04 x
    rule = ExtentChoice(2.0, core_contrast=1.25, grow_small=True)
    grown = select_candidates(probability, 0.5, region, channels, SPACING, expected=stick, extent_choice=rule)
    assert grown.grown_from_ml == pytest.approx(core.sum() / 1000) and grown.cut_from_ml is None
    assert 2 * (grown.chosen.astype(bool) & tumour).sum() / (grown.chosen.sum() + tumour.sum()) > 0.95
    for other, size in ((ExtentChoice(2.0, core_contrast=1.25), stick), (rule, None),
                        (rule, yardstick({"tumour_size_mm": 14.0}))):  # 14 mm: the core fits, nothing to grow
        kept = select_candidates(probability, 0.5, region, channels, SPACING, expected=size, extent_choice=other)
        assert kept.grown_from_ml is None and kept.chosen.sum() == core.sum()


def test_a_growth_that_would_not_fit_the_size_is_not_taken():
    core, uptake, _ = _large_tumour()
    probability = np.where(core, 0.9, 0.0).astype(np.float32)
    stick = yardstick({"tumour_size_mm": 80.0})  # 268 ml: the 24 ml tumour grown is still under a quarter of it
    kept = select_candidates(probability, 0.5, np.ones(SHAPE, bool), _channels(uptake), SPACING, expected=stick,
                             extent_choice=ExtentChoice(2.0, grow_small=True))
    assert kept.grown_from_ml is None and kept.chosen.sum() == core.sum()


def test_a_partial_outline_is_grown_only_under_the_card_grow_below():
    """2.13.0: a choice at about half the clinical size (above 2.12.0's trigger, the lower limit 0.25) is grown
    with ``grow_below`` 0.6, and left as it was without it."""
    _, uptake, tumour = _large_tumour()
    part = _ball((30, 40, 36), 14) & tumour  # 11.5 ml of the 24.4 ml tumour: 0.47 x its sphere
    uptake[part] = 0.6
    probability = np.where(part, 0.9, 0.0).astype(np.float32)
    stick, region, channels = yardstick({"tumour_size_mm": 36.0}), np.ones(SHAPE, bool), _channels(uptake)
    below = ExtentChoice(2.0, grow_small=True, grow_below=0.6)
    grown = select_candidates(probability, 0.5, region, channels, SPACING, expected=stick, extent_choice=below)
    assert grown.grown_from_ml == pytest.approx(part.sum() / 1000)
    assert 2 * (grown.chosen.astype(bool) & tumour).sum() / (grown.chosen.sum() + tumour.sum()) > 0.95
    kept = select_candidates(probability, 0.5, region, channels, SPACING, expected=stick,
                             extent_choice=ExtentChoice(2.0, grow_small=True))
    assert kept.grown_from_ml is None and kept.chosen.sum() == part.sum()
    assert below.grow_trigger((0.25, 2.5)) == 0.6 and below.grow_trigger((0.7, 2.0)) == 0.7


def test_the_card_entry_round_trips_and_is_checked():
    rule = ExtentChoice(2.0, core_contrast=1.25, grow_small=True)
    assert ExtentChoice.from_card(rule.to_card()) == rule and rule.to_card()["grow_small"] is True
    assert not ExtentChoice.from_card({"factor": 2}).grow_small and "grow_small" not in ExtentChoice(2.0).to_card()
    with pytest.raises(ValueError, match="grow_small"):
        ExtentChoice.from_card({"factor": 2, "grow_small": "yes"})
    below = ExtentChoice(2.0, grow_small=True, grow_below=0.6)
    assert ExtentChoice.from_card(below.to_card()) == below and "grow_below" not in rule.to_card()
    for bad in ({"factor": 2, "grow_small": True, "grow_below": 1.5}, {"factor": 2, "grow_below": 0.6}):
        with pytest.raises(ValueError, match="grow_below"):
            ExtentChoice.from_card(bad)


def test_the_user_is_told_the_outline_was_grown_and_the_evaluation_counts_it():
    import pandas as pd

    from responseai.breast.inference import segmentation_findings
    from responseai.breast.report import build_report
    from responseai.breast.segmentation.evaluation import _outline_change_line, cut_summary
    from responseai.breast.segmentation.inference import ExamSegmentation
    from responseai.image import Image

    mask = np.zeros((10, 20, 20), np.uint8)
    mask[3:7, 5:15, 5:15] = 1  # 400 voxels of 1 mm: 0.4 ml
    found = ExamSegmentation(Image(mask), None, "left", 3, 0, 0.9, None, None, grown_from_ml=0.05)
    findings = segmentation_findings(found)
    assert findings["outline_grown_from_ml"] == 0.05 and "outline_cut_from_ml" not in findings
    assert "far smaller" in findings["outline_caution"] and "0.4 ml" in findings["outline_caution"]
    record = {"case_id": "c1", "pcr_probability": 0.4, "predicted_class": "no pCR", "threshold": 0.3,
              "attention_in_mask": 0.5, "pointing_game_hit": True, "clinical_used": {"tumour_size_mm": 9.0},
              "missing_clinical": [], "inputs": {}, "model_card": {}, "tumour_volume_ml": 0.4, **findings}
    assert "grown to the 0.4 ml" in build_report(record)["headline"]["caution"]
    # a growth that only re-drew the edge (volume within REDRAWN_BAND of the network's outline) is recorded, not cautioned
    for before, cautioned in ((0.33, False), (0.5, False), (0.31, True), (0.51, True)):  # 0.4 ml / before: 1.21 … 0.78
        redrawn = segmentation_findings(ExamSegmentation(Image(mask), None, "left", 3, 0, 0.9, None, None,
                                                         grown_from_ml=before))
        assert redrawn["outline_grown_from_ml"] == before and ("outline_caution" in redrawn) is cautioned
    table = pd.DataFrame({"grown_to_size": [True, True, False], "found": [True, True, False]})
    summary = cut_summary(table, "grown_to_size", "grown")
    line = _outline_change_line({"grown_to_size": summary}, "grown_to_size")
    assert summary == {"grown": 2, "found": 2} and "grown over the tumour of that size: 2 exams, the tumour in 2" in line
    assert _outline_change_line({"grown_to_size": {"grown": 0, "found": 0}}, "grown_to_size") == ""


def test_the_training_command_writes_the_growth_into_the_card(tmp_path):
    from training import breast_outline

    from responseai.breast.segmentation.inference import card_extent_choice
    from responseai.resources import model_path
    from responseai.weights import read_card

    weights, out = model_path("breast_seg"), tmp_path / "breast_seg.safetensors"
    assert breast_outline.main(["--weights", str(weights), "--out", str(out), "--version", "9.9.9", "--extent-choice",
                                "2", "--core-contrast", "1.25", "--grow-small"]) == 0
    assert card_extent_choice(read_card(out, expected_task="segmentation")) == ExtentChoice(2.0, None, 1.25, True)
    with pytest.raises(SystemExit):
        breast_outline.main(["--weights", str(weights), "--out", str(out), "--version", "1", "--grow-small"])
    assert breast_outline.main(["--weights", str(weights), "--out", str(out), "--version", "9.9.9", "--extent-choice",
                                "2", "--grow-small", "--grow-below", "0.6"]) == 0
    assert card_extent_choice(read_card(out, expected_task="segmentation")).grow_below == 0.6
    with pytest.raises(SystemExit):  # the second trigger is 2.12.0's growth's: it needs it
        breast_outline.main(["--weights", str(weights), "--out", str(out), "--version", "1", "--extent-choice", "2",
                             "--grow-below", "0.6"])
