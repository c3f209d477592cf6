"""The segmentation's runner-up candidate: chosen and outlined beside the tumour, written, reported, usable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from responseai.breast.constants import RUNNER_UP_FILE, RUNNER_UP_SEGMENT


def _two_candidates():
    """A tumour (probability 0.95) and a smaller enhancing focus (0.7), both inside the breasts."""
    shape = (24, 40, 40)
    probability = np.zeros(shape, np.float32)
    probability[8:16, 8:18, 8:18] = 0.95
    probability[10:14, 26:32, 26:32] = 0.7
    return probability, np.ones(shape, bool)


def test_the_runner_up_is_the_second_candidate_outlined_with_its_score_margin():
    from responseai.breast.segmentation.inference import select_candidates, select_tumour

    probability, region = _two_candidates()
    found = select_candidates(probability, 0.5, region)
    assert found.chosen[8:16, 8:18, 8:18].all() and found.chosen.sum() == 8 * 10 * 10
    assert found.runner_up[10:14, 26:32, 26:32].all() and found.runner_up.sum() == 4 * 6 * 6
    assert found.margin == pytest.approx(0.95 - 0.7, abs=1e-6) and found.n == 2
    chosen, n, discarded, confidence = select_tumour(probability, 0.5, region)  # the same choice
    np.testing.assert_array_equal(chosen, found.chosen)
    probability[10:14, 26:32, 26:32] = 0.0  # a single candidate: no runner-up to offer
    alone = select_candidates(probability, 0.5, region)
    assert alone.runner_up is None and alone.margin is None


def test_ranked_orders_the_allowed_candidates_and_choose_takes_the_first():
    from responseai.breast.segmentation.candidates import choose, find_candidates, ranked

    probability, region = _two_candidates()
    candidates = find_candidates(probability, 0.5, region)
    labels, scores = ranked(candidates, None)
    assert len(labels) == 2 and scores[0] > scores[1] and choose(candidates, None) == labels[0]
    assert (candidates.labels == labels[0])[12, 12, 12] and (candidates.labels == labels[1])[12, 28, 28]


def test_predict_writes_the_runner_up_beside_the_tumour_and_the_report_names_it(tmp_path: Path):
    """A phantom exam with several candidates in the breasts (seed 25, case 0): the product's own path."""
    from responseai.breast.phantom import write_cohort
    from responseai.breast.report import _finding_rows
    from responseai.cli import main
    from responseai.io import read_image, read_segmentation

    write_cohort(tmp_path / "cohort", n=1, seed=25, workers=1)
    row = pd.read_csv(tmp_path / "cohort" / "manifest.csv").iloc[0]
    phases = [f"--{p}={tmp_path / 'cohort' / row[p]}" for p in ("pre", "post1", "post2")]
    assert main(["predict", "breast", *phases, "--case-id", row["patient_id"], "--out", str(tmp_path / "out")]) == 0
    record = json.loads((tmp_path / "out" / "result.json").read_text(encoding="utf-8"))
    second = record["runner_up_candidate"]
    assert second["volume_ml"] > 0 and second["side"] in ("left", "right") and second["score_margin"] >= 0
    runner_up = read_segmentation(tmp_path / "out" / RUNNER_UP_FILE, RUNNER_UP_SEGMENT)
    tumour = read_segmentation(tmp_path / "out" / "tumour.seg.nrrd")
    post1 = read_image(tmp_path / "cohort" / row["post1"])
    assert not runner_up.grid_differences(post1) and runner_up.array.any()
    assert not (runner_up.array.astype(bool) & tumour.array.astype(bool)).any()  # another component
    assert runner_up.volume_ml() == pytest.approx(second["volume_ml"], abs=0.01)
    rows = dict(_finding_rows(record))
    assert RUNNER_UP_FILE in rows["Runner-up candidate (use it if the outlined one is not the tumour)"]


def test_slicer_shows_the_runner_up_hidden_and_makes_it_the_tumour_on_request(slicer_app, tmp_path: Path):
    from BreastResponseAILib.logic import BreastLogic, show_runner_up
    from responseai.breast.demo import demo_case
    from responseai.errors import MissingSegmentError
    from responseai.io import write_segmentation
    from responseai.slicer_bridge.nodes import add_segmentation_node

    case = demo_case()
    logic = BreastLogic(slicer_app.scene)
    nodes = logic.load_case(case.patient_id, case.phases)
    post1 = nodes.phases["post1"]
    segmentation = add_segmentation_node(slicer_app.scene, case.mask, post1, "automatic")
    other = np.zeros(case.mask.shape, np.uint8)
    other[5:9, 10:20, 10:20] = 1
    assert not (other & (case.mask.array > 0)).any()
    path = write_segmentation(case.mask.with_array(other), tmp_path / RUNNER_UP_FILE, RUNNER_UP_SEGMENT)

    show_runner_up(segmentation, path)
    segments = segmentation.GetSegmentation()
    runner_up = segments.GetSegmentIdBySegmentName(RUNNER_UP_SEGMENT)
    assert runner_up and not segmentation.GetDisplayNode().GetSegmentVisibility(runner_up)
    np.testing.assert_array_equal(logic.read_mask(segmentation, post1).array, case.mask.array > 0)  # still the tumour

    logic.use_runner_up(segmentation, post1)
    np.testing.assert_array_equal(logic.read_mask(segmentation, post1).array, other)
    assert not segments.GetSegmentIdBySegmentName(RUNNER_UP_SEGMENT) and segments.GetNumberOfSegments() == 1
    with pytest.raises(MissingSegmentError, match="draw the tumour"):
        logic.use_runner_up(segmentation, post1)
    show_runner_up(segmentation, path)
    show_runner_up(segmentation, tmp_path / "absent.seg.nrrd")  # a later job without one: the stale one goes
    assert not segments.GetSegmentIdBySegmentName(RUNNER_UP_SEGMENT)


def test_a_close_call_is_said_in_the_record_the_report_the_viewer_and_the_cohort_table(tmp_path: Path):
    """A card whose close_margin every lead falls under (99): the choice is flagged wherever a user reads it;
    one whose margin nothing falls under (0.001) flags nothing."""
    from responseai.breast.report import build_report
    from responseai.breast.segmentation.inference import DEFAULT
    from responseai.cli import main
    from responseai.viewer.jobs import runner_up_offer
    from responseai.weights import copy_with_card, read_card

    from responseai.breast.phantom import write_cohort

    write_cohort(tmp_path / "cohort", n=1, seed=25, workers=1)
    row = pd.read_csv(tmp_path / "cohort" / "manifest.csv").iloc[0]
    phases = [f"--{p}={tmp_path / 'cohort' / row[p]}" for p in ("pre", "post1", "post2")]
    ranker = read_card(DEFAULT, "segmentation")["candidate_ranker"]
    records = {}
    for margin in (99.0, 0.001):
        weights = copy_with_card(DEFAULT, tmp_path / f"m{margin}" / "breast_seg.safetensors", "segmentation",
                                 candidate_ranker={**ranker, "close_margin": margin})
        out = tmp_path / f"out{margin}"
        assert main(["predict", "breast", *phases, "--seg-weights", str(weights), "--out", str(out)]) == 0
        records[margin] = (out, json.loads((out / "result.json").read_text(encoding="utf-8")))
    out, close = records[99.0]
    assert close["runner_up_candidate"]["close_call"] is True and "close call" in close["choice_caution"]
    assert "close call" in build_report({**close, "model_card": {}})["headline"]["caution"]
    assert "close call" in runner_up_offer(out, close)[1]
    out, clear = records[0.001]
    assert clear["runner_up_candidate"]["close_call"] is False and "choice_caution" not in clear
    assert "caution" not in build_report({**clear, "model_card": {}})["headline"] and "close call" not in runner_up_offer(out, clear)[1]


def test_slicer_results_table_says_a_close_call(slicer_app):
    from BreastResponseAILib.logic import _runner_up_row

    second = {"volume_ml": 2.5, "side": "left", "score_margin": 0.7, "close_call": True}
    assert "close call" in _runner_up_row(second)
    assert "close call" not in _runner_up_row({**second, "close_call": False})
    assert "close call" not in _runner_up_row({k: v for k, v in second.items() if k != "close_call"})  # older records
