"""The clinical size as a second opinion on the candidate choice (the card's ``extent_choice``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from responseai.breast.segmentation.extent import (
    ELLIPSOID_LIMITS,
    EXTENT_LIMITS,
    ExtentChoice,
    Yardstick,
    sphere_volume_ml,
    yardstick,
)


def _stick(volume_ml: float, limits=EXTENT_LIMITS) -> Yardstick:
    return Yardstick("sphere", volume_ml, "a test sphere", limits)


def test_the_runner_up_is_taken_only_when_the_choice_is_grossly_off_and_the_runner_up_fits():
    rule = ExtentChoice(2.0)  # sphere limits 0.25-2.5: grossly off below 0.125 or above 5
    assert rule.take_runner_up(0.5, 5.0, _stick(10.0))  # 0.05 x the size against a runner-up at 0.5 x
    assert rule.take_runner_up(60.0, 12.0, _stick(10.0))  # 6 x against 1.2 x
    assert not rule.take_runner_up(4.0, 10.0, _stick(10.0))  # 0.4 x fits: the ranker's choice stands
    assert not rule.take_runner_up(30.0, 10.0, _stick(10.0))  # 3 x is off, but not grossly (a spill, not a wrong lesion)
    assert not rule.take_runner_up(0.5, 0.4, _stick(10.0))  # the runner-up misses the size too
    assert not rule.take_runner_up(0.5, None, _stick(10.0))  # no runner-up
    assert not rule.take_runner_up(0.5, 5.0, None)  # no size on the form
    assert ExtentChoice(1.0).take_runner_up(0.2 * 10.0, 5.0, _stick(10.0, ELLIPSOID_LIMITS))  # 0.2 < 0.43


def test_a_larger_factor_above_leaves_a_moderately_spilled_choice_alone():
    """Above the upper limit a miss may be the tumour with a spilled outline: factor_above asks more there."""
    rule = ExtentChoice(2.0, factor_above=3.0)  # sphere: below 0.125 x or above 7.5 x
    assert not rule.take_runner_up(60.0, 12.0, _stick(10.0))  # 6 x: swapped at factor 2, not here
    assert rule.take_runner_up(80.0, 12.0, _stick(10.0))  # 8 x
    assert rule.take_runner_up(1.0, 5.0, _stick(10.0))  # 0.1 x: below as before
    assert ExtentChoice.from_card(rule.to_card()) == rule and ExtentChoice.from_card({"factor": 2}).factor_above is None


@pytest.mark.parametrize("factor", [0.5, 11.0, float("nan")])
def test_a_factor_outside_one_to_ten_is_refused(factor):
    with pytest.raises(ValueError, match="extent_choice factor"):
        ExtentChoice(factor)


def test_the_selection_swaps_the_first_two_when_the_size_says_so():
    """Two candidates on a 1 mm grid: the more probable 0.8 ml block and a 0.144 ml one. A 7 mm tumour (0.18 ml
    sphere) fits the second and puts the first at 4.4 x: swapped at factor 1.5, not at 2, nor without a size."""
    from responseai.breast.segmentation.inference import select_candidates

    probability = np.zeros((24, 40, 40), np.float32)
    probability[8:16, 8:18, 8:18] = 0.95
    probability[10:14, 26:32, 26:32] = 0.7
    region = np.ones(probability.shape, bool)
    stick = yardstick({"tumour_size_mm": 7.0})
    assert stick.volume_ml == pytest.approx(sphere_volume_ml(7.0))
    plain = select_candidates(probability, 0.5, region, expected=stick, extent_choice=ExtentChoice(2.0))
    swapped = select_candidates(probability, 0.5, region, expected=stick, extent_choice=ExtentChoice(1.5))
    unsized = select_candidates(probability, 0.5, region, expected=None, extent_choice=ExtentChoice(1.5))
    assert not plain.by_extent and not unsized.by_extent and plain.chosen.sum() == 800
    assert swapped.by_extent and swapped.chosen.sum() == 144 and swapped.runner_up.sum() == 800
    assert swapped.margin == pytest.approx(-(0.95 - 0.7), abs=1e-6)  # the chosen one's score minus the runner-up's
    assert swapped.confidence == pytest.approx(0.7, abs=1e-6)


def test_a_malformed_card_entry_is_a_weights_error():
    from responseai.breast.segmentation.inference import card_extent_choice
    from responseai.errors import WeightsError

    assert card_extent_choice({}) is None
    assert card_extent_choice({"extent_choice": {"factor": 2, "chosen_on": "x"}}) == ExtentChoice(2.0)
    for entry in ({"factor": 0.2}, {}, {"factor": "two"}, {"factor": 2, "factor_above": 0.5}):
        with pytest.raises(WeightsError, match="extent choice"):
            card_extent_choice({"extent_choice": entry})


def test_predict_takes_the_runner_up_the_size_fits_and_says_so_everywhere(tmp_path: Path):
    """Phantom seed 25, case 0: the ranker's choice is 5.6 ml, its runner-up 8.0 ml. A reported 34 × 30 × 28 mm
    tumour (a 15 ml ellipsoid) puts the choice under the ellipsoid's 0.43 and the runner-up inside: with an
    ``extent_choice`` of 1 the runner-up is outlined, the first choice offered instead, and the user told
    (record, report, viewer); without the card entry, or without the size, nothing changes."""
    from responseai.breast.phantom import write_cohort
    from responseai.breast.report import build_report
    from responseai.breast.segmentation.inference import DEFAULT
    from responseai.cli import main
    from responseai.viewer.jobs import runner_up_offer
    from responseai.weights import copy_with_card

    write_cohort(tmp_path / "cohort", n=1, seed=25, workers=1)
    row = pd.read_csv(tmp_path / "cohort" / "manifest.csv").iloc[0]
    phases = [f"--{p}={tmp_path / 'cohort' / row[p]}" for p in ("pre", "post1", "post2")]
    weights = copy_with_card(DEFAULT, tmp_path / "card" / "breast_seg.safetensors", "segmentation",
                             extent_choice={"factor": 1.0})
    sized = json.dumps({"tumour_size_mm": 34, "tumour_size_2_mm": 30, "tumour_size_3_mm": 28.1})
    records = {}
    for name, extra in {"swapped": ["--seg-weights", str(weights), "--clinical", sized],
                        "unsized": ["--seg-weights", str(weights)], "shipped": ["--clinical", sized]}.items():
        out = tmp_path / name
        assert main(["predict", "breast", *phases, *extra, "--out", str(out)]) == 0
        records[name] = (out, json.loads((out / "result.json").read_text(encoding="utf-8")))
    out, swapped = records["swapped"]
    _, unsized = records["unsized"]
    _, shipped = records["shipped"]
    assert unsized["runner_up_candidate"]["model_first_choice"] is False
    assert shipped["tumour_volume_ml"] == unsized["tumour_volume_ml"]
    assert swapped["tumour_volume_ml"] == pytest.approx(unsized["runner_up_candidate"]["volume_ml"], abs=0.05)
    assert swapped["runner_up_candidate"]["volume_ml"] == pytest.approx(unsized["tumour_volume_ml"], abs=0.05)
    assert swapped["runner_up_candidate"]["model_first_choice"] is True
    assert swapped["runner_up_candidate"]["score_margin"] < 0 and not swapped["runner_up_candidate"]["close_call"]
    assert "clinical tumour size" in swapped["choice_caution"]
    assert "clinical tumour size" in build_report({**swapped, "model_card": {}})["headline"]["caution"]
    assert "first choice" in runner_up_offer(out, swapped)[1]


def test_slicer_results_table_names_the_first_choice_set_aside(slicer_app):
    from BreastResponseAILib.logic import _runner_up_row

    second = {"volume_ml": 5.6, "side": "left", "score_margin": -2.0, "close_call": False, "model_first_choice": True}
    assert "first choice" in _runner_up_row(second) and "close call" not in _runner_up_row(second)
    assert "first choice" not in _runner_up_row({**second, "model_first_choice": False})
