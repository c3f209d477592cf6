"""The browser viewer offers the automatic segmentation's runner-up candidate and predicts again with it.

Driven through the page's own controller methods on a real trame server and Slicer scene (no browser:
the clicks are the methods the buttons call), with the real prediction jobs.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from responseai.breast.constants import RUNNER_UP_FILE
from responseai.viewer.cases import case_from_folder
from responseai.viewer.jobs import prediction_command, runner_up_offer


@pytest.fixture(scope="module")
def two_candidate_case(tmp_path_factory):
    """A phantom exam whose automatic segmentation has a runner-up (seed 25, case 0), as a case folder."""
    from responseai.breast.phantom import write_cohort

    root = tmp_path_factory.mktemp("runner-up")
    write_cohort(root / "cohort", n=1, seed=25, workers=1)
    row = pd.read_csv(root / "cohort" / "manifest.csv").iloc[0]
    folder = root / str(row["patient_id"])
    folder.mkdir()
    for phase in ("pre", "post1", "post2"):
        shutil.copyfile(root / "cohort" / row[phase], folder / f"{phase}.nrrd")
    return folder


def _prediction(folder: Path, runner_up: bool) -> Path:
    folder.mkdir(parents=True)
    if runner_up:
        (folder / RUNNER_UP_FILE).write_bytes(b"")
    return folder


def test_the_offer_reads_the_jobs_result_and_file(tmp_path):
    described = {"runner_up_candidate": {"volume_ml": 1.234, "side": "right", "score_margin": 0.4}}
    path, line = runner_up_offer(_prediction(tmp_path / "a", runner_up=True), described)
    assert path.name == RUNNER_UP_FILE and line == "1.23 ml, right breast"
    assert runner_up_offer(_prediction(tmp_path / "b", runner_up=False), described) is None  # no file
    assert runner_up_offer(_prediction(tmp_path / "c", runner_up=True), {"mask_source": "user"}) is None


def test_a_chosen_segment_replaces_the_cases_own_in_the_job(tmp_path, two_candidate_case):
    entry = case_from_folder(two_candidate_case)
    chosen = tmp_path / RUNNER_UP_FILE
    command = prediction_command(entry, {}, tmp_path / "job", mask=chosen)
    assert command[command.index("--mask") + 1] == str(chosen) and command.count("--mask") == 1
    assert "--mask" not in prediction_command(entry, {}, tmp_path / "job2")


async def _settle() -> None:
    """Wait for the job the page started (``run`` schedules it on the event loop)."""
    while pending := [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
        await asyncio.gather(*pending)


def test_use_runner_up_predicts_again_with_it_and_back(slicer_app, two_candidate_case, tmp_path):
    from trame.app import get_server

    from responseai.io import read_segmentation
    from responseai.slicer_bridge.nodes import read_tumour_segment
    from responseai.viewer.app import ViewerApp

    app = ViewerApp([case_from_folder(two_candidate_case)], tmp_path / "work",
                    server=get_server("responseai-viewer-runner-up-test", client_type="vue3"))
    state = app.state
    app.select_case(0)

    async def clicks() -> None:
        app.run()
        await _settle()
        assert state.segment_source == "automatic segmentation" and not state.run_error
        assert state.runner_up_text.endswith("breast") and not state.runner_up_chosen
        first = app._result.prediction
        runner_up = read_segmentation(first / RUNNER_UP_FILE, "Runner-up candidate").array.astype(bool)

        app.use_runner_up()
        await _settle()
        assert not state.run_error and state.runner_up_chosen and state.runner_up_text == ""
        assert state.segment_source == "the runner-up candidate, chosen here"
        second = app._result.prediction
        assert json.loads((second / "result.json").read_text(encoding="utf-8"))["mask_source"] == "user"
        shown = read_tumour_segment(app.session.segmentation, app.session.volume)
        np.testing.assert_array_equal(shown.array.astype(bool), runner_up)  # the scene's tumour segment is it

        app.use_automatic()
        await _settle()
        assert state.segment_source == "automatic segmentation" and not state.runner_up_chosen
        assert state.runner_up_text
        app.use_runner_up()
        await _settle()
        assert state.runner_up_chosen
        app.select_case(0)  # the case again: it starts automatic, nothing offered before a run
        assert not state.runner_up_chosen and state.runner_up_text == "" and state.segment_source == ""
        assert state.caution_text == ""  # the last run's warnings went with it
        app.use_runner_up()  # nothing to use: no job starts
        assert not state.running

    asyncio.run(clicks())


def test_the_page_says_every_warning_the_report_prints():
    from responseai.viewer.jobs import prediction_cautions

    record = {"extent_caution": "the mask is 3 x the size", "choice_caution": None, "outline_caution": "cut to 1.1 ml",
              "pcr_probability": 0.3}
    assert prediction_cautions(record) == "the mask is 3 x the size; cut to 1.1 ml"
    assert prediction_cautions({"pcr_probability": 0.3}) == ""
